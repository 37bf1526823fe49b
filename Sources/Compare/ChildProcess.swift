import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with posix_spawn and reaped with wait4, so its own peak RSS is known (Foundation's
/// Process reaps children itself and only the largest child of all is visible through RUSAGE_CHILDREN).
/// Its stdout and stderr go to files.
struct ChildProcess {
    struct Result {
        var status: Int32
        /// Killed by this signal (nil when it exited).
        var signal: Int32?
        var peakRSSBytes: Int
        var seconds: Double
    }

    /// Runs `executable args` to completion. `shouldInterrupt` is polled every 50 ms; when it turns true the child
    /// gets SIGINT once (it then saves what it has and exits).
    static func run(_ executable: URL, _ args: [String], stdout: URL, stderr: URL,
                    shouldInterrupt: () -> Bool) throws -> Result {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, stdout.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        let argv = ([executable.path] + args).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let began = Date()
        let rc = posix_spawn(&pid, executable.path, &actions, nil, argv, environ)
        guard rc == 0 else {
            throw CompareError.run("cannot start \(executable.path): \(String(cString: strerror(rc)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        var interrupted = false
        while true {
            let r = wait4(pid, &status, WNOHANG, &usage)
            if r == pid { break }
            if r < 0 && errno != EINTR { throw CompareError.run("waiting for \(executable.lastPathComponent): \(String(cString: strerror(errno)))") }
            if !interrupted && shouldInterrupt() {
                interrupted = true
                kill(pid, SIGINT)
            }
            usleep(50_000)
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG spelled out (the C macros are not imported).
        let termSignal = status & 0x7f
        let exited = termSignal == 0
        return Result(status: exited ? (status >> 8) & 0xff : 128 + termSignal, signal: exited ? nil : termSignal,
                      peakRSSBytes: Int(usage.ru_maxrss) * 1024, seconds: Date().timeIntervalSince(began))
    }
}

public enum CompareError: Error, CustomStringConvertible {
    case options(String)
    case run(String)

    public var description: String {
        switch self {
        case .options(let s), .run(let s): s
        }
    }
}

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A job's child process, started with posix_spawn in a process group of its own: its stdout and stderr split into
/// lines as they arrive (a line ended by a carriage return is a progress line that the next one overwrites), read and
/// reaped on threads of its own (no run loop, no dispatch source), and one exit callback after both streams ended.
/// SIGINT goes to the child alone (a `peft compare` passes it on to its runs itself); SIGKILL to the whole group.
final class JobProcess: @unchecked Sendable {
    enum Line {
        case text(String)
        /// A line ended by "\r": the child's live status line, replaced by the next.
        case status(String)
    }

    private let executable: URL
    private let arguments: [String]
    private let directory: URL
    private let environment: [String: String]
    private let onLine: @Sendable (Line) -> Void
    private let onExit: @Sendable (_ status: Int32, _ signaled: Bool) -> Void
    private let lock = NSLock()
    private var childPID: pid_t = 0
    private var running = false

    init(executable: URL, arguments: [String], directory: URL, environment: [String: String],
         onLine: @escaping @Sendable (Line) -> Void, onExit: @escaping @Sendable (_ status: Int32, _ signaled: Bool) -> Void) {
        self.executable = executable
        self.arguments = arguments
        self.directory = directory
        self.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        self.onLine = onLine
        self.onExit = onExit
    }

    /// glibc's posix_spawn_file_actions_addchdir_np (2.29+), looked up at run time: Swift's Glibc module leaves it out.
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private static let addChdir: AddChdir? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addchdir_np")
        .map { unsafeBitCast($0, to: AddChdir.self) }

    /// Starts `executable arguments` in `directory` with stdin from /dev/null; returns its pid and the read ends of its
    /// stdout and stderr.
    static func spawn(_ executable: URL, _ arguments: [String], directory: URL,
                      environment: [String: String]) throws -> (pid: pid_t, out: Int32, err: Int32) {
        var out: [Int32] = [0, 0], err: [Int32] = [0, 0]
        guard pipe(&out) == 0, pipe(&err) == 0 else {
            throw WebUIError.badRequest("cannot make pipes: \(String(cString: strerror(errno)))")
        }
        // Close-on-exec, so other children started meanwhile do not hold them open.
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        var program = executable.path
        var argv = [executable.path] + arguments
        if let addChdir = Self.addChdir {
            _ = addChdir(&actions, directory.path)
        } else {
            // An older C library: a shell changes the directory, then becomes the program.
            argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory.path] + argv
            program = "/bin/sh"
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group (a Ctrl-C at the server's terminal reaches the server, which stops its jobs in order),
        // default signal actions and an empty mask whatever this process has set up for itself.
        var defaults = sigset_t(), empty = sigset_t()
        sigfillset(&defaults)
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cArgs.forEach { free($0) }; cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, program, &actions, &attributes, cArgs, cEnv)
        close(out[1])
        close(err[1])
        guard rc == 0 else {
            close(out[0])
            close(err[0])
            throw WebUIError.badRequest("cannot start \(executable.path): \(String(cString: strerror(rc)))")
        }
        return (pid, out[0], err[0])
    }

    /// Reads `fd` to its end (then closes it), passing each chunk on.
    private static func drain(_ fd: Int32, _ chunk: (Data) -> Void) {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n > 0 { chunk(Data(buffer[0..<n])); continue }
            if n < 0 && errno == EINTR { continue }
            break
        }
        close(fd)
    }

    /// Waits for `pid`: (exit status or signal number, whether a signal ended it). WIFEXITED / WEXITSTATUS / WTERMSIG
    /// spelled out (the C macros are not imported).
    private static func reap(_ pid: pid_t) -> (status: Int32, signaled: Bool) {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return (signal == 0 ? (status >> 8) & 0xff : signal, signal != 0)
    }

    /// Runs `executable arguments` to its end (a short command: a help dump, a data preview): its exit status and
    /// everything it printed.
    static func capture(_ executable: URL, _ arguments: [String], directory: URL) throws -> (status: Int32, out: Data, err: Data) {
        let (pid, out, err) = try spawn(executable, arguments, directory: directory, environment: ProcessInfo.processInfo.environment)
        final class Collected: @unchecked Sendable { var data = Data() }
        let errData = Collected(), done = DispatchSemaphore(value: 0)
        // stderr drains on its own thread so neither pipe fills while the other is read.
        Thread { drain(err) { errData.data.append($0) }; done.signal() }.start()
        var outData = Data()
        drain(out) { outData.append($0) }
        done.wait()
        return (reap(pid).status, outData, errData.data)
    }

    func start() throws {
        let (pid, outFD, errFD) = try Self.spawn(executable, arguments, directory: directory, environment: environment)
        lock.lock()
        childPID = pid
        running = true
        lock.unlock()
        let streams = DispatchGroup()
        for fd in [outFD, errFD] {
            streams.enter()
            let splitter = LineSplitter(onLine)
            Thread {
                Self.drain(fd) { splitter.append($0) }
                splitter.finish()
                streams.leave()
            }.start()
        }
        Thread { [self] in
            let (status, signaled) = Self.reap(pid)
            lock.lock()
            running = false
            lock.unlock()
            // Grandchildren that kept the pipes open are ended with the group, so the streams do end.
            kill(-pid, SIGKILL)
            streams.wait()
            onExit(status, signaled)
        }.start()
    }

    var pid: Int32 {
        lock.lock(); defer { lock.unlock() }
        return childPID
    }

    /// SIGINT and SIGTERM to the child; SIGKILL to its whole group.
    func signal(_ number: Int32) {
        lock.lock(); defer { lock.unlock() }
        guard running else { return }
        kill(number == SIGKILL ? -childPID : childPID, number)
    }

    /// Resident and peak resident memory of the child, from /proc (nil where there is none).
    var memory: (now: Int, peak: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
            return line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }.map { $0 * 1024 }
        }
        guard let now = field("VmRSS") else { return nil }
        return (now, field("VmHWM") ?? now)
    }
}

/// Bytes to lines: "\n" ends a line, "\r" ends a status line; UTF-8 split across reads is joined first.
final class LineSplitter: @unchecked Sendable {
    private var pending = Data()
    private let lock = NSLock()
    private let emit: @Sendable (JobProcess.Line) -> Void

    init(_ emit: @escaping @Sendable (JobProcess.Line) -> Void) { self.emit = emit }

    func append(_ data: Data) {
        lock.lock()
        pending.append(data)
        var lines: [JobProcess.Line] = []
        while let end = pending.firstIndex(where: { $0 == 0x0A || $0 == 0x0D }) {
            let text = String(decoding: pending[pending.startIndex..<end], as: UTF8.self)
            let isStatus = pending[end] == 0x0D
            pending.removeSubrange(pending.startIndex...end)
            if text.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            lines.append(isStatus ? .status(text) : .text(text))
        }
        lock.unlock()
        lines.forEach(emit)
    }

    func finish() {
        lock.lock()
        let rest = String(decoding: pending, as: UTF8.self)
        pending.removeAll()
        lock.unlock()
        if !rest.trimmingCharacters(in: .whitespaces).isEmpty { emit(.text(rest)) }
    }
}

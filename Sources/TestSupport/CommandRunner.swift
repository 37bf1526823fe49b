import Foundation

/// Runs the built `peft` executable (found next to the test bundle) and captures its output.
public struct CommandResult {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// Ended by a signal (a crash, or the SIGINT a test sent), not by exiting.
    public var signaled: Bool
}

public enum PeftCommand {
    /// Open MPI's `mpirun`, when installed.
    public static var mpirun: URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        for dir in path.split(separator: ":").map(String.init) + ["/usr/bin"] {
            let url = URL(fileURLWithPath: dir).appendingPathComponent("mpirun")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }

    /// Runs `mpirun -np ranks peft args...` on this machine (one thread per rank); `ranks` may also be an MPMD list
    /// of per-rank commands, each `[program, args...]` with "peft" standing for the built executable.
    public static func runMPI(ranks: Int, _ args: [String], perRank: [[String]]? = nil) throws -> CommandResult {
        guard let mpirun else { throw CocoaError(.fileNoSuchFile) }
        var launcher = [mpirun.path, "--oversubscribe", "--bind-to", "none"]
        let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "PEFT_NUM_THREADS": "1",
                   "OMPI_MCA_btl": "self,tcp", "OMPI_MCA_rmaps_base_oversubscribe": "1"]
        if let perRank {
            for (i, command) in perRank.enumerated() {
                if i > 0 { launcher.append(":") }
                launcher += ["-np", "1"] + command.map { $0 == "peft" ? executable.path : $0 }
            }
            return try run([], environment: env, launcher: launcher)
        }
        launcher += ["-np", "\(ranks)", executable.path]
        return try run(args, environment: env, launcher: launcher)
    }

    /// `.build/<config>/peft`, or the executable `PEFT_TEST_EXECUTABLE` names (the ThreadSanitizer suite runs its
    /// command-line tests against a build without the sanitizer, whose children would otherwise take CPU-hours).
    public static var executable: URL {
        if let path = ProcessInfo.processInfo.environment["PEFT_TEST_EXECUTABLE"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        let candidates = [Bundle.main.bundleURL] + Bundle.allBundles.map { $0.bundleURL.deletingLastPathComponent() }
        for dir in candidates {
            let url = dir.appendingPathComponent("peft")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return Bundle.main.bundleURL.appendingPathComponent("peft")
    }

    /// Runs `peft args...`; `interruptWhen` sees stderr as it arrives and may return true to send `signal` (SIGINT).
    @discardableResult
    public static func run(_ args: [String], stdin: String? = nil, environment: [String: String] = [:],
                           interruptWhen: ((String) -> Bool)? = nil, launcher: [String] = [],
                           signal: Int32 = SIGINT) throws -> CommandResult {
        let process = Process()
        if let program = launcher.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(launcher.dropFirst()) + args
        } else {
            process.executableURL = executable
            process.arguments = args
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        final class Captured: @unchecked Sendable {
            let lock = NSLock()
            var err = Data(), out = Data(), interrupted = false
        }
        let captured = Captured()
        err.fileHandleForReading.readabilityHandler = { h in
            let chunk = h.availableData
            captured.lock.lock(); defer { captured.lock.unlock() }
            captured.err.append(chunk)
            if let interruptWhen, !captured.interrupted, interruptWhen(String(decoding: captured.err, as: UTF8.self)) {
                captured.interrupted = true
                kill(process.processIdentifier, signal)
            }
        }
        out.fileHandleForReading.readabilityHandler = { h in
            let chunk = h.availableData
            captured.lock.lock(); captured.out.append(chunk); captured.lock.unlock()
        }
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        err.fileHandleForReading.readabilityHandler = nil
        out.fileHandleForReading.readabilityHandler = nil
        captured.lock.lock(); defer { captured.lock.unlock() }
        captured.out.append(out.fileHandleForReading.readDataToEndOfFile())
        captured.err.append(err.fileHandleForReading.readDataToEndOfFile())
        return CommandResult(status: process.terminationStatus, stdout: String(decoding: captured.out, as: UTF8.self),
                             stderr: String(decoding: captured.err, as: UTF8.self),
                             signaled: process.terminationReason == .uncaughtSignal)
    }
}

/// A fresh temporary directory removed by `cleanup()`.
public struct TemporaryDirectory {
    public let url: URL

    public init(_ prefix: String = "peft-test") throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    public func cleanup() { try? FileManager.default.removeItem(at: url) }

    /// Copies a fixture model directory here (to modify it) and returns the copy.
    public func copyModel(_ name: String, as newName: String) throws -> URL {
        let dst = url.appendingPathComponent(newName)
        try FileManager.default.copyItem(at: modelFixture(name), to: dst)
        return dst
    }
}

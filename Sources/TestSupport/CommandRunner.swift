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
    /// `.build/<config>/peft`.
    public static var executable: URL {
        let candidates = [Bundle.main.bundleURL] + Bundle.allBundles.map { $0.bundleURL.deletingLastPathComponent() }
        for dir in candidates {
            let url = dir.appendingPathComponent("peft")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return Bundle.main.bundleURL.appendingPathComponent("peft")
    }

    /// Runs `peft args...`; `onStderrLine` sees stderr lines as they arrive (and may return true to send SIGINT).
    @discardableResult
    public static func run(_ args: [String], stdin: String? = nil, environment: [String: String] = [:],
                           interruptWhen: ((String) -> Bool)? = nil) throws -> CommandResult {
        let process = Process()
        process.executableURL = executable
        process.arguments = args
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
                kill(process.processIdentifier, SIGINT)
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

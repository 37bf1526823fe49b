import Foundation

/// One piece of work the web UI started: a `peft` subcommand in a child process that the server owns.
public struct Job: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        /// Waiting for a slot (`--max-jobs`).
        case queued
        case running
        /// Interrupted (SIGINT), saving what it has.
        case stopping
        case succeeded
        case failed
        /// Stopped on request; a training run can be resumed from its last checkpoint.
        case stopped
        /// The server ended while the job ran (or waited).
        case lost

        public var isFinal: Bool { [.succeeded, .failed, .stopped, .lost].contains(self) }
    }

    /// Live figures of a running job.
    public struct Progress: Codable, Sendable, Equatable {
        /// What the counted steps are: "train", "generate", ...
        public var phase: String?
        public var step: Int?
        public var totalSteps: Int?
        public var tokensPerSecond: Double?
        /// "m:ss" as `peft train` prints it.
        public var eta: String?
        public var elapsed: String?
        /// Resident memory of the child process now, and its peak, in bytes.
        public var memoryBytes: Int?
        public var peakMemoryBytes: Int?
        public init() {}
    }

    public var id: String
    /// The `peft` subcommand (train, eval, compare, merge, quantize, serve) or another program's name (tests).
    public var kind: String
    /// The arguments after the executable.
    public var arguments: [String]
    public var state: State
    public var created: Double
    public var started: Double?
    public var finished: Double?
    public var exitStatus: Int32?
    /// The first error line the child printed, when it failed.
    public var error: String?
    /// The folder or file the job writes (its `--output`), when it has one.
    public var output: String?
    /// The job this one resumes.
    public var resumes: String?
    /// `peft serve` jobs: the port they listen on, once they do.
    public var port: Int?
    public var progress: Progress
}

/// One line of a job's history, replayed to a page that (re)connects: `id` increases by one per event of the job.
public struct JobEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// A line the child printed (stdout or stderr).
        case log
        /// A record of the training log (train_log.jsonl), as JSON text.
        case metric
        /// The job's state changed: the whole job record as JSON text.
        case state
    }
    public var id: Int
    public var kind: Kind
    public var data: String

    /// The event as server-sent events text.
    public var sse: String {
        let lines = data.split(separator: "\n", omittingEmptySubsequences: false).map { "data: \($0)" }.joined(separator: "\n")
        return "id: \(id)\nevent: \(kind.rawValue)\n\(lines)\n\n"
    }
}

extension Job {
    func json() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

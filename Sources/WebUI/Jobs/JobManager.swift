import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The web UI's jobs: child processes owned by the server, never by a page. Jobs wait in a queue for one of
/// `maxRunning` slots (chat servers excepted), and everything they print, every record of their training log and
/// every state change is an event, kept in memory and in `WORKDIR/jobs/ID/` so a page that reconnects, or a server
/// that restarts, sees the whole history.
public final class JobManager: @unchecked Sendable {
    public struct Settings: Sendable {
        /// Where job records live (`jobs/`) and where children run (relative paths are relative to it).
        public var workdir: URL
        /// The program jobs run (the `peft` executable itself).
        public var executable: URL
        /// Jobs running at once (chat servers are not counted).
        public var maxRunning = 1
        public init(workdir: URL, executable: URL) {
            self.workdir = workdir
            self.executable = executable
        }
    }

    /// What a subscriber receives: stored events, and live figures that are not stored (the latest is in the job).
    public enum Update: Sendable {
        case event(JobEvent)
        case progress(Job)
        case ping
    }

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case notFound(String)
        case conflict(String)
        public var description: String {
            switch self {
            case .notFound(let s), .conflict(let s): s
            }
        }
    }

    /// Kinds that do not take a slot: they wait for requests, not for the CPU.
    static let unqueuedKinds: Set<String> = ["serve"]

    private final class Runtime {
        var job: Job
        var events: [JobEvent] = []
        var subscribers: [UUID: AsyncStream<Update>.Continuation] = [:]
        var process: JobProcess?
        var environment: [String: String] = [:]
        /// The training log followed into metric events, and how far it has been read.
        var metricsLog: URL?
        var metricsOffset: UInt64 = 0
        var stopRequests = 0
        var lastSaved = Date.distantPast
        init(job: Job) { self.job = job }
    }

    public let settings: Settings
    /// Recursive: finishing a subscriber's stream calls its termination handler, which takes the lock too.
    private let lock = NSRecursiveLock()
    private var runtimes: [String: Runtime] = [:]
    private var order: [String] = []
    private var nextNumber = 1
    private var timer: DispatchSourceTimer?
    private var closed = false
    private let jobsDirectory: URL

    public init(settings: Settings) throws {
        self.settings = settings
        jobsDirectory = settings.workdir.appendingPathComponent("jobs")
        try FileManager.default.createDirectory(at: jobsDirectory, withIntermediateDirectories: true)
        try loadHistory()
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "peft.webui.jobs"))
        timer.schedule(deadline: .now() + 0.5, repeating: 0.5)
        timer.setEventHandler { [weak self] in self?.poll() }
        timer.resume()
        self.timer = timer
    }

    deinit { timer?.cancel() }

    // MARK: Queries

    public func list() -> [Job] {
        lock.lock(); defer { lock.unlock() }
        return order.compactMap { runtimes[$0]?.job }
    }

    public func job(_ id: String) throws -> Job {
        lock.lock(); defer { lock.unlock() }
        guard let r = runtimes[id] else { throw Failure.notFound("no job \(id)") }
        return r.job
    }

    public func events(_ id: String, after: Int = -1) throws -> [JobEvent] {
        lock.lock(); defer { lock.unlock() }
        guard let r = runtimes[id] else { throw Failure.notFound("no job \(id)") }
        return r.events.filter { $0.id > after }
    }

    /// The events after `after` (a page's Last-Event-ID), then the live ones until the job ends; nil stream when the
    /// job has already ended (the backlog is all there is).
    public func subscribe(_ id: String, after: Int) throws -> (backlog: [JobEvent], updates: AsyncStream<Update>?) {
        lock.lock(); defer { lock.unlock() }
        guard let r = runtimes[id] else { throw Failure.notFound("no job \(id)") }
        let backlog = r.events.filter { $0.id > after }
        if r.job.state.isFinal { return (backlog, nil) }
        let key = UUID()
        var continuation: AsyncStream<Update>.Continuation!
        let stream = AsyncStream<Update>(bufferingPolicy: .bufferingNewest(4096)) { continuation = $0 }
        r.subscribers[key] = continuation
        // A ping every 15 s: a page that went away is noticed at the next write, even when the job is quiet.
        let pinger = Task {
            while !Task.isCancelled {
                try? await Task.sleep(nanoseconds: 15_000_000_000)
                continuation.yield(.ping)
            }
        }
        continuation.onTermination = { [weak self] _ in
            pinger.cancel()
            guard let self else { return }
            self.lock.lock()
            self.runtimes[id]?.subscribers[key] = nil
            self.lock.unlock()
        }
        return (backlog, stream)
    }

    // MARK: Commands

    /// Queues `arguments` (after the executable) as a job. `metricsLog`: a JSON-lines training log to follow.
    @discardableResult
    public func submit(kind: String, arguments: [String], output: String? = nil, metricsLog: URL? = nil,
                       environment: [String: String] = [:], resumes: String? = nil) throws -> Job {
        lock.lock()
        guard !closed else { lock.unlock(); throw Failure.conflict("the server is shutting down") }
        let id = String(format: "job-%04d", nextNumber)
        nextNumber += 1
        let job = Job(id: id, kind: kind, arguments: arguments, state: .queued, created: Date().timeIntervalSince1970,
                      output: output, resumes: resumes, progress: Job.Progress())
        let r = Runtime(job: job)
        r.metricsLog = metricsLog
        r.environment = environment
        runtimes[id] = r
        order.append(id)
        try? FileManager.default.createDirectory(at: directory(id), withIntermediateDirectories: true)
        record(r, .state, job.json())
        lock.unlock()
        schedule()
        return try self.job(id)
    }

    /// A queued job leaves the queue; a running one gets SIGINT (`peft train` saves a checkpoint and its adapter, a
    /// server finishes its requests); asked again while it stops, SIGKILL.
    @discardableResult
    public func stop(_ id: String) throws -> Job {
        lock.lock()
        guard let r = runtimes[id] else { lock.unlock(); throw Failure.notFound("no job \(id)") }
        switch r.job.state {
        case .queued:
            r.job.state = .stopped
            r.job.finished = Date().timeIntervalSince1970
            record(r, .state, r.job.json())
            finishSubscribers(r)
        case .running, .stopping:
            r.stopRequests += 1
            r.job.state = .stopping
            record(r, .state, r.job.json())
            r.process?.signal(r.stopRequests == 1 ? SIGINT : SIGKILL)
        default:
            lock.unlock()
            throw Failure.conflict("job \(id) has already ended (\(r.job.state.rawValue))")
        }
        let job = r.job
        lock.unlock()
        return job
    }

    /// Ends the manager: nothing new starts, running children get SIGINT and are waited for (up to `timeout`
    /// seconds, then SIGKILL).
    public func shutdown(timeout: Double = 120) async {
        let running = close()
        for id in running { _ = try? stop(id) }
        func settle(_ seconds: Double) async {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline, !list().allSatisfy({ !($0.state == .running || $0.state == .stopping) }) {
                try? await Task.sleep(nanoseconds: 50_000_000)
            }
        }
        await settle(timeout)
        // Past the time: SIGKILL to what is left (and its children), then its exit is recorded.
        for id in running where (try? job(id))?.state.isFinal == false { _ = try? stop(id) }
        await settle(10)
        timer?.cancel()
    }

    /// Stops taking jobs, ends the queued ones; returns the running ones.
    private func close() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        closed = true
        for r in runtimes.values where r.job.state == .queued {
            r.job.state = .stopped
            r.job.finished = Date().timeIntervalSince1970
            record(r, .state, r.job.json())
            finishSubscribers(r)
        }
        return runtimes.values.filter { $0.process != nil }.map(\.job.id)
    }

    /// Waits until the job has ended (tests and callers that need the result).
    public func wait(_ id: String, timeout: Double = 600) async throws -> Job {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let j = try job(id)
            if j.state.isFinal { return j }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        return try job(id)
    }

    // MARK: Running

    private func schedule() {
        lock.lock()
        defer { lock.unlock() }
        guard !closed else { return }
        var busy = runtimes.values.filter { ($0.job.state == .running || $0.job.state == .stopping) && !Self.unqueuedKinds.contains($0.job.kind) }.count
        for id in order {
            guard let r = runtimes[id], r.job.state == .queued else { continue }
            let unqueued = Self.unqueuedKinds.contains(r.job.kind)
            if !unqueued && busy >= settings.maxRunning { continue }
            start(r)
            if !unqueued && r.job.state == .running { busy += 1 }
        }
    }

    /// Starts a queued job (the lock is held).
    private func start(_ r: Runtime) {
        let id = r.job.id
        let process = JobProcess(executable: settings.executable, arguments: r.job.arguments, directory: settings.workdir,
                                 environment: r.environment,
                                 onLine: { [weak self] line in self?.line(id, line) },
                                 onExit: { [weak self] status, signaled in self?.exited(id, status: status, signaled: signaled) })
        r.job.started = Date().timeIntervalSince1970
        do {
            try process.start()
            r.process = process
            r.job.state = .running
        } catch {
            r.job.state = .failed
            r.job.finished = r.job.started
            r.job.error = "cannot start \(settings.executable.path): \(error)"
            finishSubscribers(r)
        }
        record(r, .state, r.job.json())
    }

    /// A progress line of `peft`: "LABEL DONE/TOTAL ... ETA m:ss", as `peft train` ("train 12/60 loss ... 16950 tok/s
    /// elapsed 0:00 ETA 0:02"), `peft eval --generate` ("generate 2/20 elapsed 0:03 ETA 0:27") and the others print it.
    private static let progressPattern = try! NSRegularExpression(pattern: #"^\s*(\S.*?)\s+(\d+)/(\d+)\b.*\bETA \S+\s*$"#)
    private static let speedPattern = try! NSRegularExpression(pattern: #"([\d.]+) tok/s"#)
    private static let elapsedPattern = try! NSRegularExpression(pattern: #"elapsed (\S+)"#)
    private static let etaPattern = try! NSRegularExpression(pattern: #"ETA (\S+)"#)

    /// `peft serve`'s start line: "listening on http://HOST:PORT/v1".
    private static let listeningPattern = try! NSRegularExpression(pattern: #"listening on http://\S+:(\d+)/"#)

    private func line(_ id: String, _ line: JobProcess.Line) {
        lock.lock()
        defer { lock.unlock() }
        guard let r = runtimes[id] else { return }
        var text: String, isStatus: Bool
        switch line {
        case .text(let t): (text, isStatus) = (t, false)
        case .status(let t): (text, isStatus) = (t, true)
        }
        text = text.replacingOccurrences(of: "\u{1B}[K", with: "")
        let ns = text as NSString
        if let m = Self.progressPattern.firstMatch(in: text, range: NSRange(location: 0, length: ns.length)) {
            func capture(_ pattern: NSRegularExpression) -> String? {
                pattern.firstMatch(in: text, range: NSRange(location: 0, length: ns.length)).map { ns.substring(with: $0.range(at: 1)) }
            }
            r.job.progress.phase = ns.substring(with: m.range(at: 1))
            r.job.progress.step = Int(ns.substring(with: m.range(at: 2)))
            r.job.progress.totalSteps = Int(ns.substring(with: m.range(at: 3)))
            if let t = capture(Self.speedPattern).flatMap({ Double($0) }) { r.job.progress.tokensPerSecond = t }
            if let e = capture(Self.elapsedPattern) { r.job.progress.elapsed = e }
            if let e = capture(Self.etaPattern) { r.job.progress.eta = e }
            isStatus = true
        }
        if isStatus {
            broadcast(r, .progress(r.job))
            return
        }
        if r.job.port == nil, let m = Self.listeningPattern.firstMatch(in: text, range: NSRange(location: 0, length: ns.length)),
           let port = Int(ns.substring(with: m.range(at: 1))) {
            r.job.port = port
            record(r, .log, text)
            record(r, .state, r.job.json())
            return
        }
        if r.job.error == nil, text.hasPrefix("Error:") || text.hasPrefix("peft: error:") || text.hasPrefix("error:") {
            r.job.error = text
        }
        record(r, .log, text)
    }

    private func exited(_ id: String, status: Int32, signaled: Bool) {
        lock.lock()
        guard let r = runtimes[id] else { lock.unlock(); return }
        readMetrics(r)
        r.process = nil
        r.job.exitStatus = status
        r.job.finished = Date().timeIntervalSince1970
        if r.stopRequests > 0 {
            r.job.state = .stopped
        } else if status == 0 && !signaled {
            r.job.state = .succeeded
        } else {
            r.job.state = .failed
            if r.job.error == nil {
                r.job.error = signaled ? "killed by signal \(status)" : "exited with status \(status)"
            }
        }
        record(r, .state, r.job.json())
        finishSubscribers(r)
        lock.unlock()
        schedule()
    }

    /// Every half second: new training-log records, memory of running children, the job file now and then.
    private func poll() {
        lock.lock()
        defer { lock.unlock() }
        for r in runtimes.values where r.process != nil {
            readMetrics(r)
            if let memory = r.process?.memory {
                r.job.progress.memoryBytes = memory.now
                r.job.progress.peakMemoryBytes = max(memory.peak, r.job.progress.peakMemoryBytes ?? 0)
                broadcast(r, .progress(r.job))
            }
            if Date().timeIntervalSince(r.lastSaved) > 5 { save(r) }
        }
    }

    /// New complete lines of the followed training log become metric events (the lock is held).
    private func readMetrics(_ r: Runtime) {
        guard let url = r.metricsLog, let handle = try? FileHandle(forReadingFrom: url) else { return }
        defer { try? handle.close() }
        guard (try? handle.seek(toOffset: r.metricsOffset)) != nil, let data = try? handle.readToEnd(), !data.isEmpty else { return }
        guard let lastNewline = data.lastIndex(of: 0x0A) else { return }
        let complete = data[data.startIndex...lastNewline]
        r.metricsOffset += UInt64(complete.count)
        for line in complete.split(separator: 0x0A) where !line.isEmpty {
            record(r, .metric, String(decoding: line, as: UTF8.self))
        }
    }

    // MARK: Events and files

    private func directory(_ id: String) -> URL { jobsDirectory.appendingPathComponent(id) }

    /// Appends an event to the job's history (memory and events.jsonl) and sends it to the subscribers; a state
    /// event also rewrites job.json (the lock is held).
    private func record(_ r: Runtime, _ kind: JobEvent.Kind, _ data: String) {
        let event = JobEvent(id: r.events.count, kind: kind, data: data)
        r.events.append(event)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if var line = try? encoder.encode(event) {
            line.append(0x0A)
            let url = directory(r.job.id).appendingPathComponent("events.jsonl")
            if let handle = try? FileHandle(forWritingTo: url) {
                handle.seekToEndOfFile()
                handle.write(line)
                try? handle.close()
            } else {
                try? line.write(to: url)
            }
        }
        if kind == .state { save(r) }
        broadcast(r, .event(event))
    }

    private func save(_ r: Runtime) {
        r.lastSaved = Date()
        try? Data(r.job.json().utf8).write(to: directory(r.job.id).appendingPathComponent("job.json"), options: .atomic)
    }

    private func broadcast(_ r: Runtime, _ update: Update) {
        for c in r.subscribers.values { c.yield(update) }
    }

    private func finishSubscribers(_ r: Runtime) {
        for c in r.subscribers.values { c.finish() }
        r.subscribers.removeAll()
    }

    /// Jobs of earlier servers: their records and events; one that was still queued or running is `lost`.
    private func loadHistory() throws {
        let ids = ((try? FileManager.default.contentsOfDirectory(atPath: jobsDirectory.path)) ?? [])
            .filter { $0.hasPrefix("job-") }.sorted()
        let decoder = JSONDecoder()
        for id in ids {
            let dir = jobsDirectory.appendingPathComponent(id)
            guard let data = FileManager.default.contents(atPath: dir.appendingPathComponent("job.json").path),
                  let job = try? decoder.decode(Job.self, from: data) else { continue }
            let r = Runtime(job: job)
            if let text = try? String(contentsOf: dir.appendingPathComponent("events.jsonl"), encoding: .utf8) {
                r.events = text.split(separator: "\n").compactMap { try? decoder.decode(JobEvent.self, from: Data($0.utf8)) }
            }
            // Ids stay consecutive even where a line was cut off.
            for i in r.events.indices { r.events[i].id = i }
            runtimes[id] = r
            order.append(id)
            if let n = Int(id.dropFirst(4)) { nextNumber = max(nextNumber, n + 1) }
            if !job.state.isFinal {
                r.job.state = .lost
                r.job.error = r.job.error ?? "the server stopped while this job \(job.state == .queued ? "waited" : "ran")"
                record(r, .state, r.job.json())
            }
        }
    }
}

import Foundation
import Generation
import Kernels
import ServiceLifecycle
import Tokenizer
import Transformer

/// Continuous batching on one model. Requests wait in a bounded queue and join the running batch between decode
/// steps; every step decodes all running sequences in one `DecodeBatch` (one product per weight for the batch,
/// each sequence with its own cache, sampler and adapter) and runs at most one prefill chunk of a newly joined
/// request, so a long prompt delays the others by one chunk at a time. All model work happens on the engine's own
/// thread; `submit` may be called from anywhere.
///
/// A `Service`: graceful shutdown stops new submissions and returns once every queued and running request is done.
public final class BatchEngine: Service, @unchecked Sendable {
    public struct Settings: Sendable {
        /// Sequences decoded together.
        public var maxBatch = 8
        /// Requests waiting for a slot before new ones are refused.
        public var maxQueue = 64
        /// Tokens of prompt and answer a request may hold.
        public var maxModelLength: Int
        /// Prompt tokens prefilled between two decode steps.
        public var prefillChunk = 64

        public init(maxModelLength: Int) { self.maxModelLength = maxModelLength }
    }

    public let model: TransformerModel
    public let tokenizer: Tokenizer
    public let settings: Settings
    let metrics: ServerMetrics?

    private let condition = NSCondition()
    // Guarded by `condition`.
    private var waiting: [Pending] = []
    private var cancelled: Set<Int> = []
    /// Ids admitted and not yet finished.
    private var live: Set<Int> = []
    private var stopping = false
    private var nextID = 0
    private var finishedWaiters: [CheckedContinuation<Void, Never>] = []
    private var threadDone = false
    private var started = false
    private var admissionPaused = false

    // Engine thread only.
    private var active: [Slot] = []
    private let batch: DecodeBatch

    public init(model: TransformerModel, tokenizer: Tokenizer, settings: Settings, metrics: ServerMetrics? = nil) {
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self.metrics = metrics
        batch = DecodeBatch(model: model, maxRows: settings.maxBatch)
    }

    private struct Pending {
        let id: Int
        let job: GenerationJob
        let continuation: AsyncStream<GenerationEvent>.Continuation
        let arrived: ContinuousClock.Instant
    }

    private final class Slot {
        let id: Int
        let job: GenerationJob
        let continuation: AsyncStream<GenerationEvent>.Continuation
        let arrived: ContinuousClock.Instant
        let session: DecodeSession
        var prefilled = 0
        var logits: [Float]?
        var sampler: TokenSampler
        var history: [Int32]
        var generated = 0
        var decoder: StreamingDecoder
        var stopper: StopMatcher
        var lastToken: ContinuousClock.Instant?

        init(_ p: Pending, session: DecodeSession, tokenizer: Tokenizer) {
            id = p.id
            job = p.job
            continuation = p.continuation
            arrived = p.arrived
            self.session = session
            sampler = TokenSampler(options: p.job.options)
            history = p.job.prompt
            decoder = StreamingDecoder(tokenizer: tokenizer)
            stopper = StopMatcher(stops: p.job.stopStrings)
        }
    }

    // MARK: - Submitting

    /// Queues `job`; its events arrive on the returned stream. Dropping or cancelling the stream's consumer cancels
    /// the generation and frees its slot.
    /// - Throws: `EngineError.queueFull` when `maxQueue` requests already wait, `.shuttingDown` after shutdown began.
    public func submit(_ job: GenerationJob) throws -> AsyncStream<GenerationEvent> {
        try submitCancellable(job).events
    }

    /// `submit`, also returning the id that `cancel` takes.
    public func submitCancellable(_ job: GenerationJob) throws -> (id: Int, events: AsyncStream<GenerationEvent>) {
        condition.lock()
        defer { condition.unlock() }
        if stopping { throw EngineError.shuttingDown }
        if waiting.count >= settings.maxQueue { throw EngineError.queueFull(waiting.count) }
        let id = nextID
        nextID += 1
        let (stream, continuation) = AsyncStream<GenerationEvent>.makeStream(bufferingPolicy: .unbounded)
        continuation.onTermination = { [weak self] termination in
            if case .cancelled = termination { self?.cancel(id) }
        }
        waiting.append(Pending(id: id, job: job, continuation: continuation, arrived: .now))
        metrics?.queueDepth.set(Int64(waiting.count))
        condition.signal()
        return (id, stream)
    }

    /// Stops a queued or running generation and frees its slot (its stream ends without a `finished` event).
    public func cancel(_ id: Int) {
        condition.lock()
        defer { condition.unlock() }
        if let i = waiting.firstIndex(where: { $0.id == id }) {
            waiting.remove(at: i).continuation.finish()
            metrics?.queueDepth.set(Int64(waiting.count))
        } else if live.contains(id) {
            cancelled.insert(id)
            condition.signal()
        }
    }

    /// Requests waiting and running (for /health and tests).
    public var load: (waiting: Int, running: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (waiting.count, runningCount)
    }
    private var runningCount = 0

    // MARK: - Running

    /// Starts the engine thread (idempotent); `run()` does this and waits for graceful shutdown.
    public func start() {
        condition.lock()
        defer { condition.unlock() }
        guard !started else { return }
        started = true
        let thread = Thread { [self] in loop() }
        thread.name = "peft-engine"
        thread.stackSize = 8 << 20
        thread.start()
    }

    public func run() async throws {
        start()
        await withGracefulShutdownHandler {
            await finished()
        } onGracefulShutdown: {
            self.shutdown()
        }
    }

    /// Holds queued requests in the queue (running ones go on) until resumed; for maintenance and tests of the
    /// queue's bound.
    public func pauseAdmission(_ paused: Bool) {
        condition.lock()
        admissionPaused = paused
        condition.signal()
        condition.unlock()
    }

    /// Refuses new requests; the thread exits once the queued and running ones are done.
    public func shutdown() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    /// Returns when the engine thread has exited (after `shutdown`).
    public func finished() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            condition.lock()
            if threadDone || !started {
                condition.unlock()
                c.resume()
            } else {
                finishedWaiters.append(c)
                condition.unlock()
            }
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while (waiting.isEmpty || admissionPaused) && active.isEmpty && cancelled.isEmpty && !stopping { condition.wait() }
            if stopping { admissionPaused = false }
            if stopping && waiting.isEmpty && active.isEmpty {
                threadDone = true
                let waiters = finishedWaiters
                finishedWaiters.removeAll()
                condition.unlock()
                waiters.forEach { $0.resume() }
                return
            }
            let dropped = cancelled
            cancelled.removeAll()
            var admitted: [Pending] = []
            while !admissionPaused, active.count + admitted.count < settings.maxBatch, !waiting.isEmpty {
                admitted.append(waiting.removeFirst())
                live.insert(admitted.last!.id)
            }
            metrics?.queueDepth.set(Int64(waiting.count))
            condition.unlock()

            for p in admitted { admit(p) }
            if !dropped.isEmpty {
                for s in active where dropped.contains(s.id) { s.continuation.finish() }
                active.removeAll { dropped.contains($0.id) }
            }
            publishRunning()
            prefillOneChunk()
            sampleAndStep()
            publishRunning()
        }
    }

    private func publishRunning() {
        condition.lock()
        runningCount = active.count
        live = live.intersection(active.map(\.id))
        condition.unlock()
        metrics?.running.set(Int64(active.count))
    }

    private func admit(_ p: Pending) {
        let lead = p.job.adapter?.leadingRows ?? 0
        let capacity = min(settings.maxModelLength + lead, model.config.maxPositionEmbeddings)
        let session = DecodeSession(model: model, capacity: capacity, chunkRows: settings.prefillChunk,
                                    initialAllocation: min(capacity, max(256, p.job.prompt.count + 64)),
                                    adapter: .some(p.job.adapter))
        active.append(Slot(p, session: session, tokenizer: tokenizer))
    }

    /// One chunk of the oldest prompt still being prefilled.
    private func prefillOneChunk() {
        guard let s = active.first(where: { $0.prefilled < $0.job.prompt.count }) else { return }
        let end = min(s.job.prompt.count, s.prefilled + settings.prefillChunk)
        do {
            let logits = try s.session.append(Array(s.job.prompt[s.prefilled..<end]))
            metrics?.promptTokens.increment(by: Int64(end - s.prefilled))
            s.prefilled = end
            if end == s.job.prompt.count { s.logits = logits }
        } catch {
            fail(s, "\(error)")
        }
    }

    /// Samples a token for every sequence with fresh logits, ends those that stop, and decodes the rest together.
    private func sampleAndStep() {
        var stepping: [(Slot, Int32)] = []
        var ended: [Int] = []
        let now = ContinuousClock.now
        for s in active {
            guard let logits = s.logits else { continue }
            s.logits = nil
            let next = s.sampler.next(logits: logits, history: s.history, generated: s.generated)
            if let last = s.lastToken {
                metrics?.timePerOutputToken.record(now - last)
            } else {
                metrics?.timeToFirstToken.record(now - s.arrived)
            }
            s.lastToken = now
            if s.job.stopIDs.contains(next) {
                finish(s, reason: "stop", flush: true)
                ended.append(s.id)
                continue
            }
            s.history.append(next)
            s.generated += 1
            metrics?.generationTokens.increment()
            let (text, stopped) = s.stopper.feed(s.decoder.append(next))
            if !text.isEmpty { s.continuation.yield(.text(text)) }
            if stopped {
                finish(s, reason: "stop", flush: false)
                ended.append(s.id)
            } else if s.generated >= s.job.options.maxNewTokens || s.session.leading + s.session.tokens.count + 1 > s.session.capacity {
                finish(s, reason: "length", flush: true)
                ended.append(s.id)
            } else {
                stepping.append((s, next))
            }
        }
        if !ended.isEmpty { active.removeAll { ended.contains($0.id) } }
        guard !stepping.isEmpty else { return }
        // Rows of one adapter side by side: each run of them is refined together after the shared product.
        stepping.sort { key($0.0) < key($1.0) }
        metrics?.batchSize.record(Double(stepping.count))
        do {
            let logits = try batch.step(stepping.map(\.0.session), tokens: stepping.map(\.1))
            let V = model.config.vocabSize
            for (i, (s, _)) in stepping.enumerated() {
                s.logits = Array(UnsafeBufferPointer(start: logits + i * V, count: V))
            }
        } catch {
            for (s, _) in stepping { fail(s, "\(error)") }
        }
    }

    private func key(_ s: Slot) -> UInt {
        s.job.adapter.map { UInt(bitPattern: ObjectIdentifier($0).hashValue) } ?? 0
    }

    private func finish(_ s: Slot, reason: String, flush: Bool) {
        if flush {
            let (text, _) = s.stopper.feed(s.decoder.flush())
            let rest = text + s.stopper.flush()
            if !rest.isEmpty { s.continuation.yield(.text(rest)) }
        }
        metrics?.requestDuration.record(ContinuousClock.now - s.arrived)
        s.continuation.yield(.finished(GenerationOutcome(finishReason: reason, promptTokens: s.job.prompt.count,
                                                         completionTokens: s.generated)))
        s.continuation.finish()
    }

    private func fail(_ s: Slot, _ message: String) {
        s.continuation.yield(.failed(message))
        s.continuation.finish()
        active.removeAll { $0 === s }
    }
}

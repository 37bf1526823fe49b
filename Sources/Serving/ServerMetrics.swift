import Prometheus

/// The server's Prometheus metrics (`GET /metrics`, text exposition format).
public final class ServerMetrics: @unchecked Sendable {
    public let registry = PrometheusCollectorRegistry()
    let promptTokens: Counter
    let generationTokens: Counter
    let queueDepth: Gauge
    let running: Gauge
    let batchSize: ValueHistogram
    let timeToFirstToken: DurationHistogram
    let timePerOutputToken: DurationHistogram
    let requestDuration: DurationHistogram
    private let lock = NSLockLike()
    private var requestCounters: [String: Counter] = [:]

    public init() {
        promptTokens = registry.makeCounter(name: "peft_prompt_tokens_total", help: "Prompt tokens prefilled.")
        generationTokens = registry.makeCounter(name: "peft_generation_tokens_total", help: "Tokens generated.")
        queueDepth = registry.makeGauge(name: "peft_queue_depth", help: "Requests waiting for a slot in the batch.")
        running = registry.makeGauge(name: "peft_running_requests", help: "Requests in the running batch.")
        batchSize = registry.makeValueHistogram(name: "peft_batch_size", buckets: [1, 2, 4, 8, 16, 32, 64],
                                                help: "Sequences decoded together per step.")
        let fine: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(20), .milliseconds(40), .milliseconds(80),
                                .milliseconds(160), .milliseconds(320), .milliseconds(640), .milliseconds(1280), .milliseconds(2560),
                                .milliseconds(5120), .milliseconds(10240), .milliseconds(20480)]
        timeToFirstToken = registry.makeDurationHistogram(name: "peft_time_to_first_token_seconds", buckets: fine,
                                                          help: "From arrival to the first generated token.")
        timePerOutputToken = registry.makeDurationHistogram(name: "peft_time_per_output_token_seconds", buckets: fine,
                                                            help: "Between consecutive generated tokens of a request.")
        requestDuration = registry.makeDurationHistogram(name: "peft_request_duration_seconds",
                                                         buckets: fine + [.milliseconds(40960), .milliseconds(81920)],
                                                         help: "From arrival to the last generated token.")
    }

    /// Counts a finished HTTP request by endpoint and status code.
    func countRequest(endpoint: String, status: Int) {
        let key = "\(endpoint) \(status)"
        lock.withLock {
            if requestCounters[key] == nil {
                requestCounters[key] = registry.makeCounter(name: "peft_requests_total",
                                                            labels: [("endpoint", endpoint), ("status", String(status))],
                                                            help: "HTTP requests by endpoint and status.")
            }
            requestCounters[key]!.increment()
        }
    }

    /// The exposition text.
    public func render() -> String {
        var bytes: [UInt8] = []
        registry.emit(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}

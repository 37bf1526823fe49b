import Foundation
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
    private let lock = NSLock()
    private var requestCounters: [String: Counter] = [:]

    /// `peft_<name>_<unit>` with its help line.
    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "peft", metricName: metric, unitName: unit, helpText: help)
    }

    public init() {
        promptTokens = registry.makeCounter(descriptor: Self.name("prompt_tokens", "total", "Prompt tokens prefilled."))
        generationTokens = registry.makeCounter(descriptor: Self.name("generation_tokens", "total", "Tokens generated."))
        queueDepth = registry.makeGauge(descriptor: Self.name("queue", "depth", "Requests waiting for a slot in the batch."))
        running = registry.makeGauge(descriptor: Self.name("running", "requests", "Requests in the running batch."))
        batchSize = registry.makeValueHistogram(descriptor: Self.name("batch", "size", "Sequences decoded together per step."),
                                                buckets: [1, 2, 4, 8, 16, 32, 64])
        let fine: [Duration] = [.milliseconds(5), .milliseconds(10), .milliseconds(20), .milliseconds(40), .milliseconds(80),
                                .milliseconds(160), .milliseconds(320), .milliseconds(640), .milliseconds(1280), .milliseconds(2560),
                                .milliseconds(5120), .milliseconds(10240), .milliseconds(20480)]
        timeToFirstToken = registry.makeDurationHistogram(
            descriptor: Self.name("time_to_first_token", "seconds", "From arrival to the first generated token."), buckets: fine)
        timePerOutputToken = registry.makeDurationHistogram(
            descriptor: Self.name("time_per_output_token", "seconds", "Between consecutive generated tokens of a request."),
            buckets: fine)
        requestDuration = registry.makeDurationHistogram(
            descriptor: Self.name("request_duration", "seconds", "From arrival to the last generated token."),
            buckets: fine + [.milliseconds(40960), .milliseconds(81920)])
    }

    /// Counts a finished HTTP request by endpoint and status code.
    func countRequest(endpoint: String, status: Int) {
        let key = "\(endpoint) \(status)"
        lock.withLock {
            if requestCounters[key] == nil {
                requestCounters[key] = registry.makeCounter(
                    descriptor: Self.name("requests", "total", "HTTP requests by endpoint and status."),
                    labels: [("endpoint", endpoint), ("status", String(status))])
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

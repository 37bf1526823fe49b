import AsyncHTTPClient
import Foundation
import Generation
import Logging
import NIOCore
import NIOHTTP1
import Serving
import ServiceLifecycle
import TestSupport
import Tokenizer
import Transformer
import XCTest

/// A `peft serve` stack in the test process on a free loopback port, driven over HTTP by AsyncHTTPClient.
final class ServerHarness {
    let served: ServedModel
    let engine: BatchEngine
    let port: Int
    private let running: RunningService

    /// Adapters served with the tiny Qwen2 fixture, one of each method.
    static let adapters: [(String, String)] = [
        ("lora", "adapters/tiny-qwen2-lora-all"), ("dora", "methods/tiny-qwen2-dora/adapter"),
        ("ia3", "methods/tiny-qwen2-ia3/adapter"), ("prompt", "methods/tiny-qwen2-prompt/adapter"),
        ("prefix", "methods/tiny-qwen2-prefix/adapter"), ("ptuning", "methods/tiny-qwen2-ptuning/adapter"),
    ]

    init(maxBatch: Int = 8, maxQueue: Int = 64, apiKey: String? = nil, base: String = "tiny-qwen2", idleTimeout: Double? = 30,
         adapters: [(String, String)] = ServerHarness.adapters) async throws {
        let dir = modelFixture(base)
        let model = try TransformerModel.load(directory: dir, dtype: .float32)
        let tokenizer = try Tokenizer.load(directory: dir)
        let (defaults, eos) = try SamplingOptions.defaults(directory: dir)
        served = ServedModel(name: "tiny", model: model, tokenizer: tokenizer,
                             formatter: try ChatFormatter(template: .jinja, tokenizer: tokenizer), defaults: defaults,
                             eosTokenIDs: eos.isEmpty ? model.config.eosTokenIDs.compactMap { Int32(exactly: $0) } : eos)
        for (name, path) in adapters { try served.loadAdapter(name: name, path: fixtureURL(path).path) }
        var settings = BatchEngine.Settings(maxModelLength: 128)
        settings.maxBatch = maxBatch
        settings.maxQueue = maxQueue
        settings.prefillChunk = 16
        let metrics = ServerMetrics()
        engine = BatchEngine(model: model, tokenizer: tokenizer, settings: settings, metrics: metrics)
        var http = OpenAIServer.Settings()
        http.port = 0
        http.apiKey = apiKey
        http.idleTimeout = idleTimeout
        let server = OpenAIServer(served: served, engine: engine, metrics: metrics, settings: http)
        running = await RunningService { logger, onListening in server.application(logger: logger, onListening: onListening) }
        port = running.port
    }

    /// Graceful shutdown: running requests finish, then the group returns.
    func stop() async throws { try await running.stop() }

    typealias Reply = HTTPReply

    func request(_ method: HTTPMethod, _ path: String, body: String? = nil, headers: [(String, String)] = []) async throws -> Reply {
        try await running.request(method, path, body: body.map { Data($0.utf8) }, headers: headers)
    }

    func post(_ path: String, _ object: [String: Any], headers: [(String, String)] = []) async throws -> Reply {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return try await request(.POST, path, body: String(decoding: data, as: UTF8.self), headers: headers)
    }

    /// The `data:` payloads of a streamed answer (the last is "[DONE]").
    func stream(_ path: String, _ object: [String: Any]) async throws -> [String] {
        let reply = try await post(path, object)
        XCTAssertEqual(reply.status, 200, reply.body)
        return reply.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }.map {
            XCTAssertTrue($0.hasPrefix("data: "), $0)
            return String($0.dropFirst(6))
        }
    }
}

extension HTTPReply {
    /// The first choice of a completion.
    var choice: [String: Any]? { (json["choices"] as? [[String: Any]])?.first }
    /// A chat answer's text ("<none>" when there is none).
    var content: String { (choice?["message"] as? [String: Any])?["content"] as? String ?? "<none>" }
}

/// Greedy answer of `prompt` with `adapter` decoded alone, without the server (the reference).
func referenceAnswer(_ served: ServedModel, prompt: [Int32], adapter: ModelAdapter?, maxTokens: Int, stops: Set<Int32>) throws -> (ids: [Int32], text: String) {
    let session = DecodeSession(model: served.model, capacity: 128 + (adapter?.leadingRows ?? 0), adapter: .some(adapter))
    var logits = try session.append(prompt)
    var out: [Int32] = []
    var options = served.defaults
    options.temperature = 0
    var sampler = TokenSampler(options: options)
    var history = prompt
    while out.count < maxTokens {
        let t = sampler.next(logits: logits, history: history)
        if stops.contains(t) { break }
        out.append(t)
        history.append(t)
        if out.count == maxTokens { break }
        logits = try session.append([t])
    }
    var decoder = StreamingDecoder(tokenizer: served.tokenizer)
    let text = out.map { decoder.append($0) }.joined() + decoder.flush()
    return (out, text)
}

import ArgumentParser
import Foundation
import Logging
import Serving
import Tokenizer

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the OpenAI API (chat/completions, completions, models) with adapters on one base model and continuous batching.",
        discussion: "Clients name the base model or an adapter as `model`; requests of different adapters decode in one batch. "
            + "Adapters of every method load at start (--adapter NAME=DIR) or at run time (POST /v1/load_lora_adapter with "
            + "{\"lora_name\", \"lora_path\"}; POST /v1/unload_lora_adapter with {\"lora_name\"}). GET /health, GET /metrics "
            + "(Prometheus). SIGTERM or SIGINT: stop taking requests, finish the queued and running ones, exit 0.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .customLong("adapter"), help: "An adapter to serve, as NAME=DIR (a directory or hub id; NAME is what clients send as model); repeatable. A bare DIR is named after its folder.")
    var adapters: [String] = []
    @Option(help: "The base model's name for clients (default: --model as given).") var servedModelName: String?
    @Option(help: "Address to listen on (127.0.0.1: this machine only).") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed at start).") var port = 8000
    @Option(help: "Seconds a connection may wait without sending a complete request head (idle keep-alive, slow headers) before it is closed; 0: never.")
    var idleTimeout: Double = 30
    @Option(help: "Require 'Authorization: Bearer KEY' on every request but /health (default: PEFT_API_KEY if set).") var apiKey: String?
    @Option(help: "Most sequences decoded together.") var maxBatch = 8
    @Option(help: "Most requests waiting for a slot; beyond it requests get 429.") var maxQueue = 64
    @Option(help: "Most tokens of prompt plus answer per request (default: the model's context, at most 32768).") var maxModelLen: Int?
    @Option(help: "Prompt tokens prefilled between two decode steps (a long prompt delays the running requests by one chunk at a time).")
    var prefillChunk = 64
    @Option(help: "Compute precision: bfloat16 (default) or float32.") var dtype: ComputeDType = .bfloat16
    @OptionGroup var quantizeOption: QuantizeOption
    @OptionGroup var templateOptions: TemplateOptions

    func validate() throws {
        guard maxBatch >= 1 && maxBatch <= 256 else { throw ValidationError("--max-batch must be in 1...256") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must not be negative") }
        guard port >= 0 && port <= 65535 else { throw ValidationError("--port must be in 0...65535") }
        guard prefillChunk >= 1 else { throw ValidationError("--prefill-chunk must be at least 1") }
        if let m = maxModelLen, m < 2 { throw ValidationError("--max-model-len must be at least 2") }
        for spec in adapters { _ = try Self.adapterSpec(spec) }
    }

    static func adapterSpec(_ spec: String) throws -> (name: String, location: String) {
        if let eq = spec.firstIndex(of: "="), !spec[..<eq].contains("/") {
            let name = String(spec[..<eq]), location = String(spec[spec.index(after: eq)...])
            guard !name.isEmpty, !location.isEmpty else { throw ValidationError("--adapter '\(spec)': expected NAME=DIR") }
            return (name, location)
        }
        let name = URL(fileURLWithPath: spec).lastPathComponent
        guard !name.isEmpty else { throw ValidationError("--adapter '\(spec)': expected NAME=DIR") }
        return (name, spec)
    }

    func run() async throws {
        let loaded = try LoadedModel.open(modelOptions.url, dtype: dtype.dtype, adapter: nil, quantize: quantizeOption.quantize)
        let formatter: ChatFormatter?
        do { formatter = try templateOptions.formatter(for: loaded.tokenizer) } catch {
            Terminal.note("note: no chat format (\(error)); /v1/chat/completions answers 400, /v1/completions works")
            formatter = nil
        }
        let context = loaded.model.config.maxPositionEmbeddings
        let maxLength = min(maxModelLen ?? min(context, 32768), context)
        let served = ServedModel(name: servedModelName ?? modelOptions.model, model: loaded.model, tokenizer: loaded.tokenizer,
                                 formatter: formatter, defaults: loaded.sampling, eosTokenIDs: loaded.eosTokenIDs)
        for spec in adapters {
            let (name, location) = try Self.adapterSpec(spec)
            try HubResolution.resolve(location)
            do { try served.loadAdapter(name: name, path: HubResolution.url(location).path) } catch let e as APIError {
                throw ValidationError("--adapter \(spec): \(e.message)")
            }
        }
        var engineSettings = BatchEngine.Settings(maxModelLength: maxLength)
        engineSettings.maxBatch = maxBatch
        engineSettings.maxQueue = maxQueue
        engineSettings.prefillChunk = prefillChunk
        let metrics = ServerMetrics()
        let engine = BatchEngine(model: loaded.model, tokenizer: loaded.tokenizer, settings: engineSettings, metrics: metrics)
        var settings = OpenAIServer.Settings()
        settings.host = host
        settings.port = port
        settings.idleTimeout = idleTimeout > 0 ? idleTimeout : nil
        settings.apiKey = apiKey ?? ProcessInfo.processInfo.environment["PEFT_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        let server = OpenAIServer(served: served, engine: engine, metrics: metrics, settings: settings)
        var logger = Logger(label: "peft.serve")
        logger.logLevel = .warning
        let names = [served.name] + served.adapterList.map(\.name)
        let host = self.host, batchSize = engineSettings.maxBatch
        let app = server.application(logger: logger) { port in
            Terminal.note("peft serve: listening on http://\(host):\(port)/v1 (models: \(names.joined(separator: ", ")); batch \(batchSize), context \(maxLength))")
        }
        try await app.runService()
        Terminal.note("peft serve: stopped")
    }
}

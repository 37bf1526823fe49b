import Adapters
import Foundation
import Generation
import Tokenizer
import Transformer

/// The base model a server answers for and the adapters loaded on it, by the names clients use as `model`.
public final class ServedModel: @unchecked Sendable {
    /// The base model's name in `/v1/models` and requests.
    public let name: String
    public let model: TransformerModel
    public let tokenizer: Tokenizer
    /// Renders `messages` (the model's own chat template by default); nil when the model has no usable format.
    public let formatter: ChatFormatter?
    /// Sampling settings of generation_config.json, used for what a request leaves out.
    public let defaults: SamplingOptions
    /// End-of-sequence ids (generation_config.json, then config.json).
    public let eosTokenIDs: [Int32]
    let created = Int(Date().timeIntervalSince1970)

    public struct LoadedAdapter {
        public let adapter: ModelAdapter
        public let path: String
        public let created: Int
    }

    private let lock = NSLock()
    private var adapters: [String: LoadedAdapter] = [:]

    public init(name: String, model: TransformerModel, tokenizer: Tokenizer, formatter: ChatFormatter?,
                defaults: SamplingOptions, eosTokenIDs: [Int32]) {
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.formatter = formatter
        self.defaults = defaults
        self.eosTokenIDs = eosTokenIDs
    }

    /// The adapters by name, sorted.
    public var adapterList: [(name: String, adapter: LoadedAdapter)] {
        lock.withLock { adapters.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }
    }

    /// Resolves a request's `model`: the base (nil adapter) or a loaded adapter; nil when unknown.
    public func resolve(_ requested: String) -> ModelAdapter?? {
        if requested == name { return .some(nil) }
        return lock.withLock { adapters[requested].map { .some($0.adapter) } }
    }

    /// Loads the adapter folder at `path` (any supported method) under `name`.
    /// - Throws: `APIError` 400 when the name is taken or the folder is not an adapter for this model.
    public func loadAdapter(name adapterName: String, path: String) throws {
        guard !adapterName.isEmpty else { throw APIError.badRequest("'lora_name' must not be empty", param: "lora_name") }
        guard adapterName != name else { throw APIError.badRequest("'\(adapterName)' is the base model's name", param: "lora_name") }
        if lock.withLock({ adapters[adapterName] != nil }) {
            throw APIError.badRequest("an adapter named '\(adapterName)' is already loaded; unload it first", param: "lora_name")
        }
        let adapter: TrainableAdapter
        do {
            adapter = try AdapterFiles.load(from: URL(fileURLWithPath: path), model: model)
        } catch {
            throw APIError.badRequest("cannot load the adapter at '\(path)': \(error)", param: "lora_path")
        }
        try lock.withLock {
            guard adapters[adapterName] == nil else {
                throw APIError.badRequest("an adapter named '\(adapterName)' is already loaded; unload it first", param: "lora_name")
            }
            adapters[adapterName] = LoadedAdapter(adapter: adapter, path: path, created: Int(Date().timeIntervalSince1970))
        }
    }

    /// Removes an adapter; requests already running with it finish with it.
    public func unloadAdapter(name adapterName: String) throws {
        try lock.withLock {
            guard adapters.removeValue(forKey: adapterName) != nil else {
                throw APIError(.notFound, "no adapter named '\(adapterName)' is loaded", param: "lora_name")
            }
        }
    }

    /// The ids that end an answer: the chat format's end of turn (chat requests) and the model's eos ids.
    public func stopIDs(chat: Bool) -> Set<Int32> {
        Set((chat ? formatter?.stopIDs ?? [] : []) + eosTokenIDs)
    }
}

import Generation
import Transformer

/// One generation the engine runs: prompt ids, the adapter to decode with, sampling settings and when to stop.
public struct GenerationJob: @unchecked Sendable {
    public var prompt: [Int32]
    /// The model name the request asked for (the base or an adapter's name), for logs and metrics.
    public var modelName: String
    /// nil: the bare base model.
    public var adapter: ModelAdapter?
    /// `maxNewTokens` is the request's `max_tokens`.
    public var options: SamplingOptions
    public var stopIDs: Set<Int32>
    public var stopStrings: [String]

    public init(prompt: [Int32], modelName: String, adapter: ModelAdapter?, options: SamplingOptions,
                stopIDs: Set<Int32>, stopStrings: [String]) {
        self.prompt = prompt
        self.modelName = modelName
        self.adapter = adapter
        self.options = options
        self.stopIDs = stopIDs
        self.stopStrings = stopStrings
    }
}

/// What a running generation reports, in order: text pieces, then exactly one `finished` or `failed`.
public enum GenerationEvent: Sendable {
    case text(String)
    case finished(GenerationOutcome)
    case failed(String)
}

public struct GenerationOutcome: Sendable, Equatable {
    /// "stop" (an end-of-turn id or a stop string) or "length" (max_tokens or the context).
    public var finishReason: String
    public var promptTokens: Int
    public var completionTokens: Int
}

public enum EngineError: Error, CustomStringConvertible {
    case queueFull(Int)
    case shuttingDown

    public var description: String {
        switch self {
        case .queueFull(let n): "the server is busy: \(n) requests are already waiting; retry later"
        case .shuttingDown: "the server is shutting down"
        }
    }
}

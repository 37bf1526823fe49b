import Foundation

/// Decoding settings. Defaults come from the model's `generation_config.json`; flags override them.
/// A temperature of 0 (or `do_sample: false`) means greedy decoding.
public struct SamplingOptions: Sendable, Equatable, Codable {
    public var maxNewTokens = 256
    public var temperature: Float = 0
    public var topK = 0
    public var topP: Float = 1
    public var repetitionPenalty: Float = 1
    public var noRepeatNgramSize = 0
    public var seed: UInt64 = 0

    public init() {}

    public var isGreedy: Bool { temperature <= 0 }

    /// Sampling defaults and stop ids from `generation_config.json` in `directory` (absent file: greedy, no stops).
    public static func defaults(directory: URL) throws -> (options: SamplingOptions, eosTokenIDs: [Int32]) {
        var o = SamplingOptions()
        let url = directory.appendingPathComponent("generation_config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return (o, []) }
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(contentsOf: url))) as? [String: Any] else {
            throw GenerationError.config(path: url.path, reason: "not a JSON object")
        }
        let doSample = (obj["do_sample"] as? Bool) ?? false
        if doSample {
            o.temperature = (obj["temperature"] as? NSNumber)?.floatValue ?? 1
            o.topK = (obj["top_k"] as? NSNumber)?.intValue ?? 50
            o.topP = (obj["top_p"] as? NSNumber)?.floatValue ?? 1
        }
        o.repetitionPenalty = (obj["repetition_penalty"] as? NSNumber)?.floatValue ?? 1
        o.noRepeatNgramSize = (obj["no_repeat_ngram_size"] as? NSNumber)?.intValue ?? 0
        if let m = (obj["max_new_tokens"] as? NSNumber)?.intValue { o.maxNewTokens = m }
        var eos: [Int32] = []
        if let e = obj["eos_token_id"] as? NSNumber { eos = [e].compactMap { Int32(exactly: $0.doubleValue) } }
        if let e = obj["eos_token_id"] as? [NSNumber] { eos = e.compactMap { Int32(exactly: $0.doubleValue) } }
        if o.maxNewTokens < 1 { throw GenerationError.config(path: url.path, reason: "max_new_tokens must be positive") }
        return (o, eos)
    }

    public func validate() throws {
        if temperature < 0 { throw GenerationError.options("--temperature must not be negative (0 = greedy)") }
        if topK < 0 { throw GenerationError.options("--top-k must not be negative (0 = off)") }
        if !(topP > 0 && topP <= 1) { throw GenerationError.options("--top-p must be in (0, 1]") }
        if !(repetitionPenalty > 0) { throw GenerationError.options("--repetition-penalty must be positive (1 = off)") }
        if noRepeatNgramSize < 0 { throw GenerationError.options("--no-repeat-ngram-size must not be negative") }
        if maxNewTokens < 1 { throw GenerationError.options("--max-new-tokens must be at least 1") }
    }
}

public enum GenerationError: Error, CustomStringConvertible {
    case config(path: String, reason: String)
    case options(String)

    public var description: String {
        switch self {
        case let .config(path, reason): "\(path): \(reason)"
        case let .options(reason): reason
        }
    }
}

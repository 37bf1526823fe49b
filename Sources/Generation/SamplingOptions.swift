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
    /// OpenAI's penalties on generated tokens: the logit of a token generated c times drops by
    /// `frequencyPenalty * c + presencePenalty` (0 = off; the prompt is not counted, as in vLLM).
    public var frequencyPenalty: Float = 0
    public var presencePenalty: Float = 0
    /// Drops tokens less likely than `minP` times the most likely one (0 = off).
    public var minP: Float = 0

    public init() {}

    private enum CodingKeys: String, CodingKey {
        case maxNewTokens, temperature, topK, topP, repetitionPenalty, noRepeatNgramSize, seed, frequencyPenalty,
             presencePenalty, minP
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxNewTokens = try c.decodeIfPresent(Int.self, forKey: .maxNewTokens) ?? maxNewTokens
        temperature = try c.decodeIfPresent(Float.self, forKey: .temperature) ?? temperature
        topK = try c.decodeIfPresent(Int.self, forKey: .topK) ?? topK
        topP = try c.decodeIfPresent(Float.self, forKey: .topP) ?? topP
        repetitionPenalty = try c.decodeIfPresent(Float.self, forKey: .repetitionPenalty) ?? repetitionPenalty
        noRepeatNgramSize = try c.decodeIfPresent(Int.self, forKey: .noRepeatNgramSize) ?? noRepeatNgramSize
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? seed
        frequencyPenalty = try c.decodeIfPresent(Float.self, forKey: .frequencyPenalty) ?? 0
        presencePenalty = try c.decodeIfPresent(Float.self, forKey: .presencePenalty) ?? 0
        minP = try c.decodeIfPresent(Float.self, forKey: .minP) ?? 0
    }

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
        if !(-2...2).contains(frequencyPenalty) { throw GenerationError.options("frequency_penalty must be in [-2, 2]") }
        if !(-2...2).contains(presencePenalty) { throw GenerationError.options("presence_penalty must be in [-2, 2]") }
        if !(0...1).contains(minP) { throw GenerationError.options("min_p must be in [0, 1]") }
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

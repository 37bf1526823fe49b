import Foundation
import Kernels
import Transformer

/// Prefill + KV-cache decoding with a `TokenSampler`, stopping at any of `stopIDs` or `maxNewTokens`.
///
/// ```swift
/// let result = try Generator(model: model).generate(prompt: ids, options: options, stopIDs: [eos]) { id in
///     print(decoder.append(id), terminator: "")
///     return true        // false stops early
/// }
/// ```
public final class Generator {
    public struct Result: Sendable {
        /// Generated ids (a final stop id is not included).
        public var tokens: [Int32]
        public var promptTokens: Int
        public var prefillSeconds: Double
        public var decodeSeconds: Double
        /// Why generation ended: "stop" (a stop id), "length" (max new tokens) or "cancelled".
        public var finishReason: String

        public var prefillTokensPerSecond: Double { Double(promptTokens) / max(prefillSeconds, 1e-9) }
        /// Single-token forward steps run after the prefill.
        public var decodeSteps: Int
        /// Decode speed: single-token forward steps per second.
        public var decodeTokensPerSecond: Double { decodeSteps > 0 ? Double(decodeSteps) / max(decodeSeconds, 1e-9) : 0 }
    }

    public let model: TransformerModel
    public let session: DecodeSession

    /// - Parameter capacity: tokens of prompt and answer the session must hold (default 4096, at most the context).
    public init(model: TransformerModel, capacity: Int? = nil) {
        self.model = model
        // The adapter's virtual tokens or prefix take cache rows in front of the `capacity` tokens.
        session = DecodeSession(model: model, capacity: min((capacity ?? 4096) + model.leadingRows,
                                                            model.config.maxPositionEmbeddings))
    }

    /// Generates after `prompt`. If the session already holds a prefix of `prompt` (a chat's earlier turns), only
    /// the new tokens are prefilled.
    public func generate(prompt: [Int32], options: SamplingOptions, stopIDs: [Int32],
                         onToken: (Int32) -> Bool = { _ in true }) throws -> Result {
        try options.validate()
        guard !prompt.isEmpty else { throw GenerationError.options("the prompt is empty") }
        let room = session.capacity - model.leadingRows
        guard prompt.count < room else {
            throw TransformerError.input(reason: "prompt of \(prompt.count) tokens is longer than the context (\(room) tokens\(model.leadingRows > 0 ? " after the adapter's \(model.leadingRows) virtual tokens" : ""))")
        }
        let shared = zip(session.tokens, prompt).prefix { $0 == $1 }.count
        session.truncate(to: min(shared, prompt.count - 1))
        let clock = ContinuousClock()
        let t0 = clock.now
        var logits = try session.append(Array(prompt[session.tokens.count...]))
        let t1 = clock.now
        var sampler = TokenSampler(options: options)
        var history = prompt
        var generated: [Int32] = []
        var reason = "length"
        var steps = 0
        let stops = Set(stopIDs)
        let budget = min(options.maxNewTokens, room - prompt.count)
        while generated.count < budget {
            let next = sampler.next(logits: logits, history: history)
            if stops.contains(next) { reason = "stop"; break }
            generated.append(next)
            history.append(next)
            if !onToken(next) { reason = "cancelled"; break }
            if generated.count == budget { break }
            logits = try session.append([next])
            steps += 1
        }
        let t2 = clock.now
        return Result(tokens: generated, promptTokens: prompt.count, prefillSeconds: (t1 - t0).seconds,
                      decodeSeconds: (t2 - t1).seconds, finishReason: reason, decodeSteps: steps)
    }
}

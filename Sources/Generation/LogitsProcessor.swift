import Foundation
import Kernels

/// Next-token selection in transformers' order: repetition penalty, no-repeat-n-gram ban, then temperature,
/// top-k and top-p, then a draw from the seeded generator (or argmax when greedy).
public struct TokenSampler {
    public let options: SamplingOptions
    private var rng: SeededGenerator

    public init(options: SamplingOptions) {
        self.options = options
        rng = SeededGenerator(seed: options.seed)
    }

    /// Picks the next id given the logits [V] and every id so far (prompt + generated).
    /// - Parameter generated: how many of the last `history` ids were generated (the frequency and presence
    ///   penalties count those only).
    public mutating func next(logits input: [Float], history: [Int32], generated: Int = 0) -> Int32 {
        var logits = input
        Self.applyRepetitionPenalty(&logits, history: history, penalty: options.repetitionPenalty)
        Self.applyOccurrencePenalties(&logits, generated: history.suffix(generated), frequency: options.frequencyPenalty,
                                      presence: options.presencePenalty)
        Self.banRepeatedNgrams(&logits, history: history, n: options.noRepeatNgramSize)
        if options.isGreedy { return Int32(Self.argmax(logits)) }
        let t = options.temperature
        for i in logits.indices { logits[i] /= t }
        if options.topK > 0 { Self.keepTopK(&logits, k: options.topK) }
        if options.topP < 1 { Self.keepTopP(&logits, p: options.topP) }
        if options.minP > 0 { Self.keepMinP(&logits, p: options.minP) }
        let probs = Self.softmax(logits)
        let u = rng.nextDouble()
        var acc = 0.0
        for (i, p) in probs.enumerated() {
            acc += p
            if u < acc { return Int32(i) }
        }
        return Int32(probs.lastIndex { $0 > 0 } ?? 0)
    }

    static func argmax(_ x: [Float]) -> Int {
        var best = 0
        for i in x.indices where x[i] > x[best] { best = i }
        return best
    }

    /// transformers' RepetitionPenaltyLogitsProcessor: every id seen so far has its logit divided by the penalty
    /// when positive, multiplied when negative.
    static func applyRepetitionPenalty(_ logits: inout [Float], history: [Int32], penalty: Float) {
        guard penalty != 1 else { return }
        for id in Set(history) where Int(id) < logits.count && id >= 0 {
            let v = logits[Int(id)]
            logits[Int(id)] = v < 0 ? v * penalty : v / penalty
        }
    }

    /// OpenAI's frequency and presence penalties: logit -= frequency * count + presence * (count > 0), over the
    /// generated ids.
    static func applyOccurrencePenalties(_ logits: inout [Float], generated: ArraySlice<Int32>, frequency: Float,
                                         presence: Float) {
        guard frequency != 0 || presence != 0 else { return }
        var counts: [Int32: Int] = [:]
        for id in generated { counts[id, default: 0] += 1 }
        for (id, c) in counts where id >= 0 && Int(id) < logits.count {
            logits[Int(id)] -= frequency * Float(c) + presence
        }
    }

    /// Keeps tokens whose probability is at least `p` times the largest (vLLM's and transformers' min-p).
    static func keepMinP(_ logits: inout [Float], p: Float) {
        guard let m = logits.max(), m > -.infinity else { return }
        // prob_i / prob_max = exp(l_i - l_max) >= p  <=>  l_i >= l_max + log p
        let threshold = m + log(p)
        for i in logits.indices where logits[i] < threshold { logits[i] = -.infinity }
    }

    /// transformers' NoRepeatNGramLogitsProcessor: bans every token that would complete an n-gram already present.
    static func banRepeatedNgrams(_ logits: inout [Float], history: [Int32], n: Int) {
        // Nothing to ban until the history holds a whole n-gram (transformers: cur_len + 1 < n bans nothing).
        guard n > 0, history.count >= n else { return }
        let prefix = Array(history.suffix(n - 1))
        if n == 1 {
            for id in Set(history) where Int(id) < logits.count { logits[Int(id)] = -.infinity }
            return
        }
        for start in 0...(history.count - n) where Array(history[start..<(start + n - 1)]) == prefix {
            let banned = Int(history[start + n - 1])
            if banned < logits.count { logits[banned] = -.infinity }
        }
    }

    /// Keeps the k largest logits (ties with the k-th kept, as transformers does); the rest become -inf.
    static func keepTopK(_ logits: inout [Float], k: Int) {
        guard k < logits.count else { return }
        let threshold = logits.sorted(by: >)[k - 1]
        for i in logits.indices where logits[i] < threshold { logits[i] = -.infinity }
    }

    /// Nucleus filtering as transformers' TopPLogitsWarper: sort ascending, drop tokens whose cumulative
    /// probability is <= 1 - p, always keep the most likely token.
    static func keepTopP(_ logits: inout [Float], p: Float) {
        let order = logits.indices.sorted { logits[$0] < logits[$1] }
        let probs = softmax(order.map { logits[$0] })
        var cumulative = 0.0
        for (rank, index) in order.enumerated() {
            cumulative += probs[rank]
            if rank < order.count - 1 && cumulative <= Double(1 - p) { logits[index] = -.infinity }
        }
    }

    static func softmax(_ x: [Float]) -> [Double] {
        let m = x.max() ?? 0
        guard m > -.infinity else { return x.map { _ in 1 / Double(x.count) } }
        let e = x.map { exp(Double($0 - m)) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }
}

import Foundation

/// Token lists mapped to small integers so that n-gram counting hashes `[Int]` rather than `[String]`.
struct TokenInterner {
    private var ids: [String: Int] = [:]

    /// The ids of `tokens`, assigning fresh ids to tokens not seen before.
    mutating func intern(_ tokens: [String]) -> [Int] {
        tokens.map { token in
            if let id = ids[token] { return id }
            let id = ids.count
            ids[token] = id
            return id
        }
    }
}

/// Multiset of the n-grams of one token sequence.
func ngramCounts(_ ids: [Int], n: Int) -> [ArraySlice<Int>: Int] {
    var counts: [ArraySlice<Int>: Int] = [:]
    guard n > 0, ids.count >= n else { return counts }
    for start in 0...(ids.count - n) {
        counts[ids[start..<(start + n)], default: 0] += 1
    }
    return counts
}

/// The sufficient statistics of BLEU-4 for one hypothesis/reference pair (or, summed, for a corpus).
struct BLEUStats: Sendable, Equatable {
    /// Clipped n-gram matches for n = 1...4 (index n-1).
    var matches = [Int](repeating: 0, count: 4)
    /// Hypothesis n-gram totals for n = 1...4, each at least 1 per sentence, as nltk's `modified_precision` counts.
    var totals = [Int](repeating: 0, count: 4)
    /// Hypothesis length in tokens.
    var hypothesisLength = 0
    /// Reference length in tokens.
    var referenceLength = 0

    init() {}

    /// Statistics of one pair, given as interned token ids.
    init(hypothesis: [Int], reference: [Int]) {
        for n in 1...4 {
            let hyp = ngramCounts(hypothesis, n: n)
            let ref = ngramCounts(reference, n: n)
            var matched = 0, total = 0
            for (gram, count) in hyp {
                total += count
                matched += min(count, ref[gram] ?? 0)
            }
            matches[n - 1] = matched
            // nltk divides by max(1, number of hypothesis n-grams), also for hypotheses shorter than n.
            totals[n - 1] = max(1, total)
        }
        hypothesisLength = hypothesis.count
        referenceLength = reference.count
    }

    static func += (lhs: inout BLEUStats, rhs: BLEUStats) {
        for i in 0..<4 {
            lhs.matches[i] += rhs.matches[i]
            lhs.totals[i] += rhs.totals[i]
        }
        lhs.hypothesisLength += rhs.hypothesisLength
        lhs.referenceLength += rhs.referenceLength
    }

    /// Papineni brevity penalty on the total lengths: 1 when the hypothesis is longer than the reference,
    /// 0 for an empty hypothesis, else `exp(1 - r / c)`.
    var brevityPenalty: Double {
        if hypothesisLength > referenceLength { return 1 }
        if hypothesisLength == 0 { return 0 }
        return exp(1 - Double(referenceLength) / Double(hypothesisLength))
    }

    /// BLEU-4 in [0, 1] with uniform weights.
    ///
    /// - Parameter smoothingEpsilon: `nil` for no smoothing (0 as soon as one precision is 0); otherwise a zero
    ///   match count for n ≥ 1 is replaced by `epsilon / total` (nltk `SmoothingFunction(epsilon).method1`).
    ///   Either way the score is 0 when there are no unigram matches, as in nltk.
    func score(smoothingEpsilon: Double?) -> Double {
        guard matches[0] > 0 else { return 0 }
        var logSum = 0.0
        for i in 0..<4 {
            let precision: Double
            if matches[i] > 0 {
                precision = Double(matches[i]) / Double(totals[i])
            } else if let epsilon = smoothingEpsilon {
                precision = epsilon / Double(totals[i])
            } else {
                return 0
            }
            logSum += 0.25 * log(precision)
        }
        return brevityPenalty * exp(logSum)
    }
}

extension Metrics {
    /// The epsilon of the sentence-level smoothing (nltk `SmoothingFunction().method1` default).
    public static let sentenceSmoothingEpsilon = 0.1

    /// Smoothed sentence-level BLEU-4 of one prediction against one reference, in [0, 100], for per-example display.
    ///
    /// Equals `100 * nltk.translate.bleu_score.sentence_bleu([ref], hyp,
    /// smoothing_function=SmoothingFunction().method1)` on ``MetricTokenizer`` tokens: clipped n-gram precisions
    /// p1...p4 (denominator at least 1), a zero count replaced by 0.1 / denominator, geometric mean with weights 1/4,
    /// times the brevity penalty. 0 when no unigram matches or either side is empty.
    ///
    /// ```swift
    /// Metrics.sentenceBLEU4(prediction: "the cat sat on the mat", reference: "the cat sat on a mat") // ≈ 53.7
    /// ```
    public static func sentenceBLEU4(prediction: String, reference: String) -> Double {
        var interner = TokenInterner()
        let hyp = interner.intern(MetricTokenizer.tokens(prediction))
        let ref = interner.intern(MetricTokenizer.tokens(reference))
        return 100 * BLEUStats(hypothesis: hyp, reference: ref).score(smoothingEpsilon: sentenceSmoothingEpsilon)
    }
}

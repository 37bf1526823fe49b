import Foundation

/// F1 of a precision/recall pair, 0 when both are 0 (rouge-score's `scoring.fmeasure`).
func fMeasure(precision p: Double, recall r: Double) -> Double {
    p + r > 0 ? 2 * p * r / (p + r) : 0
}

/// ROUGE-N F1 in [0, 1] of interned token sequences: overlap = Σ over reference n-grams of
/// min(reference count, prediction count); P = overlap / max(1, prediction n-grams),
/// R = overlap / max(1, reference n-grams).
func rougeN(prediction: [Int], reference: [Int], n: Int) -> Double {
    let ref = ngramCounts(reference, n: n)
    let pred = ngramCounts(prediction, n: n)
    var overlap = 0, refTotal = 0, predTotal = 0
    for (gram, count) in ref {
        refTotal += count
        overlap += min(count, pred[gram] ?? 0)
    }
    for count in pred.values { predTotal += count }
    let precision = Double(overlap) / Double(max(predTotal, 1))
    let recall = Double(overlap) / Double(max(refTotal, 1))
    return fMeasure(precision: precision, recall: recall)
}

/// Length of the longest common subsequence of two id sequences; O(|a|·|b|) time, O(|b|) memory.
func lcsLength(_ a: [Int], _ b: [Int]) -> Int {
    guard !a.isEmpty, !b.isEmpty else { return 0 }
    var previous = [Int](repeating: 0, count: b.count + 1)
    var current = previous
    for i in 1...a.count {
        let x = a[i - 1]
        for j in 1...b.count {
            current[j] = x == b[j - 1] ? previous[j - 1] + 1 : max(previous[j], current[j - 1])
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

/// ROUGE-L F1 in [0, 1]: P = LCS / |prediction|, R = LCS / |reference|; 0 when either side is empty.
func rougeL(prediction: [Int], reference: [Int]) -> Double {
    guard !prediction.isEmpty, !reference.isEmpty else { return 0 }
    let lcs = Double(lcsLength(reference, prediction))
    return fMeasure(precision: lcs / Double(prediction.count), recall: lcs / Double(reference.count))
}

extension Metrics {
    /// ROUGE-1, ROUGE-2 and ROUGE-L F1 of one prediction against one reference, each in [0, 100].
    ///
    /// Equals `100 * RougeScorer(['rouge1', 'rouge2', 'rougeL'], tokenizer=T).score(ref, pred)[k].fmeasure`
    /// (package `rouge-score`, module `rouge_scorer`) where `T` returns ``MetricTokenizer`` tokens unchanged (no
    /// lowercasing, no stemming, no punctuation removal). ROUGE-N counts clipped n-gram overlap with precision over the prediction's n-grams and recall over the
    /// reference's (denominators at least 1); ROUGE-L uses the longest common subsequence of the token lists.
    /// F1 = 2PR / (P + R), 0 when P + R = 0, so empty text scores 0.
    ///
    /// ```swift
    /// let s = Metrics.rouge(prediction: "推荐用药：银翘片。", reference: "推荐用药：银翘解毒片。")
    /// // s.r1 == 90, s.r2 ≈ 77.8, s.rL == 90 (9 of 9 predicted tokens, 9 of 11 reference tokens)
    /// ```
    public static func rouge(prediction: String, reference: String) -> (r1: Double, r2: Double, rL: Double) {
        var interner = TokenInterner()
        let pred = interner.intern(MetricTokenizer.tokens(prediction))
        let ref = interner.intern(MetricTokenizer.tokens(reference))
        return (100 * rougeN(prediction: pred, reference: ref, n: 1),
                100 * rougeN(prediction: pred, reference: ref, n: 2),
                100 * rougeL(prediction: pred, reference: ref))
    }
}

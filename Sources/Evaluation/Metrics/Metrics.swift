import Foundation

/// Text-generation metrics: corpus BLEU-4, ROUGE-1/2/L, exact match and name match.
///
/// Both sides are tokenised with ``MetricTokenizer`` (CJK character level, word level elsewhere). Definitions,
/// checked against `nltk` and `rouge-score` by the golden test (`scripts/make_metric_fixtures.py`):
/// - **BLEU-4** (corpus): Papineni et al. with weights (1/4, 1/4, 1/4, 1/4) and one reference per example. Clipped
///   n-gram matches and hypothesis n-gram counts (at least 1 per example, as nltk counts) are summed over the corpus,
///   the brevity penalty uses the total hypothesis and reference lengths, and there is no smoothing: the score is 0
///   as soon as one of the four corpus precisions is 0. This is `nltk.translate.bleu_score.corpus_bleu` except that
///   nltk floors a zero precision for n ≥ 2 at `sys.float_info.min` and so returns about 1e-75 where we return 0.
/// - **ROUGE-1/2/L**: per-example F1 as in ``rouge(prediction:reference:)``, averaged over all examples.
/// - **Exact match**: prediction equals reference after trimming surrounding whitespace and newlines.
/// - **Name match**: for examples whose reference matches the name regex, whether the prediction's first match
///   (see ``firstMatch(_:in:)``) equals the reference's, both trimmed; a prediction without a match is a miss.
///   Examples whose reference has no match are skipped and counted in ``GenerationMetrics/nameMatchSkipped``.
///
/// ```swift
/// let m = try Metrics.compute(predictions: ["推荐用药：银翘解毒片。"],
///                             references: ["推荐用药：银翘解毒片。\n主要成分：金银花、连翘。"],
///                             nameRegex: "推荐用药：([^。]+)")
/// // m.nameMatch == 100, m.exactMatch == 0, m.count == 1
/// ```
public enum Metrics {
    /// Scores `predictions` against `references` (same order, one reference each); see ``Metrics`` for the
    /// definitions. An empty list gives all-zero scores with `count == 0`.
    ///
    /// - Throws: ``MetricsError/countMismatch(predictions:references:)`` when the lists differ in length,
    ///   ``MetricsError/invalidRegex(pattern:reason:)`` when `nameRegex` does not compile.
    public static func compute(predictions: [String], references: [String],
                               nameRegex: String?) throws -> GenerationMetrics {
        guard predictions.count == references.count else {
            throw MetricsError.countMismatch(predictions: predictions.count, references: references.count)
        }
        let regex = try nameRegex.map(compile)
        let count = predictions.count

        var interner = TokenInterner()
        var corpus = BLEUStats()
        var sum1 = 0.0, sum2 = 0.0, sumL = 0.0
        var exact = 0, nameHits = 0, nameSkipped = 0
        for (prediction, reference) in zip(predictions, references) {
            let pred = interner.intern(MetricTokenizer.tokens(prediction))
            let ref = interner.intern(MetricTokenizer.tokens(reference))
            corpus += BLEUStats(hypothesis: pred, reference: ref)
            sum1 += rougeN(prediction: pred, reference: ref, n: 1)
            sum2 += rougeN(prediction: pred, reference: ref, n: 2)
            sumL += rougeL(prediction: pred, reference: ref)
            if trimmed(prediction) == trimmed(reference) { exact += 1 }
            if let regex {
                if let wanted = firstMatch(regex, in: reference).map(trimmed) {
                    if firstMatch(regex, in: prediction).map(trimmed) == wanted { nameHits += 1 }
                } else {
                    nameSkipped += 1
                }
            }
        }

        func percent(_ value: Double, of total: Int) -> Double { total > 0 ? 100 * value / Double(total) : 0 }
        var metrics = GenerationMetrics(
            bleu4: 100 * corpus.score(smoothingEpsilon: nil),
            rouge1: percent(sum1, of: count), rouge2: percent(sum2, of: count), rougeL: percent(sumL, of: count),
            exactMatch: percent(Double(exact), of: count), count: count)
        if regex != nil {
            let judged = count - nameSkipped
            metrics.nameMatch = judged > 0 ? percent(Double(nameHits), of: judged) : nil
            metrics.nameMatchSkipped = nameSkipped
        }
        return metrics
    }

    /// The first match of `regex` (ICU syntax, as `NSRegularExpression`) in `text`: capture group 1 when the regex
    /// has capture groups, else the whole match. `nil` when nothing matches or group 1 took no part in the match.
    ///
    /// ```swift
    /// try Metrics.firstMatch("推荐用药：([^。]+)", in: "推荐用药：银翘解毒片。") // "银翘解毒片"
    /// ```
    /// - Throws: ``MetricsError/invalidRegex(pattern:reason:)`` when `regex` does not compile.
    public static func firstMatch(_ regex: String, in text: String) throws -> String? {
        firstMatch(try compile(regex), in: text)
    }

    static func compile(_ pattern: String) throws -> NSRegularExpression {
        do {
            return try NSRegularExpression(pattern: pattern)
        } catch {
            throw MetricsError.invalidRegex(pattern: pattern, reason: error.localizedDescription)
        }
    }

    static func firstMatch(_ regex: NSRegularExpression, in text: String) -> String? {
        let whole = NSRange(text.startIndex..<text.endIndex, in: text)
        guard let match = regex.firstMatch(in: text, options: [], range: whole) else { return nil }
        let group = regex.numberOfCaptureGroups > 0 ? 1 : 0
        guard let range = Range(match.range(at: group), in: text) else { return nil }
        return String(text[range])
    }

    static func trimmed(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

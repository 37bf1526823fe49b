import Foundation

/// Scores of a set of generated answers against their references; every score is a percentage in [0, 100].
///
/// Produced by ``Metrics/compute(predictions:references:nameRegex:)``; see ``Metrics`` for the exact definitions.
///
/// ```swift
/// let m = try Metrics.compute(predictions: answers, references: refs, nameRegex: "推荐用药：([^。]+)")
/// print(String(format: "BLEU-4 %.2f  ROUGE-L %.2f", m.bleu4, m.rougeL))
/// ```
public struct GenerationMetrics: Codable, Sendable, Equatable {
    /// Corpus-level BLEU-4 (no smoothing), in [0, 100].
    public var bleu4: Double
    /// ROUGE-1 F1, averaged over examples, in [0, 100].
    public var rouge1: Double
    /// ROUGE-2 F1, averaged over examples, in [0, 100].
    public var rouge2: Double
    /// ROUGE-L (longest common subsequence) F1, averaged over examples, in [0, 100].
    public var rougeL: Double
    /// Percentage of predictions equal to their reference after trimming surrounding whitespace.
    public var exactMatch: Double
    /// Percentage of the examples whose reference matches the name regex where the prediction's first match equals
    /// the reference's; `nil` when no regex was given or no reference matched it.
    public var nameMatch: Double?
    /// Examples left out of ``nameMatch`` because their reference has no match (`nil` when no regex was given).
    public var nameMatchSkipped: Int?
    /// Number of prediction/reference pairs scored.
    public var count: Int

    public init(bleu4: Double, rouge1: Double, rouge2: Double, rougeL: Double, exactMatch: Double,
                nameMatch: Double? = nil, nameMatchSkipped: Int? = nil, count: Int) {
        self.bleu4 = bleu4
        self.rouge1 = rouge1
        self.rouge2 = rouge2
        self.rougeL = rougeL
        self.exactMatch = exactMatch
        self.nameMatch = nameMatch
        self.nameMatchSkipped = nameMatchSkipped
        self.count = count
    }
}

/// Errors thrown by ``Metrics``.
public enum MetricsError: Error, Equatable, CustomStringConvertible {
    /// The prediction and reference lists differ in length.
    case countMismatch(predictions: Int, references: Int)
    /// The name regex does not compile.
    case invalidRegex(pattern: String, reason: String)

    public var description: String {
        switch self {
        case let .countMismatch(p, r):
            return "metrics need one reference per prediction, got \(p) predictions and \(r) references; "
                + "check that the evaluation file and the generated answers line up"
        case let .invalidRegex(pattern, reason):
            return "the name regex \"\(pattern)\" is not a valid regular expression (\(reason)); "
                + "use ICU syntax, e.g. \"推荐用药：([^。]+)\""
        }
    }
}

extension MetricsError: LocalizedError {
    public var errorDescription: String? { description }
}

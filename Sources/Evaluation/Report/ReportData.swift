import Foundation

/// Everything the before/after report shows; rendered by ``ReportRenderer`` to HTML or Markdown.
///
/// Columns of ``metrics`` and the answers of each ``SampleRow`` are in the same order (typically "before", "after");
/// a partial report may have a single column. Any list may be empty and is then shown as "no data".
///
/// ```swift
/// let data = ReportData(
///     title: "LoRA fine-tune: medicine leaflets",
///     subtitle: "models/qwen2-0.5b · 2025-01-31",
///     notes: ["tiny demo model: the numbers show the pipeline, not quality"],
///     trainLoss: [CurvePoint(step: 1, value: 2.9), CurvePoint(step: 2, value: 2.5)],
///     evalLoss: [CurvePoint(step: 2, value: 2.7)],
///     metrics: [MetricsColumn(name: "before", metrics: before, loss: 3.1, perplexity: 22.2),
///               MetricsColumn(name: "after", metrics: after, loss: 2.7, perplexity: 14.9)],
///     samples: [SampleRow(question: "感冒了吃什么药？", reference: "推荐用药：…", answers: ["…", "…"])],
///     settings: ["rank": "8", "learning rate": "1e-4"])
/// try ReportRenderer.html(data).write(toFile: "report.html", atomically: true, encoding: .utf8)
/// ```
public struct ReportData: Codable, Sendable {
    /// Heading of the report.
    public var title: String
    /// Second line under the title, e.g. model path and date.
    public var subtitle: String?
    /// Free text lines shown under the title, e.g. "tiny demo model: ...".
    public var notes: [String]
    /// Training loss by optimiser step; NaN and infinite values are skipped when drawing.
    public var trainLoss: [CurvePoint]
    /// Evaluation loss by optimiser step.
    public var evalLoss: [CurvePoint]
    /// One column per evaluated model state, e.g. "before" and "after".
    public var metrics: [MetricsColumn]
    /// Example questions with the reference and one answer per column of ``metrics``.
    public var samples: [SampleRow]
    /// Training settings, shown sorted by key.
    public var settings: [String: String]
    /// Preference tuning: TRL's logged means by step (`rewards/chosen`, `rewards/rejected`, `rewards/margins`,
    /// `rewards/accuracies`, KTO's `kl`, ...), from the training log; empty for supervised runs.
    public var preference: [String: [CurvePoint]]?

    public init(title: String, subtitle: String? = nil, notes: [String] = [], trainLoss: [CurvePoint] = [],
                evalLoss: [CurvePoint] = [], metrics: [MetricsColumn] = [], samples: [SampleRow] = [],
                settings: [String: String] = [:]) {
        self.title = title
        self.subtitle = subtitle
        self.notes = notes
        self.trainLoss = trainLoss
        self.evalLoss = evalLoss
        self.metrics = metrics
        self.samples = samples
        self.settings = settings
    }
}

/// One point of a loss curve.
public struct CurvePoint: Codable, Sendable, Equatable {
    /// Optimiser step.
    public var step: Int
    /// Loss at that step (nats per token).
    public var value: Double

    public init(step: Int, value: Double) {
        self.step = step
        self.value = value
    }
}

/// The evaluation results of one model state (a column of the metrics table).
public struct MetricsColumn: Codable, Sendable {
    /// Column heading, e.g. "before" or "after".
    public var name: String
    /// Generation metrics, `nil` when generation was not evaluated.
    public var metrics: GenerationMetrics?
    /// Mean evaluation loss (nats per token).
    public var loss: Double?
    /// Perplexity, `exp(loss)`.
    public var perplexity: Double?
    /// Average accuracy (0-100) on a multiple-choice benchmark, when one was scored.
    public var benchmarkAccuracy: Double?

    public init(name: String, metrics: GenerationMetrics? = nil, loss: Double? = nil, perplexity: Double? = nil) {
        self.name = name
        self.metrics = metrics
        self.loss = loss
        self.perplexity = perplexity
    }
}

/// One example shown side by side: the question, the reference answer and each column's answer.
public struct SampleRow: Codable, Sendable {
    /// The prompt, as the user wrote it.
    public var question: String
    /// The expected answer.
    public var reference: String
    /// Generated answers, one per ``MetricsColumn`` in the same order.
    public var answers: [String]

    public init(question: String, reference: String, answers: [String]) {
        self.question = question
        self.reference = reference
        self.answers = answers
    }
}

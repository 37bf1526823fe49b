import Foundation
import ModelIO

/// What `peft compare` measured: every method trained from the same base on the same data with the same budget and
/// evaluated on the same held-out questions (`compare.json`; rendered by ``CompareRenderer``).
public struct CompareReport: Codable, Sendable {
    /// Loss, perplexity and generation metrics of one model state.
    public struct Scores: Codable, Sendable {
        public var loss: Double?
        public var perplexity: Double?
        public var metrics: GenerationMetrics?
        /// The benchmark's average accuracy (0-1) and per category, when the comparison ran one.
        public var benchmarkAverage: Double?
        public var benchmarkCategories: [String: Double]?
        /// Preference comparisons: the held-out preference loss and TRL's means (`rewards/chosen`, ..., KTO's `kl`).
        public var preference: [String: Double]?

        public init() {}

        public init(run: EvaluationRun) {
            loss = run.loss.flatMap { $0.loss.isFinite ? $0.loss : nil }
            perplexity = run.loss.flatMap { $0.perplexity.isFinite ? $0.perplexity : nil }
            metrics = run.metrics
        }
    }

    public struct Sample: Codable, Sendable {
        public var question: String
        public var reference: String
        public var answer: String

        public init(question: String, reference: String, answer: String) {
            self.question = question
            self.reference = reference
            self.answer = answer
        }
    }

    public struct MethodResult: Codable, Sendable {
        public enum Status: String, Codable, Sendable { case done, failed, interrupted, pending }
        public var method: String
        public var title: String
        public var status: Status
        /// Why the method failed (its last error lines), or what stopped it.
        public var message: String?
        public var summary: String?
        public var trainableParameters: Int?
        /// Trainable parameters as a percentage of the model's.
        public var sharePercent: Double?
        /// Adapter folder (or, for full / freeze, model) size on disk.
        public var bytesOnDisk: Int?
        public var tokensPerSecond: Double?
        public var peakRSSBytes: Int?
        public var trainSeconds: Double?
        public var wallSeconds: Double?
        public var after: Scores?
        public var trainLoss: [CurvePoint]
        public var evalLoss: [CurvePoint]
        public var samples: [Sample]

        public init(method: String, title: String, status: Status = .pending) {
            self.method = method
            self.title = title
            self.status = status
            trainLoss = []
            evalLoss = []
            samples = []
        }
    }

    public var title: String
    public var model: String
    public var data: String
    public var evalData: String
    public var budget: String
    public var questions: Int
    public var date: String
    public var notes: [String]
    public var before: Scores?
    /// The benchmark every state was scored on (`--benchmark`), nil without one.
    public var benchmark: String?
    public var methods: [MethodResult]
    /// The preference stage every method trained with (dpo, orpo, simpo, kto); nil: supervised fine-tuning.
    public var stage: String?
    /// True while methods are still pending (an interrupted or unfinished comparison).
    public var partial: Bool { methods.contains { $0.status == .pending || $0.status == .interrupted } }

    public init(title: String, model: String, data: String, evalData: String, budget: String, questions: Int,
                date: String, notes: [String] = [], methods: [MethodResult]) {
        self.title = title
        self.model = model
        self.data = data
        self.evalData = evalData
        self.budget = budget
        self.questions = questions
        self.date = date
        self.notes = notes
        self.methods = methods
    }

    public static let jsonName = "compare.json", htmlName = "compare.html", markdownName = "compare.md"

    /// Writes compare.json, compare.html and compare.md into `directory`, each atomically.
    public func write(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(self), to: directory.appendingPathComponent(Self.jsonName))
        try AtomicFile.write(Data(CompareRenderer.html(self).utf8), to: directory.appendingPathComponent(Self.htmlName))
        try AtomicFile.write(Data(CompareRenderer.markdown(self).utf8), to: directory.appendingPathComponent(Self.markdownName))
    }
}

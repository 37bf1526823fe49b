import Foundation
import Generation
import ModelIO
import Tokenizer
import Training
import Transformer

/// One generated answer next to its reference.
public struct PredictionRecord: Codable, Sendable, Equatable {
    /// The user turn the answer was generated for (instruction and input joined).
    public var prompt: String
    public var reference: String
    public var prediction: String

    public init(prompt: String, reference: String, prediction: String) {
        self.prompt = prompt
        self.reference = reference
        self.prediction = prediction
    }
}

/// What `eval --generate` measures for one model (and adapter) on one data file.
public struct EvaluationRun: Codable, Sendable {
    public var predictions: [PredictionRecord]
    public var metrics: GenerationMetrics?
    public var loss: LossEvaluator.Result?
    /// True when generation stopped early (Ctrl-C): predictions cover only the first records.
    public var partial: Bool

    public init(predictions: [PredictionRecord], metrics: GenerationMetrics?, loss: LossEvaluator.Result?,
                partial: Bool) {
        self.predictions = predictions
        self.metrics = metrics
        self.loss = loss
        self.partial = partial
    }
}

/// Generates an answer for the last turn of every conversation and scores the answers against the references.
///
/// ```swift
/// let run = try GenerationEvaluator.run(model: model, builder: builder, conversations: test.conversations,
///                                       sampling: SamplingOptions(), stopIDs: stops, nameRegex: nil)
/// print(run.metrics?.rougeL ?? 0)
/// ```
public enum GenerationEvaluator {
    /// - Parameters:
    ///   - progress: called after each answer with (done, total, the new record).
    ///   - shouldStop: polled between answers; returning true ends the run early with `partial = true`.
    public static func run(model: TransformerModel, builder: ExampleBuilder, conversations: [Conversation],
                           sampling: SamplingOptions, stopIDs: [Int32], nameRegex: String?,
                           withLoss: Bool = true, lossBatchSize: Int = 4,
                           progress: ((Int, Int, PredictionRecord) -> Void)? = nil,
                           shouldStop: () -> Bool = { false }) throws -> EvaluationRun {
        // Everything that can fail is checked before the (slow) generation starts.
        if let nameRegex { _ = try Metrics.firstMatch(nameRegex, in: "") }
        let tokenizer = builder.formatter.tokenizer
        let context = model.config.maxPositionEmbeddings
        let prompts = try conversations.map { try builder.promptIDs($0) }
        if let (i, p) = prompts.enumerated().first(where: { $0.element.count >= context }) {
            throw EvaluationError.input("record \(i + 1): its prompt is \(p.count) tokens, not shorter than the model's context of \(context)")
        }
        let examples = withLoss ? try builder.build(conversations).examples : []
        if withLoss { try TrainingExample.validate(examples, for: model) }
        let longest = prompts.map(\.count).max() ?? 1
        let generator = Generator(model: model, capacity: min(context, longest + min(sampling.maxNewTokens, context) + 1))
        var records: [PredictionRecord] = []
        var partial = false
        for (i, c) in conversations.enumerated() {
            if shouldStop() { partial = true; break }
            guard let last = c.turns.last else { continue }
            let ids = prompts[i]
            let result = try generator.generate(prompt: ids, options: sampling, stopIDs: stopIDs)
            let record = PredictionRecord(prompt: last.userText, reference: last.answer,
                                          prediction: tokenizer.decode(result.tokens, skipSpecialTokens: true))
            records.append(record)
            progress?(i + 1, conversations.count, record)
        }
        let metrics = records.isEmpty ? nil : try Metrics.compute(predictions: records.map(\.prediction),
                                                                  references: records.map(\.reference),
                                                                  nameRegex: nameRegex)
        var loss: LossEvaluator.Result? = nil
        if withLoss && !partial {
            loss = try LossEvaluator.evaluate(model: model, examples: examples, batchSize: max(1, lossBatchSize))
        }
        return EvaluationRun(predictions: records, metrics: metrics, loss: loss, partial: partial)
    }
}

/// A run on disk: `predictions.jsonl` (prompt, reference, prediction per line) and `metrics.json`.
public enum EvaluationRunFiles {
    public static let predictionsFile = "predictions.jsonl"
    public static let metricsFile = "metrics.json"

    public static func write(_ run: EvaluationRun, to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines = Data()
        for p in run.predictions {
            lines.append(try encoder.encode(p))
            lines.append(0x0A)
        }
        try AtomicFile.write(lines, to: directory.appendingPathComponent(predictionsFile))
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try AtomicFile.write(try encoder.encode(Summary(run)), to: directory.appendingPathComponent(metricsFile))
    }

    /// Reads a run written by `write` (predictions may be absent: metrics only).
    public static func read(_ directory: URL) throws -> EvaluationRun {
        let metricsURL = directory.appendingPathComponent(metricsFile)
        guard let data = FileManager.default.contents(atPath: metricsURL.path) else {
            throw EvaluationError.io(path: metricsURL.path, reason: "missing; expected an `eval --generate --output-dir` directory")
        }
        let summary: Summary
        do { summary = try JSONDecoder().decode(Summary.self, from: data) } catch {
            throw EvaluationError.io(path: metricsURL.path, reason: "not a metrics file written by peft eval")
        }
        var predictions: [PredictionRecord] = []
        if let text = FileManager.default.contents(atPath: directory.appendingPathComponent(predictionsFile).path) {
            for (i, line) in String(decoding: text, as: UTF8.self).split(separator: "\n").enumerated() {
                do {
                    predictions.append(try JSONDecoder().decode(PredictionRecord.self, from: Data(line.utf8)))
                } catch {
                    throw EvaluationError.io(path: directory.appendingPathComponent(predictionsFile).path,
                                             reason: "line \(i + 1) is not a prediction record")
                }
            }
        }
        return EvaluationRun(predictions: predictions, metrics: summary.metrics, loss: summary.loss,
                             partial: summary.partial)
    }

    /// metrics.json: the flat numbers plus the structured ones.
    struct Summary: Codable {
        var metrics: GenerationMetrics?
        var loss: LossEvaluator.Result?
        var partial: Bool
        var examples: Int

        init(_ run: EvaluationRun) {
            metrics = run.metrics
            loss = run.loss.flatMap { $0.loss.isFinite ? $0 : nil }  // NaN (no answer tokens) cannot be JSON
            partial = run.partial
            examples = run.predictions.count
        }
    }

}

public enum EvaluationError: Error, CustomStringConvertible {
    case io(path: String, reason: String)
    case input(String)

    public var description: String {
        switch self {
        case let .io(path, reason): "\(path): \(reason)"
        case let .input(reason): reason
        }
    }
}

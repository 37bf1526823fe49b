import Foundation
import ModelIO

/// `train_summary.json`: what a finished (or interrupted) `peft train` run measured, for tools that compare runs.
public struct TrainSummary: Codable, Sendable, Equatable {
    public static let fileName = "train_summary.json"

    public var method: String
    public var summary: String
    public var trainableParameters: Int
    public var modelParameters: Int
    public var steps: Int
    public var tokensPerSecond: Double
    public var elapsedSeconds: Double
    public var finalLoss: Double?
    public var evalLoss: Double?
    public var interrupted: Bool

    enum CodingKeys: String, CodingKey {
        case method, summary, steps, interrupted
        case trainableParameters = "trainable_parameters", modelParameters = "model_parameters"
        case tokensPerSecond = "tokens_per_second", elapsedSeconds = "elapsed_seconds"
        case finalLoss = "final_loss", evalLoss = "eval_loss"
    }

    public init(method: String, summary: String, trainableParameters: Int, modelParameters: Int, steps: Int,
                tokensPerSecond: Double, elapsedSeconds: Double, finalLoss: Double?, evalLoss: Double?, interrupted: Bool) {
        self.method = method
        self.summary = summary
        self.trainableParameters = trainableParameters
        self.modelParameters = modelParameters
        self.steps = steps
        self.tokensPerSecond = tokensPerSecond
        self.elapsedSeconds = elapsedSeconds
        self.finalLoss = finalLoss.flatMap { $0.isFinite ? $0 : nil }
        self.evalLoss = evalLoss.flatMap { $0.isFinite ? $0 : nil }
        self.interrupted = interrupted
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }

    public static func read(_ url: URL) throws -> TrainSummary {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TrainingError.io(path: url.path, reason: "cannot read the run summary")
        }
        return try JSONDecoder().decode(TrainSummary.self, from: data)
    }
}

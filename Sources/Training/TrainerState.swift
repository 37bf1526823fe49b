import Foundation
import Transformer

/// What a checkpoint records besides the adapter and optimiser moments (`trainer_state.json`).
public struct TrainerState: Codable, Sendable {
    public var globalStep: Int
    public var epoch: Int
    public var options: TrainingOptions
    public var exampleCount: Int
    public var model: ModelFingerprint
    public var logHistory: [LogEntry]
    /// The data-parallel ranks that made the checkpoint (absent: one process); resuming needs as many.
    public var worldSize: Int?

    enum CodingKeys: String, CodingKey {
        case globalStep = "global_step", epoch, options, exampleCount = "example_count", model
        case logHistory = "log_history", worldSize = "world_size"
    }

    public init(globalStep: Int, epoch: Int, options: TrainingOptions, exampleCount: Int, model: ModelFingerprint,
                logHistory: [LogEntry], worldSize: Int? = nil) {
        self.globalStep = globalStep
        self.epoch = epoch
        self.options = options
        self.exampleCount = exampleCount
        self.model = model
        self.logHistory = logHistory
        self.worldSize = worldSize
    }
}

/// Identifies the base model a run trains, so a checkpoint is never resumed onto another model.
public struct ModelFingerprint: Codable, Sendable, Equatable, CustomStringConvertible {
    public var architecture: String
    public var hiddenSize: Int
    public var layerCount: Int
    public var vocabSize: Int
    public var intermediateSize: Int
    /// Sum of the first embedding rows: differs between checkpoints of the same shape.
    public var embeddingChecksum: Double

    public init(model: TransformerModel) {
        let c = model.config
        architecture = c.architecture.rawValue
        hiddenSize = c.hiddenSize
        layerCount = c.layerCount
        vocabSize = c.vocabSize
        intermediateSize = c.intermediateSize
        var row = [Float](repeating: 0, count: c.hiddenSize)
        var sum = 0.0
        for r in 0..<min(8, c.vocabSize) {
            row.withUnsafeMutableBufferPointer { model.weights.embedding.readRow(r, into: $0.baseAddress!) }
            sum += row.reduce(0.0) { $0 + Double($1) * Double(r + 1) }
        }
        embeddingChecksum = (sum * 1e6).rounded() / 1e6
    }

    public var description: String {
        "\(architecture) hidden \(hiddenSize), \(layerCount) layers, vocab \(vocabSize), embedding checksum \(embeddingChecksum)"
    }
}

/// One line of the JSON-lines metrics log.
public struct LogEntry: Codable, Sendable, Equatable {
    public var type: String   // "train" or "eval"
    public var step: Int
    public var epoch: Double
    public var loss: Double?
    public var learningRate: Double?
    public var gradNorm: Double?
    public var tokens: Int?
    public var tokensPerSecond: Double?
    public var elapsedSeconds: Double?
    public var evalLoss: Double?
    public var evalPerplexity: Double?
    /// Data-parallel runs: seconds spent summing gradients across ranks so far, and rank 0's waiting for slower
    /// ranks before each sum.
    public var allreduceSeconds: Double?
    public var rankWaitSeconds: Double?
    /// Mixture-of-experts training: the step's mean load-balancing loss (unweighted, as transformers' aux_loss).
    public var auxLoss: Double?
    /// Distillation: the divergence from the teacher and the cross-entropy of the answers (means over answer tokens),
    /// and whether the student wrote this step's answers.
    public var distillLoss: Double?
    public var ceLoss: Double?
    public var onPolicy: Bool?
    /// Preference tuning (TRL's names): mean rewards of the chosen and rejected answers, the share of pairs whose
    /// chosen reward is higher (paired objectives), their mean margin, the mean summed log-probabilities, and KTO's
    /// KL estimate.
    public var rewardsChosen: Double?
    public var rewardsRejected: Double?
    public var rewardsAccuracies: Double?
    public var rewardsMargins: Double?
    public var logpsChosen: Double?
    public var logpsRejected: Double?
    public var kl: Double?

    /// Fills the preference fields from a step's (or an evaluation's) sums over pairs.
    mutating func setPreference(_ s: PreferenceSums) {
        // A kind of answer the step (KTO) did not hold has no mean, and then there is no margin.
        (rewardsChosen, logpsChosen) = s.chosen > 0 ? (s.rewardsChosen, s.logpsChosen) : (nil, nil)
        (rewardsRejected, logpsRejected) = s.rejected > 0 ? (s.rewardsRejected, s.logpsRejected) : (nil, nil)
        rewardsAccuracies = s.rewardsAccuracies
        rewardsMargins = s.chosen > 0 && s.rejected > 0 ? s.rewardsMargins : nil
        kl = s.kl
    }

    enum CodingKeys: String, CodingKey {
        case type, step, epoch, loss, tokens
        case learningRate = "learning_rate", gradNorm = "grad_norm", tokensPerSecond = "tokens_per_second"
        case elapsedSeconds = "elapsed_seconds", evalLoss = "eval_loss", evalPerplexity = "eval_perplexity"
        case allreduceSeconds = "allreduce_seconds", rankWaitSeconds = "rank_wait_seconds", auxLoss = "aux_loss"
        case distillLoss = "distill_loss", ceLoss = "ce_loss", onPolicy = "on_policy"
        case rewardsChosen = "rewards/chosen", rewardsRejected = "rewards/rejected", rewardsAccuracies = "rewards/accuracies"
        case rewardsMargins = "rewards/margins", logpsChosen = "logps/chosen", logpsRejected = "logps/rejected", kl
    }

    public init(type: String, step: Int, epoch: Double, loss: Double? = nil, learningRate: Double? = nil,
                gradNorm: Double? = nil, tokens: Int? = nil, tokensPerSecond: Double? = nil,
                elapsedSeconds: Double? = nil, evalLoss: Double? = nil, evalPerplexity: Double? = nil) {
        self.type = type
        self.step = step
        self.epoch = epoch
        self.loss = loss
        self.learningRate = learningRate
        self.gradNorm = gradNorm
        self.tokens = tokens
        self.tokensPerSecond = tokensPerSecond
        self.elapsedSeconds = elapsedSeconds
        self.evalLoss = evalLoss
        self.evalPerplexity = evalPerplexity
    }

    /// Reads a metrics log; blank lines are skipped, a malformed line is an error naming it.
    public static func read(_ url: URL) throws -> [LogEntry] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TrainingError.io(path: url.path, reason: "cannot read the training log")
        }
        let decoder = JSONDecoder()
        var out: [LogEntry] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
            let s = line.trimmingCharacters(in: .whitespaces)
            if s.isEmpty { continue }
            do {
                out.append(try decoder.decode(LogEntry.self, from: Data(s.utf8)))
            } catch {
                throw TrainingError.data(file: url.path, record: i + 1, field: nil, reason: "not a training log entry")
            }
        }
        return out
    }
}

import Foundation
import Kernels
import Transformer

/// Preference tuning for a training run (`peft train --stage dpo|orpo|simpo`): the examples come in pairs
/// (chosen at even indices, rejected at odd ones, the same prompt), and each step's objective is the mean over its
/// pairs of the preference loss (`PreferenceLoss`), plus `ftx` times the chosen answers' SFT loss (LLaMA-Factory's
/// pref_ftx), plus, for ORPO, the chosen answers' negative log-likelihood (mean over their tokens).
public struct PreferenceSettings {
    public var loss: PreferenceLoss
    public var settings = PreferenceLoss.Settings()
    public var ftx = 0.0
    /// The reference policy for the DPO losses: nil is the base model with the adapter disabled (no second copy).
    public var reference: TransformerModel?

    public init(loss: PreferenceLoss) { self.loss = loss }

    /// The pairs' step plan: `StepPlan` over pair indices (with `ranks` data-parallel ranks), each pair becoming its
    /// two examples.
    public static func plan(pairs: Int, options: TrainingOptions, ranks: Int = 1) -> StepPlan {
        let base = StepPlan(exampleCount: pairs, options: options, ranks: ranks)
        return StepPlan(steps: base.steps.map { s in
            StepPlan.Step(epoch: s.epoch, microBatches: s.microBatches.map { $0.flatMap { [2 * $0, 2 * $0 + 1] } },
                          endsEpoch: s.endsEpoch)
        }, stepsPerEpoch: base.stepsPerEpoch)
    }
}

/// One step's preference sums (for the log): over its pairs.
public struct PreferenceSums: Sendable {
    public var loss = 0.0, pairs = 0, correct = 0
    public var chosenRewards = 0.0, rejectedRewards = 0.0, chosenLogps = 0.0, rejectedLogps = 0.0

    mutating func add(_ other: PreferenceSums) {
        loss += other.loss; pairs += other.pairs; correct += other.correct
        chosenRewards += other.chosenRewards; rejectedRewards += other.rejectedRewards
        chosenLogps += other.chosenLogps; rejectedLogps += other.rejectedLogps
    }

    var array: [Double] { [loss, Double(pairs), Double(correct), chosenRewards, rejectedRewards, chosenLogps, rejectedLogps] }

    /// TRL's logged means over the pairs: the rewards of the chosen and rejected answers, the share of pairs whose
    /// chosen reward is higher, their margin, and the summed log-probabilities.
    public var rewardsChosen: Double { chosenRewards / Double(max(1, pairs)) }
    public var rewardsRejected: Double { rejectedRewards / Double(max(1, pairs)) }
    public var rewardsAccuracies: Double { Double(correct) / Double(max(1, pairs)) }
    public var rewardsMargins: Double { (chosenRewards - rejectedRewards) / Double(max(1, pairs)) }
    public var logpsChosen: Double { chosenLogps / Double(max(1, pairs)) }
    public var logpsRejected: Double { rejectedLogps / Double(max(1, pairs)) }

    /// Those means under TRL's names (`rewards/chosen`, ...).
    public var logged: [String: Double] {
        ["rewards/chosen": rewardsChosen, "rewards/rejected": rewardsRejected, "rewards/accuracies": rewardsAccuracies,
         "rewards/margins": rewardsMargins, "logps/chosen": logpsChosen, "logps/rejected": logpsRejected]
    }

    public init() {}
    init(_ a: [Double]) {
        (loss, pairs, correct) = (a[0], Int(a[1]), Int(a[2]))
        (chosenRewards, rejectedRewards, chosenLogps, rejectedLogps) = (a[3], a[4], a[5], a[6])
    }
}

extension PreferenceSettings {
    /// The summed log-probability of every sequence's labelled rows (forward only), under `model` with its adapter
    /// disabled or under the reference model.
    func referenceLogps(model: TransformerModel, examples: [TrainingExample]) -> [Double] {
        let target = reference ?? model
        let saved = model.adapter
        if reference == nil { model.adapter = nil }
        defer { model.adapter = saved }
        let batch = PackedBatch(sequences: examples.map(\.ids))
        let buffers = target.makeBuffers(batches: [batch.lengths], policy: .inference)
        let recorder = SequenceObjective()
        _ = target.loss(batch, labels: examples.flatMap(\.labels), buffers: buffers, objective: recorder)
        return Self.perSequence(recorder.logProbs, examples)
    }

    /// Sums of row values per sequence (rows in order, each sequence's labelled rows).
    static func perSequence(_ rows: [Double], _ examples: [TrainingExample]) -> [Double] {
        var out: [Double] = [], i = 0
        for e in examples {
            let n = e.labelCount
            out.append(rows[i..<(i + n)].reduce(0, +))
            i += n
        }
        return out
    }

    /// The objective of one micro-batch of pairs: `pairsInStep` pairs and `chosenTokensInStep` chosen tokens in
    /// the whole step (the means' divisors); `refLogps` per sequence (DPO losses). Records the sums into `sums`.
    func objective(examples: [TrainingExample], refLogps: [Double]?, pairsInStep: Int, chosenTokensInStep: Int,
                   sums: PreferenceSumsBox) -> SequenceObjective {
        SequenceObjective { rows in
            let logps = Self.perSequence(rows, examples)
            var weights: [Double] = []
            weights.reserveCapacity(rows.count)
            var local = PreferenceSums()
            for p in 0..<(examples.count / 2) {
                let c = examples[2 * p], r = examples[2 * p + 1]
                let pair = PreferenceLoss.Pair(chosen: logps[2 * p], rejected: logps[2 * p + 1],
                                               refChosen: refLogps?[2 * p] ?? 0, refRejected: refLogps?[2 * p + 1] ?? 0,
                                               chosenTokens: c.labelCount, rejectedTokens: r.labelCount)
                let v = loss.value(pair, settings)
                let n = Double(pairsInStep)
                var dChosen = v.dChosen / n, dRejected = v.dRejected / n
                var pairLoss = v.loss / n
                // pref_ftx: the chosen answer's SFT loss (its mean negative log-probability per token).
                if ftx > 0 {
                    dChosen -= ftx / Double(max(1, c.labelCount)) / n
                    pairLoss -= ftx * pair.chosen / Double(max(1, c.labelCount)) / n
                }
                // ORPO: the chosen answers' negative log-likelihood over the step's chosen tokens.
                if loss == .orpo {
                    dChosen -= 1 / Double(max(1, chosenTokensInStep))
                    pairLoss -= pair.chosen / Double(max(1, chosenTokensInStep))
                }
                weights += [Double](repeating: dChosen, count: c.labelCount)
                weights += [Double](repeating: dRejected, count: r.labelCount)
                local.loss += pairLoss
                local.pairs += 1
                if v.chosenReward > v.rejectedReward { local.correct += 1 }
                local.chosenRewards += v.chosenReward
                local.rejectedRewards += v.rejectedReward
                local.chosenLogps += pair.chosen
                local.rejectedLogps += pair.rejected
            }
            sums.value.add(local)
            return weights
        }
    }
}

final class PreferenceSumsBox {
    var value = PreferenceSums()
}

extension PreferenceSettings {
    /// The preference loss and rewards of `examples` (pairs) without training: forward passes only, in batches of
    /// `batchSize` pairs (`peft eval --stage`, evaluation during training).
    public func evaluate(model: TransformerModel, examples: [TrainingExample], batchSize: Int) throws -> PreferenceSums {
        guard examples.count % 2 == 0 else { throw TrainingError.options("preference examples come in pairs") }
        try TrainingExample.validate(examples, for: model)
        let pairs = examples.count / 2
        let chosenTokens = stride(from: 0, to: examples.count, by: 2).reduce(0) { $0 + examples[$1].labelCount }
        let box = PreferenceSumsBox()
        var p = 0
        while p < pairs {
            let part = Array(examples[(2 * p)..<(2 * min(pairs, p + max(1, batchSize)))])
            let refs = loss.needsReference ? referenceLogps(model: model, examples: part) : nil
            let batch = PackedBatch(sequences: part.map(\.ids))
            let buffers = model.makeBuffers(batches: [batch.lengths], policy: .inference)
            let recorder = SequenceObjective()
            _ = model.loss(batch, labels: part.flatMap(\.labels), buffers: buffers, objective: recorder)
            // The objective's closure computes the sums from the recorded log-probabilities.
            _ = objective(examples: part, refLogps: refs, pairsInStep: pairs, chosenTokensInStep: chosenTokens, sums: box)
                .gradient(recorder.logProbs)
            p += part.count / 2
        }
        return box.value
    }
}

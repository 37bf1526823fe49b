import Foundation
import Kernels
import Transformer

/// Preference tuning for a training run (`peft train --stage dpo|orpo|simpo|kto`). Paired objectives: the examples
/// come in pairs (chosen at even indices, rejected at odd ones, the same prompt), and each step's objective is the
/// mean over its pairs of the preference loss (`PreferenceLoss`), plus `ftx` times the chosen answers' SFT loss
/// (LLaMA-Factory's pref_ftx), plus, for ORPO, the chosen answers' negative log-likelihood (mean over their tokens).
/// KTO: the examples stand alone (`TrainingExample.desirable`), the objective is the mean over the step's answers of
/// their weighted KTO losses, and each micro-batch estimates its KL term from mismatched sequences: every prompt
/// with the previous example's answer (the first with the last's), as TRL rotates completions within a batch.
public struct PreferenceSettings {
    public var loss: PreferenceLoss
    public var settings = PreferenceLoss.Settings()
    public var ftx = 0.0
    /// The reference policy for the DPO losses and KTO: nil is the base model with the adapter disabled (no second copy).
    public var reference: TransformerModel?

    public init(loss: PreferenceLoss) { self.loss = loss }

    /// The step plan: for pairs, `StepPlan` over pair indices (with `ranks` data-parallel ranks), each pair becoming
    /// its two examples; for KTO, the ordinary plan over the examples.
    public func plan(examples: Int, options: TrainingOptions, ranks: Int = 1) -> StepPlan {
        guard loss.isPaired else { return StepPlan(exampleCount: examples, options: options, ranks: ranks) }
        let base = StepPlan(exampleCount: examples / 2, options: options, ranks: ranks)
        return StepPlan(steps: base.steps.map { s in
            StepPlan.Step(epoch: s.epoch, microBatches: s.microBatches.map { $0.flatMap { [2 * $0, 2 * $0 + 1] } },
                          endsEpoch: s.endsEpoch)
        }, stepsPerEpoch: base.stepsPerEpoch)
    }

    /// Throws unless the examples fit the objective: whole pairs, or (KTO) answers that say whether they are desirable.
    public func check(_ examples: [TrainingExample]) throws {
        if loss.isPaired {
            guard examples.count % 2 == 0 else { throw TrainingError.options("preference examples come in pairs") }
        } else if let i = examples.firstIndex(where: { $0.desirable == nil }) {
            throw TrainingError.options("KTO example \(i + 1) does not say whether its answer is desirable")
        }
    }
}

/// One step's preference sums (for the log): over its pairs, or (KTO) over its answers.
public struct PreferenceSums: Sendable {
    /// `pairs` counts pairs, or KTO's answers; `chosen` and `rejected` count the answers of each kind.
    public var loss = 0.0, pairs = 0, correct = 0, chosen = 0, rejected = 0
    public var chosenRewards = 0.0, rejectedRewards = 0.0, chosenLogps = 0.0, rejectedLogps = 0.0
    /// KTO: the sum of the micro-batches' KL estimates and their count.
    public var klSum = 0.0, klBatches = 0

    mutating func add(_ other: PreferenceSums) {
        loss += other.loss; pairs += other.pairs; correct += other.correct
        chosen += other.chosen; rejected += other.rejected
        chosenRewards += other.chosenRewards; rejectedRewards += other.rejectedRewards
        chosenLogps += other.chosenLogps; rejectedLogps += other.rejectedLogps
        klSum += other.klSum; klBatches += other.klBatches
    }

    var array: [Double] {
        [loss, Double(pairs), Double(correct), Double(chosen), Double(rejected), chosenRewards, rejectedRewards,
         chosenLogps, rejectedLogps, klSum, Double(klBatches)]
    }

    /// TRL's logged means: the rewards of the chosen (desirable) and rejected (undesirable) answers, the share of
    /// pairs whose chosen reward is higher (paired objectives only), their margin, the summed log-probabilities, and
    /// KTO's KL estimate.
    public var rewardsChosen: Double { chosenRewards / Double(max(1, chosen)) }
    public var rewardsRejected: Double { rejectedRewards / Double(max(1, rejected)) }
    public var rewardsAccuracies: Double? { isUnpaired ? nil : Double(correct) / Double(max(1, pairs)) }
    public var rewardsMargins: Double { rewardsChosen - rewardsRejected }
    public var logpsChosen: Double { chosenLogps / Double(max(1, chosen)) }
    public var logpsRejected: Double { rejectedLogps / Double(max(1, rejected)) }
    public var kl: Double? { isUnpaired ? klSum / Double(klBatches) : nil }
    var isUnpaired: Bool { klBatches > 0 }

    /// Those means under TRL's names (`rewards/chosen`, ...).
    public var logged: [String: Double] {
        var o: [String: Double] = [:]
        if chosen > 0 { (o["rewards/chosen"], o["logps/chosen"]) = (rewardsChosen, logpsChosen) }
        if rejected > 0 { (o["rewards/rejected"], o["logps/rejected"]) = (rewardsRejected, logpsRejected) }
        if chosen > 0 && rejected > 0 { o["rewards/margins"] = rewardsMargins }
        if let a = rewardsAccuracies { o["rewards/accuracies"] = a }
        if let kl { o["kl"] = kl }
        return o
    }

    public init() {}
    init(_ a: [Double]) {
        (loss, pairs, correct, chosen, rejected) = (a[0], Int(a[1]), Int(a[2]), Int(a[3]), Int(a[4]))
        (chosenRewards, rejectedRewards, chosenLogps, rejectedLogps) = (a[5], a[6], a[7], a[8])
        (klSum, klBatches) = (a[9], Int(a[10]))
    }
}

extension PreferenceSettings {
    /// The summed log-probability of every sequence's labelled rows (forward only), under `model` with its adapter
    /// disabled or under the reference model; pairs share their prompt rows. `training`: the pass serves a training
    /// step, so positions are treated as the policy's training pass treats them (TRL computes the reference with the
    /// model in train mode); evaluation treats both as inference.
    func referenceLogps(model: TransformerModel, examples: [TrainingExample], training: Bool) -> [Double] {
        let target = reference ?? model
        let saved = model.adapter
        if reference == nil { model.adapter = nil }
        defer { model.adapter = saved }
        return Self.sequenceLogps(target, examples, paired: loss.isPaired, training: training)
    }

    /// The summed log-probability of every sequence's labelled rows under `model` as it stands (forward only).
    /// `paired`: the examples are pairs, packed with their prompts shared (`pairBatch`); `training`: positions as in
    /// training (no dropout either way).
    public static func sequenceLogps(_ model: TransformerModel, _ examples: [TrainingExample], paired: Bool = false,
                                     training: Bool = false) -> [Double] {
        let (batch, labels) = paired ? pairBatch(examples, model: model) : (PackedBatch(sequences: examples.map(\.ids)), examples.flatMap(\.labels))
        let buffers = model.makeBuffers(batches: [examples.map(\.ids.count)], policy: .inference)
        let recorder = SequenceObjective()
        var context = PassContext.inference
        context.positionsAsTraining = training
        _ = model.loss(batch, labels: labels, buffers: buffers, objective: recorder, context: context)
        return perSequence(recorder.logProbs, examples)
    }

    /// The packed batch and labels of pairs (chosen at even indices, rejected at odd ones): each rejected answer
    /// shares its chosen twin's prompt rows, all but the last (whose row predicts the answer's first token), so the
    /// prompt runs once (tree packing). Packed whole instead: pairs under adapters that put rows or an attention
    /// prefix in front of every sequence (prompt tuning, P-tuning, prefix tuning), mixture-of-experts models (the
    /// router's load-balancing loss counts every row, as the reference's padded batch has them), and under LongRoPE
    /// a pair whose answers end on different sides of the switch to the long factors, and under Qwen v1's dynamic NTK
    /// a pair whose lengths take different alphas (each sequence's rotation follows its own length; at inference
    /// for NTK, but the batch does not know its pass, so training packs such pairs whole too). The labelled rows keep
    /// their order, so the objective sees the same rows as with plain packing.
    public static func pairBatch(_ examples: [TrainingExample], model: TransformerModel) -> (batch: PackedBatch, labels: [Int32]) {
        let plain = (PackedBatch(sequences: examples.map(\.ids)), examples.flatMap(\.labels))
        guard examples.count % 2 == 0, (model.adapter?.leadingRows ?? 0) == 0, model.config.moe == nil else { return plain }
        var longFrom: Int?
        if case .longrope(_, _, let original, _) = model.config.rope.scaling { longFrom = original }
        var sharing: [PackedBatch.SharedPrefix?] = [], labels: [Int32] = []
        for p in 0..<(examples.count / 2) {
            let c = examples[2 * p], r = examples[2 * p + 1]
            var common = 0
            while common < min(c.ids.count, r.ids.count), c.ids[common] == r.ids[common] { common += 1 }
            var rows = min(common, c.promptLength, r.promptLength) - 1
            if let longFrom, (c.ids.count > longFrom) != (r.ids.count > longFrom) { rows = 0 }
            // Dynamic NTK (Qwen v1, at inference): each sequence's rotation follows its own length's alpha.
            if let n = model.config.dynamicNTKLength,
               RoPE.ntkAlpha(length: c.ids.count, trained: n) != RoPE.ntkAlpha(length: r.ids.count, trained: n) { rows = 0 }
            sharing += [nil, rows > 0 ? PackedBatch.SharedPrefix(sequence: 2 * p, rows: rows) : nil]
            labels += c.labels + r.labels[max(0, rows)...]
        }
        guard sharing.contains(where: { $0 != nil }) else { return plain }
        return (PackedBatch(sequences: examples.map(\.ids), sharing: sharing), labels)
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

    /// KTO's mismatched sequences of a batch: example i's prompt with example i-1's answer (example 0 with the
    /// last one's), cut to `maxLength` tokens; only the borrowed answer is labelled.
    public static func mismatched(_ examples: [TrainingExample], maxLength: Int) -> [TrainingExample] {
        examples.indices.map { i in
            let own = examples[i], other = examples[(i + examples.count - 1) % examples.count]
            let p = min(own.promptLength, own.ids.count), q = min(other.promptLength, other.ids.count)
            let ids = Array((Array(own.ids[..<p]) + other.ids[q...]).prefix(max(1, maxLength)))
            var trainable = [Bool](repeating: false, count: ids.count)
            for t in p..<max(p, ids.count) { trainable[t] = true }
            return TrainingExample(ids: ids, trainable: trainable)
        }
    }

    /// KTO's KL estimate of one batch, as sums: the mismatched sequences' log-ratios of the policy (as it stands,
    /// no gradient) to the reference, summed, and their count; only the sequences at `positions` (a rank's share;
    /// default all), so that the ranks' sums add up to the whole batch's. The caller divides and clamps at 0.
    func klSums(model: TransformerModel, batch: [TrainingExample], positions: [Int]? = nil,
                maxLength: Int, training: Bool) -> (sum: Double, count: Int) {
        let all = Self.mismatched(batch, maxLength: min(maxLength, model.config.maxPositionEmbeddings))
        let kl = positions.map { $0.map { all[$0] } } ?? all
        guard !kl.isEmpty else { return (0, 0) }
        let policy = Self.sequenceLogps(model, kl, training: training)
        let ref = referenceLogps(model: model, examples: kl, training: training)
        return (zip(policy, ref).reduce(0) { $0 + $1.0 - $1.1 }, kl.count)
    }

    /// The objective of one micro-batch: `pairsInStep` pairs (KTO: answers) and `chosenTokensInStep` chosen tokens
    /// in the whole step (the means' divisors); `refLogps` per sequence (DPO losses, KTO); `kl` KTO's clamped
    /// estimate for this micro-batch. Records the sums into `sums`.
    func objective(examples: [TrainingExample], refLogps: [Double]?, pairsInStep: Int, chosenTokensInStep: Int,
                   kl: Double = 0, sums: PreferenceSumsBox) -> SequenceObjective {
        SequenceObjective { rows in
            let logps = Self.perSequence(rows, examples)
            var weights: [Double] = []
            weights.reserveCapacity(rows.count)
            var local = PreferenceSums()
            let n = Double(pairsInStep)
            guard loss.isPaired else {
                for (i, e) in examples.enumerated() {
                    let desirable = e.desirable ?? true
                    let v = PreferenceLoss.unpaired(logp: logps[i], ref: refLogps?[i] ?? 0, kl: kl, desirable: desirable, settings)
                    weights += [Double](repeating: v.dChosen / n, count: e.labelCount)
                    local.loss += v.loss / n
                    local.pairs += 1
                    if desirable {
                        local.chosen += 1; local.chosenRewards += v.chosenReward; local.chosenLogps += logps[i]
                    } else {
                        local.rejected += 1; local.rejectedRewards += v.chosenReward; local.rejectedLogps += logps[i]
                    }
                }
                local.klSum = kl
                local.klBatches = 1
                sums.value.add(local)
                return weights
            }
            for p in 0..<(examples.count / 2) {
                let c = examples[2 * p], r = examples[2 * p + 1]
                let pair = PreferenceLoss.Pair(chosen: logps[2 * p], rejected: logps[2 * p + 1],
                                               refChosen: refLogps?[2 * p] ?? 0, refRejected: refLogps?[2 * p + 1] ?? 0,
                                               chosenTokens: c.labelCount, rejectedTokens: r.labelCount)
                let v = loss.value(pair, settings)
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
                local.chosen += 1
                local.rejected += 1
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
    /// The preference loss and rewards of `examples` (pairs, or KTO's answers) without training: forward passes
    /// only, in batches of `batchSize` pairs or answers (`peft eval --stage`, evaluation during training); KTO's KL
    /// term is estimated per batch, its mismatched sequences cut to `maxLength`.
    public func evaluate(model: TransformerModel, examples: [TrainingExample], batchSize: Int,
                         maxLength: Int = Int.max) throws -> PreferenceSums {
        try check(examples)
        try TrainingExample.validate(examples, for: model)
        let width = loss.isPaired ? 2 : 1
        let units = examples.count / width
        let chosenTokens = stride(from: 0, to: examples.count, by: 2).reduce(0) { $0 + examples[$1].labelCount }
        let box = PreferenceSumsBox()
        var p = 0
        while p < units {
            let part = Array(examples[(width * p)..<(width * min(units, p + max(1, batchSize)))])
            let refs = loss.needsReference ? referenceLogps(model: model, examples: part, training: false) : nil
            var kl = 0.0
            if !loss.isPaired {
                let k = klSums(model: model, batch: part, maxLength: maxLength, training: false)
                kl = max(0, k.sum / Double(k.count))
            }
            let recorder = SequenceObjective()
            let (batch, labels) = loss.isPaired ? Self.pairBatch(part, model: model) : (PackedBatch(sequences: part.map(\.ids)), part.flatMap(\.labels))
            let buffers = model.makeBuffers(batches: [part.map(\.ids.count)], policy: .inference)
            _ = model.loss(batch, labels: labels, buffers: buffers, objective: recorder)
            // The objective's closure computes the sums from the recorded log-probabilities.
            _ = objective(examples: part, refLogps: refs, pairsInStep: units, chosenTokensInStep: chosenTokens, kl: kl, sums: box)
                .gradient(recorder.logProbs)
            p += part.count / width
        }
        return box.value
    }
}

import Foundation
import Kernels
import Transformer

/// Knowledge distillation for a training run (`peft distill`): the student trains toward the teacher's token
/// distributions on the answer tokens (TRL's GKD objective: the generalized Jensen-Shannon divergence, plus
/// `ceWeight` times the usual cross-entropy), on the reference answers or, for a `lmbda` share of the steps, on
/// answers the student generates itself.
public struct DistillationSettings {
    public var teacher: TransformerModel
    /// 0: forward KL(teacher || student); 1: reverse KL(student || teacher); between: the generalized JSD.
    public var beta = 0.5
    public var temperature = 1.0
    /// Share of optimiser steps whose answers the student generates (on-policy).
    public var lmbda = 0.0
    public var ceWeight = 0.0
    public var maxNewTokens = 128
    /// On-policy answers: the student's continuation of `prompt` (sampled at `temperature` from `seed`), without
    /// its stop token. Required when `lmbda` > 0.
    public var generate: ((_ prompt: [Int32], _ maxNewTokens: Int, _ seed: UInt64) throws -> [Int32])?

    public init(teacher: TransformerModel) { self.teacher = teacher }

    /// Checks the settings and that teacher and student can be compared token by token.
    public func validate(student: TransformerModel) throws {
        guard (0...1).contains(beta) else { throw TrainingError.options("--beta must be in [0, 1], not \(beta)") }
        guard temperature > 0, temperature.isFinite else { throw TrainingError.options("--temperature must be positive, not \(temperature)") }
        guard (0...1).contains(lmbda) else { throw TrainingError.options("--lmbda must be in [0, 1], not \(lmbda)") }
        guard ceWeight >= 0, ceWeight.isFinite else { throw TrainingError.options("--ce-weight must be at least 0, not \(ceWeight)") }
        guard maxNewTokens >= 1 else { throw TrainingError.options("--max-new-tokens must be at least 1") }
        if lmbda > 0 && generate == nil { throw TrainingError.options("on-policy distillation (--lmbda > 0) needs a generator") }
    }

    /// The divergence's inputs for one packed batch: the teacher's logits at the labelled rows.
    func target(batch: PackedBatch, labels: [Int32], studentVocab: Int) -> Distillation {
        Distillation(teacherLogits: teacher.labelledLogits(batch, labels: labels), teacherVocab: teacher.config.vocabSize,
                     studentVocab: studentVocab, beta: beta, temperature: temperature, ceWeight: ceWeight)
    }

    /// Whether optimiser step `step` (0-based) trains on the student's own answers: a pure function of the seed and
    /// the step, so a resumed run makes the same choices.
    func onPolicy(step: Int, seed: UInt64) -> Bool {
        guard lmbda > 0 else { return false }
        let u = Double(SplitMix64.mix(seed &+ 0x5DEE_CE66 &+ UInt64(step) &* 0x9E37_79B9) >> 11) / Double(1 << 53)
        return u < lmbda
    }

    /// An example with the student's own answer after the reference's prompt (the tokens before its first trained
    /// one); the original when the student answers nothing.
    func onPolicyExample(_ e: TrainingExample, maxLength: Int, seed: UInt64) throws -> TrainingExample {
        guard let first = e.labels.firstIndex(where: { $0 >= 0 }), let generate else { return e }
        let prompt = Array(e.ids[...first])
        let budget = min(maxNewTokens, maxLength - prompt.count)
        guard budget > 0 else { return e }
        let answer = try generate(prompt, budget, seed)
        guard !answer.isEmpty else { return e }
        let ids = prompt + answer
        return TrainingExample(ids: ids, trainable: ids.indices.map { $0 >= prompt.count })
    }

    /// Rows an example may take on an on-policy step (its prompt plus the most the student may generate).
    func longest(_ e: TrainingExample, maxLength: Int) -> Int {
        guard lmbda > 0, let first = e.labels.firstIndex(where: { $0 >= 0 }) else { return e.ids.count }
        return max(e.ids.count, min(maxLength, first + 1 + maxNewTokens))
    }
}

/// The divergence between a student and its teacher on held-out data (`peft eval --teacher`).
public enum DistillationEvaluator {
    public struct Result: Sendable, Equatable {
        /// Mean over answer tokens of the divergence, and of the student's cross-entropy.
        public var distillLoss: Double
        public var ceLoss: Double
        public var tokens: Int
    }

    public static func evaluate(student: TransformerModel, teacher: TransformerModel, examples: [TrainingExample],
                                beta: Double, temperature: Double, batchSize: Int,
                                progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        guard batchSize >= 1 else { throw TrainingError.options("batch size must be at least 1") }
        try TrainingExample.validate(examples, for: student)
        try TrainingExample.validate(examples, for: teacher)
        var settings = DistillationSettings(teacher: teacher)
        settings.beta = beta
        settings.temperature = temperature
        try settings.validate(student: student)
        let batches = stride(from: 0, to: examples.count, by: batchSize).map { Array(examples[$0..<min(examples.count, $0 + batchSize)]) }
        let buffers = student.makeBuffers(batches: batches.map { $0.map(\.ids.count) }, policy: .inference)
        var divergence = 0.0, ce = 0.0, count = 0, done = 0
        for batch in batches {
            let packed = PackedBatch(sequences: batch.map(\.ids))
            let labels = batch.flatMap(\.labels)
            let target = settings.target(batch: packed, labels: labels, studentVocab: student.config.vocabSize)
            let (_, n) = student.loss(packed, labels: labels, buffers: buffers, distill: target)
            divergence += target.distillSum
            ce += target.ceSum
            count += n
            done += batch.count
            progress?(done, examples.count)
        }
        return Result(distillLoss: count > 0 ? divergence / Double(count) : .nan, ceLoss: count > 0 ? ce / Double(count) : .nan,
                      tokens: count)
    }
}

/// Hyper-parameters of a run (the `peft train` flags), saved with every checkpoint.
public struct TrainingOptions: Codable, Sendable, Equatable {
    public var epochs: Double = 3
    /// When set, overrides `epochs` (as transformers' max_steps does).
    public var maxSteps: Int?
    public var batchSize = 4
    public var gradientAccumulation = 1
    public var learningRate = 2e-4
    public var scheduler: LRSchedule.Kind = .linear
    public var warmupRatio = 0.0
    public var weightDecay = 0.0
    public var maxGradNorm = 1.0
    public var maxLength = 512
    public var evalEvery: Int?
    public var saveEvery: Int?
    public var gradientCheckpointing = false
    public var seed: UInt64 = 42
    /// nil: AdamW (checkpoints of earlier releases have no such field).
    public var optimizer: OptimizerKind?
    /// Mixture-of-experts models: the router's load-balancing loss weight (nil: the config's router_aux_loss_coef, as
    /// LLaMA-Factory trains them with output_router_logits; 0: left out).
    public var routerAuxLossCoef: Double?

    public init() {}

    /// Checks ranges; the message names the flag.
    /// Most optimiser steps one run may plan (the whole plan is laid out up front).
    public static let stepLimit = 1_000_000

    public func validate() throws {
        func bad(_ s: String) -> TrainingError { .options(s) }
        if maxSteps == nil && !(epochs > 0 && epochs <= 100_000) { throw bad("--epochs must be positive (at most 100000)") }
        if let m = maxSteps, m <= 0 || m > Self.stepLimit { throw bad("--max-steps must be within 1...\(Self.stepLimit)") }
        if batchSize < 1 || batchSize > 1 << 16 { throw bad("--batch-size must be within 1...65536") }
        if gradientAccumulation < 1 || gradientAccumulation > 1 << 16 { throw bad("--grad-accum must be within 1...65536") }
        if !(learningRate > 0 && learningRate.isFinite) { throw bad("--lr must be a positive number") }
        if !(0...1).contains(warmupRatio) { throw bad("--warmup-ratio must be within [0, 1]") }
        if !(weightDecay >= 0 && weightDecay.isFinite) { throw bad("--weight-decay must be a non-negative number") }
        if !(maxGradNorm >= 0 && maxGradNorm.isFinite) { throw bad("--max-grad-norm must be a non-negative number (0 disables clipping)") }
        if maxLength < 2 || maxLength > 1 << 20 { throw bad("--max-length must be within 2...1048576") }
        if let e = evalEvery, e < 1 { throw bad("--eval-every must be at least 1") }
        if let s = saveEvery, s < 1 { throw bad("--save-every must be at least 1") }
        if let c = routerAuxLossCoef, !(c >= 0 && c.isFinite) { throw bad("--router-aux-loss-coef must be a non-negative number (0 leaves it out)") }
    }
}

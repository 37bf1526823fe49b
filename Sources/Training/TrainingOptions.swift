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

    public init() {}

    /// Checks ranges; the message names the flag.
    public func validate() throws {
        func bad(_ s: String) -> TrainingError { .options(s) }
        if epochs <= 0 && maxSteps == nil { throw bad("--epochs must be positive") }
        if let m = maxSteps, m <= 0 { throw bad("--max-steps must be positive") }
        if batchSize < 1 { throw bad("--batch-size must be at least 1") }
        if gradientAccumulation < 1 { throw bad("--grad-accum must be at least 1") }
        if !(learningRate > 0) { throw bad("--lr must be positive") }
        if warmupRatio < 0 || warmupRatio > 1 { throw bad("--warmup-ratio must be within [0, 1]") }
        if weightDecay < 0 { throw bad("--weight-decay must not be negative") }
        if maxGradNorm < 0 { throw bad("--max-grad-norm must not be negative (0 disables clipping)") }
        if maxLength < 2 { throw bad("--max-length must be at least 2") }
        if let e = evalEvery, e < 1 { throw bad("--eval-every must be at least 1") }
        if let s = saveEvery, s < 1 { throw bad("--save-every must be at least 1") }
    }
}

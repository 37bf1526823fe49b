import Kernels

/// The whole run laid out up front: for each optimiser step, the micro-batches (lists of example indices) it
/// accumulates. A pure function of (example count, options), so a resumed run replays exactly the same order.
public struct StepPlan: Sendable {
    public struct Step: Sendable {
        public var epoch: Int
        public var microBatches: [[Int]]
        /// True for the last step of an epoch.
        public var endsEpoch: Bool

        public init(epoch: Int, microBatches: [[Int]], endsEpoch: Bool) {
            self.epoch = epoch
            self.microBatches = microBatches
            self.endsEpoch = endsEpoch
        }
    }

    public let steps: [Step]
    public let stepsPerEpoch: Int

    /// An explicit plan (tests replaying a reference run's batch order).
    public init(steps: [Step], stepsPerEpoch: Int) {
        self.steps = steps
        self.stepsPerEpoch = stepsPerEpoch
    }

    /// The plan of a data-parallel run: a single process's with `ranks` times the batch (--batch-size x
    /// --grad-accum x ranks examples per optimiser step, split among the ranks).
    public init(exampleCount n: Int, options: TrainingOptions, ranks: Int) {
        var global = options
        global.batchSize = options.batchSize * max(1, ranks)
        self.init(exampleCount: n, options: global)
    }

    public init(exampleCount n: Int, options o: TrainingOptions) {
        let microPerEpoch = (n + o.batchSize - 1) / o.batchSize
        stepsPerEpoch = max(1, (microPerEpoch + o.gradientAccumulation - 1) / o.gradientAccumulation)
        let planned = (Double(stepsPerEpoch) * o.epochs).rounded(.up)
        let total = o.maxSteps ?? Int(max(1, min(planned, Double(TrainingOptions.stepLimit))))
        var steps: [Step] = []
        var epoch = 0
        while steps.count < total {
            let order = Self.shuffled(n, seed: o.seed, epoch: epoch)
            let micro = stride(from: 0, to: n, by: o.batchSize).map { Array(order[$0..<min(n, $0 + o.batchSize)]) }
            var i = 0
            while i < micro.count && steps.count < total {
                let group = Array(micro[i..<min(micro.count, i + o.gradientAccumulation)])
                i += group.count
                steps.append(Step(epoch: epoch, microBatches: group, endsEpoch: i >= micro.count))
            }
            epoch += 1
        }
        self.steps = steps
    }

    /// The epoch's example order: Fisher-Yates with a generator seeded from (seed, epoch).
    static func shuffled(_ n: Int, seed: UInt64, epoch: Int) -> [Int] {
        var rng = SeededGenerator(seed: SplitMix64.mix(seed &+ UInt64(epoch) &* 0x9E37_79B9_7F4A_7C15))
        var order = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                order.swapAt(i, j)
            }
        }
        return order
    }
}

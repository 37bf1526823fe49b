import Adapters
import Foundation
import Training
import Transformer
import XCTest

/// An example of the reference scripts: token ids, and the first position whose token is trained.
public struct GoldenExample: Decodable, Sendable {
    public let ids: [Int32]
    public let trainableFrom: Int
    enum CodingKeys: String, CodingKey { case ids; case trainableFrom = "trainable_from" }

    /// Next-token labels: row t predicts ids[t+1] when that token is trained.
    public var labels: [Int32] {
        (0..<ids.count).map { t in t + 1 < ids.count && t + 1 >= trainableFrom ? ids[t + 1] : -100 }
    }
}

/// A reference training trajectory (the scripts' `run_trajectory`): `steps` optimiser steps alternating two fixed
/// batches, linear warmup / decay, weight decay and clipping, with the losses and gradient norms torch measured.
public struct GoldenTrajectory: Decodable, Sendable {
    public let batches: [[GoldenExample]]
    public let losses: [Double]
    public let gradNorms: [Double]
    public let lrs: [Double]?
    public let lr: Double
    public let warmupSteps: Int
    public let steps: Int
    public let weightDecay: Double
    public let maxGradNorm: Double

    enum CodingKeys: String, CodingKey {
        case batches, losses, lrs, lr, steps
        case gradNorms = "grad_norms", warmupSteps = "warmup_steps", weightDecay = "weight_decay"
        case maxGradNorm = "max_grad_norm"
    }

    public static func load(_ url: URL) throws -> GoldenTrajectory {
        try JSONDecoder().decode(GoldenTrajectory.self, from: Data(contentsOf: url))
    }

    /// Trains `adapter` on `model` exactly as the reference did; returns our losses, gradient norms and learning
    /// rates, and leaves the run's output in `output`.
    /// - Parameter configure: adjusts the trainer before it runs (a distillation teacher).
    public func replay(model: TransformerModel, adapter: TrainableAdapter, optimizer: OptimizerKind? = nil,
                       output: URL, configure: (Trainer) -> Void = { _ in }) throws -> (losses: [Double], norms: [Double], lrs: [Double]) {
        let examples = batches.flatMap { $0 }.map { TrainingExample(ids: $0.ids, labels: $0.labels) }
        let plan = StepPlan(steps: (0..<steps).map { s in
            StepPlan.Step(epoch: 0, microBatches: [s % 2 == 0 ? [0, 1] : [2, 3]], endsEpoch: false)
        }, stepsPerEpoch: steps)
        var options = TrainingOptions()
        options.learningRate = lr
        options.warmupRatio = Double(warmupSteps) / Double(steps)
        options.weightDecay = weightDecay
        options.maxGradNorm = maxGradNorm
        options.batchSize = 2
        options.maxSteps = steps
        options.optimizer = optimizer
        let trainer = try Trainer(model: model, adapter: adapter, options: options, train: examples, eval: [],
                                  output: output, baseModelPath: "fixture", plan: plan)
        configure(trainer)
        var losses: [Double] = [], norms: [Double] = [], rates: [Double] = []
        trainer.onStep = { losses.append($0.loss); norms.append($0.gradNorm); rates.append($0.learningRate) }
        try trainer.run()
        return (losses, norms, rates)
    }

    /// Replays and checks losses and gradient norms against the reference: f32 trajectories agree to ~1e-5
    /// relative; 1e-3 leaves room for AdamW's amplification of early differences over ten steps.
    public func assertReplayMatches(model: TransformerModel, adapter: TrainableAdapter, optimizer: OptimizerKind? = nil,
                                    output: URL, _ label: String, configure: (Trainer) -> Void = { _ in },
                                    file: StaticString = #filePath, line: UInt = #line) throws {
        let ours = try replay(model: model, adapter: adapter, optimizer: optimizer, output: output, configure: configure)
        XCTAssertEqual(ours.losses.count, steps, label, file: file, line: line)
        for (i, (a, b)) in zip(ours.losses, losses).enumerated() {
            XCTAssertEqual(a, b, accuracy: 1e-3 * b, "\(label) loss step \(i)", file: file, line: line)
        }
        for (i, (a, b)) in zip(ours.norms, gradNorms).enumerated() {
            XCTAssertEqual(a, b, accuracy: 1e-3 * b + 1e-6, "\(label) grad norm step \(i)", file: file, line: line)
        }
        for (i, (a, b)) in zip(ours.lrs, lrs ?? []).enumerated() {
            XCTAssertEqual(a, b, accuracy: 1e-12, "\(label) lr step \(i)", file: file, line: line)
        }
    }
}

/// A fresh temporary directory URL (not created).
public func temporaryURL(_ prefix: String) -> URL {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
}

import Adapters
import Foundation
import TestSupport
import Training
import Transformer
import XCTest

/// Ten steps of DPO, of ORPO and of KTO (LoRA from PEFT's initial adapter, the reference the base with the adapter
/// disabled) reproduce the torch loops of scripts/make_dpo_fixtures.py: losses, gradient norms, rewards, KTO's KL.
final class PreferenceTrainingTests: XCTestCase {
    struct Golden: Decodable {
        struct Pair: Decodable { let chosen: GoldenExample; let rejected: GoldenExample }
        let pairs: [Pair]
        let losses: [Double]
        let grad_norms: [Double]
        let lrs: [Double]
        let lr: Double
        let warmup_steps: Int
        let steps: Int
        let weight_decay: Double
        let max_grad_norm: Double
        let beta: Double
        let chosen_rewards: [Double]
        let rejected_rewards: [Double]
    }

    func replay(_ name: String, loss: PreferenceLoss) throws {
        let g = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/\(name)-training.json")))
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-train-init"), model: model.config)
        lora.dropout = 0
        let examples = g.pairs.flatMap { [$0.chosen, $0.rejected] }.map { TrainingExample(ids: $0.ids, labels: $0.labels) }
        let plan = StepPlan(steps: (0..<g.steps).map { s in
            StepPlan.Step(epoch: 0, microBatches: [s % 2 == 0 ? [0, 1, 2, 3] : [4, 5, 6, 7]], endsEpoch: false)
        }, stepsPerEpoch: g.steps)
        var options = TrainingOptions()
        options.learningRate = g.lr
        options.warmupRatio = Double(g.warmup_steps) / Double(g.steps)
        options.weightDecay = g.weight_decay
        options.maxGradNorm = g.max_grad_norm
        options.batchSize = 2
        options.maxSteps = g.steps
        let out = temporaryURL("pref-\(name)")
        defer { try? FileManager.default.removeItem(at: out) }
        let trainer = try Trainer(model: model, adapter: lora, options: options, train: examples, eval: [], output: out,
                                  baseModelPath: "fixture", plan: plan)
        var settings = PreferenceSettings(loss: loss)
        settings.settings.beta = g.beta
        trainer.preference = settings
        var losses: [Double] = [], norms: [Double] = []
        trainer.onStep = { losses.append($0.loss); norms.append($0.gradNorm) }
        try trainer.run()
        XCTAssertEqual(losses.count, g.steps)
        for i in 0..<g.steps {
            XCTAssertEqual(losses[i], g.losses[i], accuracy: 1e-3 * abs(g.losses[i]) + 1e-5, "\(name) loss step \(i)")
            XCTAssertEqual(norms[i], g.grad_norms[i], accuracy: 1e-3 * g.grad_norms[i] + 1e-6, "\(name) grad norm step \(i)")
        }
        let entries = try String(contentsOf: out.appendingPathComponent("train_log.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(LogEntry.self, from: Data($0.utf8)) }
        for (i, e) in entries.enumerated() {
            XCTAssertEqual(e.rewardsChosen ?? .nan, g.chosen_rewards[i], accuracy: 1e-3 * abs(g.chosen_rewards[i]) + 1e-5, "\(name) step \(i)")
            XCTAssertEqual(e.rewardsRejected ?? .nan, g.rejected_rewards[i], accuracy: 1e-3 * abs(g.rejected_rewards[i]) + 1e-5, "\(name) step \(i)")
            XCTAssertNotNil(e.rewardsAccuracies)
            XCTAssertEqual(e.rewardsMargins ?? .nan, (e.rewardsChosen ?? 0) - (e.rewardsRejected ?? 0), accuracy: 1e-12)
        }
    }

    func testDPOMatchesTheTorchLoop() throws { try replay("dpo", loss: .sigmoid) }
    func testORPOMatchesTheTorchLoop() throws { try replay("orpo", loss: .orpo) }

    struct KTOGolden: Decodable {
        struct Answer: Decodable { let ids: [Int32]; let trainable_from: Int; let desirable: Bool }
        let answers: [Answer]
        let losses: [Double]
        let grad_norms: [Double]
        let lr: Double
        let warmup_steps: Int
        let steps: Int
        let weight_decay: Double
        let max_grad_norm: Double
        let beta: Double
        let desirable_weight: Double
        let undesirable_weight: Double
        let chosen_rewards: [Double]
        let rejected_rewards: [Double]
        let kl: [Double]
    }

    func testKTOMatchesTheTorchLoop() throws {
        let g = try JSONDecoder().decode(KTOGolden.self, from: Data(contentsOf: fixtureURL("golden/kto-training.json")))
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-train-init"), model: model.config)
        lora.dropout = 0
        let examples = g.answers.map { a in
            var e = TrainingExample(ids: a.ids, trainable: a.ids.indices.map { $0 >= a.trainable_from })
            e.desirable = a.desirable
            return e
        }
        XCTAssertEqual(examples.map(\.promptLength), g.answers.map(\.trainable_from))
        var settings = PreferenceSettings(loss: .kto)
        settings.settings.beta = g.beta
        settings.settings.desirableWeight = g.desirable_weight
        settings.settings.undesirableWeight = g.undesirable_weight
        var options = TrainingOptions()
        options.learningRate = g.lr
        options.warmupRatio = Double(g.warmup_steps) / Double(g.steps)
        options.weightDecay = g.weight_decay
        options.maxGradNorm = g.max_grad_norm
        options.batchSize = 4
        options.maxSteps = g.steps
        // KTO plans over single answers (no pairs kept together).
        XCTAssertEqual(settings.plan(examples: 8, options: options).steps.first?.microBatches.first?.count, 4)
        let plan = StepPlan(steps: (0..<g.steps).map { s in
            StepPlan.Step(epoch: 0, microBatches: [s % 2 == 0 ? [0, 1, 2, 3] : [4, 5, 6, 7]], endsEpoch: false)
        }, stepsPerEpoch: g.steps)
        let out = temporaryURL("pref-kto")
        defer { try? FileManager.default.removeItem(at: out) }
        let trainer = try Trainer(model: model, adapter: lora, options: options, train: examples, eval: [], output: out,
                                  baseModelPath: "fixture", plan: plan)
        trainer.preference = settings
        var losses: [Double] = [], norms: [Double] = []
        trainer.onStep = { losses.append($0.loss); norms.append($0.gradNorm) }
        try trainer.run()
        XCTAssertEqual(losses.count, g.steps)
        for i in 0..<min(losses.count, g.steps) {
            XCTAssertEqual(losses[i], g.losses[i], accuracy: 1e-3 * abs(g.losses[i]) + 1e-5, "kto loss step \(i)")
            XCTAssertEqual(norms[i], g.grad_norms[i], accuracy: 1e-3 * g.grad_norms[i] + 1e-6, "kto grad norm step \(i)")
        }
        let entries = try LogEntry.read(out.appendingPathComponent("train_log.jsonl"))
        XCTAssertEqual(entries.count, g.steps)
        // Some steps clamp the KL estimate at 0, others do not: both paths are exercised.
        XCTAssertTrue(g.kl.contains(0) && g.kl.contains { $0 > 0.1 })
        for (i, e) in entries.enumerated() {
            XCTAssertEqual(e.kl ?? .nan, g.kl[i], accuracy: 1e-3 * g.kl[i] + 1e-5, "kto kl step \(i)")
            XCTAssertEqual(e.rewardsChosen ?? .nan, g.chosen_rewards[i], accuracy: 1e-3 * abs(g.chosen_rewards[i]) + 1e-5, "kto step \(i)")
            XCTAssertEqual(e.rewardsRejected ?? .nan, g.rejected_rewards[i], accuracy: 1e-3 * abs(g.rejected_rewards[i]) + 1e-5, "kto step \(i)")
            XCTAssertNil(e.rewardsAccuracies, "KTO's answers are unpaired: no accuracy")
        }
    }
}

import Adapters
import Foundation
import TestSupport
import Training
import Transformer
import XCTest

/// Ten distillation steps (LoRA student tiny-qwen2 from PEFT's initial adapter, teacher tiny-qwen2-prune,
/// generalized JSD at beta 0.5 and temperature 2 plus 0.5 x cross-entropy) reproduce the torch loop of
/// scripts/make_distill_fixtures.py: losses, gradient norms, and the logged divergence and cross-entropy.
final class DistillationTrainingTests: XCTestCase {
    struct Extra: Decodable {
        let beta: Double
        let temperature: Double
        let ce_weight: Double
        let distill_losses: [Double]
        let ce_losses: [Double]
    }

    func testTenStepsMatchTheTorchLoop() throws {
        let url = fixtureURL("golden/distill-training.json")
        let golden = try GoldenTrajectory.load(url)
        let extra = try JSONDecoder().decode(Extra.self, from: Data(contentsOf: url))
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let teacher = try TransformerModel.load(directory: modelFixture("tiny-qwen2-prune"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-train-init"), model: model.config)
        lora.dropout = 0
        let out = temporaryURL("distill-traj")
        defer { try? FileManager.default.removeItem(at: out) }
        var settings = DistillationSettings(teacher: teacher)
        settings.beta = extra.beta
        settings.temperature = extra.temperature
        settings.ceWeight = extra.ce_weight
        try golden.assertReplayMatches(model: model, adapter: lora, output: out, "distill") { $0.distillation = settings }
        let entries = try String(contentsOf: out.appendingPathComponent("train_log.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(LogEntry.self, from: Data($0.utf8)) }
            .filter { $0.type == "train" }
        XCTAssertEqual(entries.count, 10)
        for (i, e) in entries.enumerated() {
            XCTAssertEqual(e.distillLoss ?? .nan, extra.distill_losses[i], accuracy: 1e-3 * extra.distill_losses[i], "step \(i)")
            XCTAssertEqual(e.ceLoss ?? .nan, extra.ce_losses[i], accuracy: 1e-3 * extra.ce_losses[i], "step \(i)")
            XCTAssertEqual(e.onPolicy, false)
        }
    }

    /// The evaluator's divergence equals the first training step's (same batch, same starting adapter).
    func testEvaluatorAgreesWithTheTrainingObjective() throws {
        let url = fixtureURL("golden/distill-training.json")
        let golden = try GoldenTrajectory.load(url)
        let extra = try JSONDecoder().decode(Extra.self, from: Data(contentsOf: url))
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        model.adapter = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-train-init"), model: model.config)
        let teacher = try TransformerModel.load(directory: modelFixture("tiny-qwen2-prune"), dtype: .float32)
        let examples = golden.batches[0].map { TrainingExample(ids: $0.ids, labels: $0.labels) }
        let r = try DistillationEvaluator.evaluate(student: model, teacher: teacher, examples: examples, beta: extra.beta,
                                                   temperature: extra.temperature, batchSize: 2)
        XCTAssertEqual(r.distillLoss, extra.distill_losses[0], accuracy: 1e-4 * extra.distill_losses[0])
        XCTAssertEqual(r.ceLoss, extra.ce_losses[0], accuracy: 1e-4 * extra.ce_losses[0])
    }
}

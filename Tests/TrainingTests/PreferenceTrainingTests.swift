import Adapters
import Foundation
import TestSupport
import Training
import Transformer
import XCTest

/// Ten steps of DPO, of ORPO and of KTO (LoRA from PEFT's initial adapter, the reference the base with the adapter
/// disabled) reproduce the torch loops of scripts/make_dpo_fixtures.py: losses, gradient norms, rewards, KTO's KL.
final class PreferenceTrainingTests: XCTestCase {
    /// What every trajectory fixture records of its run: the optimiser settings, beta, and per step the loss, the
    /// gradient norm and the mean rewards.
    struct Run: Decodable {
        let lr: Double
        let warmup_steps: Int
        let steps: Int
        let weight_decay: Double
        let max_grad_norm: Double
        let beta: Double
        let losses: [Double]
        let grad_norms: [Double]
        let chosen_rewards: [Double]
        let rejected_rewards: [Double]

        static func read(_ name: String) throws -> Run {
            try JSONDecoder().decode(Run.self, from: Data(contentsOf: fixtureURL("golden/\(name)-training.json")))
        }

        /// The fixture's optimiser settings, `batchSize` examples per micro-batch, and its two batches of examples
        /// 0-3 and 4-7 taken in turn.
        func setup(batchSize: Int) -> (TrainingOptions, StepPlan) {
            var options = TrainingOptions()
            options.learningRate = lr
            options.warmupRatio = Double(warmup_steps) / Double(steps)
            options.weightDecay = weight_decay
            options.maxGradNorm = max_grad_norm
            options.batchSize = batchSize
            options.maxSteps = steps
            let plan = StepPlan(steps: (0..<steps).map { s in
                StepPlan.Step(epoch: 0, microBatches: [s % 2 == 0 ? [0, 1, 2, 3] : [4, 5, 6, 7]], endsEpoch: false)
            }, stepsPerEpoch: steps)
            return (options, plan)
        }
    }

    struct Pairs: Decodable {
        struct Pair: Decodable { let chosen: GoldenExample; let rejected: GoldenExample }
        let pairs: [Pair]
    }

    func replay(_ name: String, loss: PreferenceLoss) throws {
        let g = try Run.read(name)
        let data = try JSONDecoder().decode(Pairs.self, from: Data(contentsOf: fixtureURL("golden/\(name)-training.json")))
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-train-init"), model: model.config)
        lora.dropout = 0
        let examples = data.pairs.flatMap { [$0.chosen, $0.rejected] }.map { TrainingExample(ids: $0.ids, labels: $0.labels) }
        let (options, plan) = g.setup(batchSize: 2)
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

    struct KTOData: Decodable {
        struct Answer: Decodable { let ids: [Int32]; let trainable_from: Int; let desirable: Bool }
        let answers: [Answer]
        let desirable_weight: Double
        let undesirable_weight: Double
        let kl: [Double]
    }

    func testKTOMatchesTheTorchLoop() throws {
        let g = try Run.read("kto")
        let data = try JSONDecoder().decode(KTOData.self, from: Data(contentsOf: fixtureURL("golden/kto-training.json")))
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-train-init"), model: model.config)
        lora.dropout = 0
        let examples = data.answers.map { a in
            var e = TrainingExample(ids: a.ids, trainable: a.ids.indices.map { $0 >= a.trainable_from })
            e.desirable = a.desirable
            return e
        }
        XCTAssertEqual(examples.map(\.promptLength), data.answers.map(\.trainable_from))
        var settings = PreferenceSettings(loss: .kto)
        settings.settings.beta = g.beta
        settings.settings.desirableWeight = data.desirable_weight
        settings.settings.undesirableWeight = data.undesirable_weight
        let (options, plan) = g.setup(batchSize: 4)
        // KTO plans over single answers (no pairs kept together).
        XCTAssertEqual(settings.plan(examples: 8, options: options).steps.first?.microBatches.first?.count, 4)
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
        XCTAssertTrue(data.kl.contains(0) && data.kl.contains { $0 > 0.1 })
        for (i, e) in entries.enumerated() {
            XCTAssertEqual(e.kl ?? .nan, data.kl[i], accuracy: 1e-3 * data.kl[i] + 1e-5, "kto kl step \(i)")
            XCTAssertEqual(e.rewardsChosen ?? .nan, g.chosen_rewards[i], accuracy: 1e-3 * abs(g.chosen_rewards[i]) + 1e-5, "kto step \(i)")
            XCTAssertEqual(e.rewardsRejected ?? .nan, g.rejected_rewards[i], accuracy: 1e-3 * abs(g.rejected_rewards[i]) + 1e-5, "kto step \(i)")
            XCTAssertNil(e.rewardsAccuracies, "KTO's answers are unpaired: no accuracy")
        }
    }

    /// The sequence-level objective's gradient, d(sum_i w_i log p_i)/d(parameter), by finite differences: LoRA
    /// (the LM head frozen: one pass, each row's gradient scaled once its weight is known) and full fine-tuning (the
    /// tied head trains: a second pass with the weights inside the head's product).
    func testSequenceObjectiveGradientsByFiniteDifferences() throws {
        let ids: [[Int32]] = [[301, 17, 42, 99, 3, 302, 198, 301, 250, 7, 64, 302], [301, 12, 8, 302, 198, 301, 90, 91, 92, 302]]
        let examples = ids.map { s in TrainingExample(ids: s, trainable: s.indices.map { $0 >= 8 }) }
        let batch = PackedBatch(sequences: examples.map(\.ids)), labels = examples.flatMap(\.labels)
        let rowCount = labels.filter { $0 >= 0 }.count
        let weights = (0..<rowCount).map { 0.5 + 0.4 * sin(Double($0)) }
        for full in [false, true] {
            let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
            let adapter: TrainableAdapter
            if full {
                adapter = try BaseFineTuning(model: model, baseDirectory: modelFixture("tiny-qwen2"), freeze: nil)
            } else {
                let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-train-init"), model: model.config)
                lora.dropout = 0
                adapter = lora
            }
            model.adapter = adapter
            adapter.reserve(rows: batch.rowCount)
            adapter.parametersDidChange()
            func objectiveValue() -> Double {
                let recorder = SequenceObjective()
                _ = model.loss(batch, labels: labels, buffers: model.makeBuffers(batches: [batch.lengths], policy: .inference),
                               objective: recorder)
                return zip(recorder.logProbs, weights).reduce(0) { $0 + $1.0 * $1.1 }
            }
            adapter.zeroGradients()
            let objective = SequenceObjective { lp in
                XCTAssertEqual(lp.count, rowCount)
                return weights
            }
            _ = model.forwardBackward(batch, labels: labels, gradScale: 1,
                                      buffers: model.makeBuffers(batches: [batch.lengths], policy: .keepAll),
                                      context: PassContext(training: true, randomKey: 1), objective: objective)
            adapter.finishGradients()
            let n = adapter.parameterCount
            let grad = Array(UnsafeBufferPointer(start: adapter.gradients.pointer, count: n))
            // The largest gradients, and for full tuning the largest in the (tied) embedding / LM head.
            var picks = Array(grad.indices.sorted { abs(grad[$0]) > abs(grad[$1]) }.prefix(3))
            if full, let head = adapter.namedParameters.first(where: { $0.name.contains("embed_tokens") }) {
                let range = head.offset..<(head.offset + head.count)
                picks.append(range.max { abs(grad[$0]) < abs(grad[$1]) }!)
            }
            for i in picks {
                let p = adapter.parameters.pointer + i, saved = p.pointee, h: Float = 1e-2 * max(1e-2, abs(saved))
                p.pointee = saved + h
                adapter.parametersDidChange()
                let up = objectiveValue()
                p.pointee = saved - h
                adapter.parametersDidChange()
                let down = objectiveValue()
                p.pointee = saved
                adapter.parametersDidChange()
                let numeric = (up - down) / Double(2 * h)
                XCTAssertEqual(Double(grad[i]), numeric, accuracy: 2e-2 * abs(numeric) + 1e-3,
                               "\(full ? "full" : "lora") parameter \(i)")
            }
        }
    }

    /// Tree packing: a pair's rejected answer sharing its chosen twin's prompt rows gives the same log-probabilities
    /// and the same gradients as packing both whole (keepAll and checkpointing; grouped-query attention, a sliding
    /// window shorter than the prompt, a Llama-family model).
    func testTreePackedPairsEqualPlainPacking() throws {
        let prompts: [[Int32]] = [[301, 17, 42, 99, 3, 302, 198, 301, 12], [301, 5, 6, 7, 302, 198, 301]]
        let answers: [[Int32]] = [[250, 7, 64, 302], [128, 77, 302], [90, 91, 92, 93, 302], [60, 302]]
        var examples: [TrainingExample] = []
        for (p, prompt) in prompts.enumerated() {
            for a in answers[(2 * p)...(2 * p + 1)] {
                examples.append(TrainingExample(ids: prompt + a, trainable: (prompt + a).indices.map { $0 >= prompt.count }))
            }
        }
        let weights = (0..<examples.reduce(0) { $0 + $1.labelCount }).map { 0.7 - 0.3 * cos(Double($0)) }
        for fixture in ["tiny-qwen2", "tiny-qwen2-swa", "tiny-llama"] {
            let model = try TransformerModel.load(directory: modelFixture(fixture), dtype: .float32)
            let lora = try LoRAAdapter(config: LoRAConfig(r: 4, alpha: 8, dropout: 0, targetModules: .names(["q_proj", "v_proj", "down_proj"])),
                                       model: model.config)
            for i in 0..<lora.parameterCount { lora.parameters.pointer[i] = Float(sin(Double(i) * 0.37)) * 0.05 }
            model.adapter = lora
            lora.reserve(rows: 64)
            lora.parametersDidChange()
            let (tree, treeLabels) = PreferenceSettings.pairBatch(examples, model: model)
            XCTAssertTrue(tree.isTree, fixture)
            XCTAssertEqual(tree.sharedPrefix[1], PackedBatch.SharedPrefix(sequence: 0, rows: prompts[0].count - 1))
            XCTAssertEqual(tree.rowCount, examples.reduce(0) { $0 + $1.ids.count } - (prompts[0].count - 1) - (prompts[1].count - 1))
            let plain = PackedBatch(sequences: examples.map(\.ids)), plainLabels = examples.flatMap(\.labels)
            for policy in [ActivationPolicy.keepAll, .checkpointing] {
                func run(_ batch: PackedBatch, _ labels: [Int32]) -> (logps: [Double], grads: [Float]) {
                    lora.zeroGradients()
                    var seen: [Double] = []
                    let objective = SequenceObjective { lp in seen = lp; return weights }
                    _ = model.forwardBackward(batch, labels: labels, gradScale: 1,
                                              buffers: model.makeBuffers(batches: [examples.map(\.ids.count)], policy: policy),
                                              context: PassContext(training: true, randomKey: 1), objective: objective)
                    lora.finishGradients()
                    return (seen, Array(UnsafeBufferPointer(start: lora.gradients.pointer, count: lora.parameterCount)))
                }
                let a = run(plain, plainLabels), b = run(tree, treeLabels)
                XCTAssertEqual(a.logps.count, b.logps.count)
                for (x, y) in zip(a.logps, b.logps) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "\(fixture) \(policy)") }
                let scale = a.grads.map(abs).max() ?? 1
                XCTAssertGreaterThan(scale, 0)
                for (x, y) in zip(a.grads, b.grads) { XCTAssertEqual(x, y, accuracy: 1e-4 * scale, "\(fixture) \(policy) gradient") }
            }
            // Forward only (reference log-probabilities): the same sums per sequence.
            model.adapter = lora
            let treeSums = PreferenceSettings.sequenceLogps(model, examples, paired: true)
            let plainSums = PreferenceSettings.sequenceLogps(model, examples, paired: false)
            for (x, y) in zip(treeSums, plainSums) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(y)), fixture) }
        }
    }

    /// Qwen v1 with dynamic NTK and log-n past seq_length (2 here): the reference and KL passes of a training step
    /// treat positions as the policy's training pass does (TRL runs the reference in train mode), so an untrained
    /// adapter's policy equals its reference; evaluation treats both as inference, which differs. Tree packing keeps
    /// pairs whose lengths take different NTK alphas whole.
    func testReferencePassTreatsPositionsAsTrainingDoes() throws {
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen1-ntk"), dtype: .float32)
        XCTAssertEqual(model.config.dynamicNTKLength, 2)
        let lora = try LoRAAdapter(config: LoRAConfig(r: 4, alpha: 8, dropout: 0, targetModules: .names(["c_attn"])),
                                   model: model.config)
        model.adapter = lora
        lora.reserve(rows: 64)
        let prompt: [Int32] = [301, 17, 42, 99, 3, 302, 198]
        let examples = [[250, 7, 64, 302], [302]].map { (a: [Int32]) in
            TrainingExample(ids: prompt + a, trainable: (prompt + a).indices.map { $0 >= prompt.count })
        }
        var seen: [Double] = []
        let objective = SequenceObjective { lp in seen = lp; return lp.map { _ in 1 } }
        _ = model.forwardBackward(PackedBatch(sequences: examples.map(\.ids)), labels: examples.flatMap(\.labels), gradScale: 1,
                                  buffers: model.makeBuffers(batches: [examples.map(\.ids.count)], policy: .keepAll),
                                  context: PassContext(training: true, randomKey: 1), objective: objective)
        let asTraining = PreferenceSettings.sequenceLogps(model, examples, training: true)
        let asInference = PreferenceSettings.sequenceLogps(model, examples, training: false)
        // The training pass's per-row log-probabilities, summed per sequence (4 and 1 labelled rows).
        XCTAssertEqual(seen.count, 5)
        let sums = [seen[0..<4].reduce(0, +), seen[4]]
        for (x, y) in zip(sums, asTraining) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x))) }
        XCTAssertGreaterThan(zip(sums, asInference).map { abs($0 - $1) }.max() ?? 0, 1e-4)
        // 11 and 8 tokens take alphas 15 and 7: packed whole; two of 11 share their prompt.
        XCTAssertFalse(PreferenceSettings.pairBatch(examples, model: model).batch.isTree)
        let same = [examples[0], TrainingExample(ids: prompt + [90, 91, 92, 302], trainable: (0..<11).map { $0 >= prompt.count })]
        XCTAssertTrue(PreferenceSettings.pairBatch(same, model: model).batch.isTree)
    }
}

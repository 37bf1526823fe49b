import Adapters
import Foundation
import Generation
import Kernels
import TestSupport
import Tokenizer
import Training
import Transformer
import XCTest

/// End-to-end behaviour of the training loop on the tiny checkpoint: overfitting, exact resume, checkpoints.
final class TrainerTests: XCTestCase {
    var out: URL!

    override func setUp() { out = FileManager.default.temporaryDirectory.appendingPathComponent("trainer-\(UUID().uuidString)") }
    override func tearDown() { try? FileManager.default.removeItem(at: out) }

    let records = trainerRecords

    func setup(_ options: TrainingOptions, lora config: LoRAConfig) throws
        -> (TransformerModel, LoRAAdapter, ExampleBuilder, [TrainingExample]) {
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let tok = try Tokenizer.load(directory: modelFixture("tiny-qwen2"))
        let builder = ExampleBuilder(formatter: try ChatFormatter(template: .chatml, tokenizer: tok),
                                     maxLength: options.maxLength)
        let lora = try LoRAAdapter(config: config, model: model.config)
        lora.initialize(seed: options.seed)
        return (model, lora, builder, try builder.build(records).examples)
    }

    func testOverfitsAFewRecordsAndReproducesThemGreedily() throws {
        var options = TrainingOptions()
        options.batchSize = 3
        options.maxSteps = 120
        options.learningRate = 1e-2
        options.scheduler = .constant
        let (model, lora, builder, examples) = try setup(options, lora: LoRAConfig(r: 16, alpha: 32, dropout: 0, targetModules: .allLinear))
        // The fixture's frozen final norm (weights ~1, hidden 64) caps logits near 8, which floors the loss of a
        // 384-token vocabulary near 0.16 whatever LoRA learns. Triple it so memorisation can reach ~0.
        for i in 0..<model.config.hiddenSize { model.weights.finalNorm[i] *= 3 }
        let trainer = try Trainer(model: model, adapter: lora, options: options, train: examples, eval: examples,
                                  output: out, baseModelPath: "tiny-qwen2")
        let summary = try trainer.run()
        let final = try XCTUnwrap(summary.finalLoss)
        XCTAssertLessThan(final, 0.1)
        XCTAssertLessThan(try XCTUnwrap(summary.lastEval).loss, 0.1)
        let generator = Generator(model: model)
        for record in records {
            let result = try generator.generate(prompt: try builder.promptIDs(record), options: SamplingOptions(),
                                                stopIDs: builder.formatter.stopIDs)
            XCTAssertEqual(builder.formatter.tokenizer.decode(result.tokens), record.turns[0].answer)
            XCTAssertEqual(result.finishReason, "stop")
        }
        // The saved adapter reloads to the same logits.
        let reloaded = try LoRAAdapter.load(from: out, model: model.config)
        XCTAssertEqual(reloaded.parameters.array, lora.parameters.array)
        let log = try LogEntry.read(out.appendingPathComponent("train_log.jsonl"))
        XCTAssertEqual(log.filter { $0.type == "train" }.count, 120)
        XCTAssertFalse(log.filter { $0.type == "eval" }.isEmpty)
    }

    func testResumeContinuesTheSameLossCurve() throws {
        var options = TrainingOptions()
        options.batchSize = 2
        options.maxSteps = 6
        options.saveEvery = 3
        options.learningRate = 5e-3
        options.warmupRatio = 0.2
        options.seed = 9
        let config = LoRAConfig(r: 4, alpha: 8, dropout: 0.1, targetModules: .names(["q_proj", "v_proj", "down_proj"]))
        var (model, lora, _, examples) = try setup(options, lora: config)
        let full = try Trainer(model: model, adapter: lora, options: options, train: examples, eval: [], output: out,
                               baseModelPath: "tiny-qwen2")
        var fullLosses: [Double] = []
        full.onStep = { fullLosses.append($0.loss) }
        try full.run()
        let fullParams = lora.parameters.array
        let checkpoint = out.appendingPathComponent("checkpoint-3")
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint.appendingPathComponent("trainer_state.json").path))

        let resumedOut = out.appendingPathComponent("resumed")
        (model, lora, _, examples) = try setup(options, lora: config)
        let resumed = try Trainer(model: model, adapter: lora, options: options, train: examples, eval: [],
                                  output: resumedOut, baseModelPath: "tiny-qwen2")
        var resumedLosses: [Double] = []
        resumed.onStep = { resumedLosses.append($0.loss) }
        try resumed.run(resume: checkpoint)
        XCTAssertEqual(resumedLosses, Array(fullLosses[3...]))
        XCTAssertEqual(lora.parameters.array, fullParams)
        // The resumed log holds the first three steps (from the checkpoint) and the last three.
        let log = try LogEntry.read(resumedOut.appendingPathComponent("train_log.jsonl")).filter { $0.type == "train" }
        XCTAssertEqual(log.map(\.step), [1, 2, 3, 4, 5, 6])
    }

    func testResumeRejectsAnotherModelAndOtherSettings() throws {
        var options = TrainingOptions()
        options.batchSize = 2
        options.maxSteps = 2
        options.saveEvery = 1
        let config = LoRAConfig(r: 2, alpha: 4, dropout: 0, targetModules: .names(["q_proj"]))
        let (model, lora, _, examples) = try setup(options, lora: config)
        try Trainer(model: model, adapter: lora, options: options, train: examples, eval: [], output: out,
                    baseModelPath: "tiny-qwen2").run()
        let checkpoint = out.appendingPathComponent("checkpoint-1")
        // Another model (the Qwen3 fixture) is refused with both fingerprints named.
        let other = try TransformerModel.load(directory: modelFixture("tiny-qwen3"), dtype: .float32)
        let otherLoRA = try LoRAAdapter(config: config, model: other.config)
        let t = try Trainer(model: other, adapter: otherLoRA, options: options, train: examples, eval: [],
                            output: out.appendingPathComponent("x"), baseModelPath: "tiny-qwen3")
        XCTAssertThrowsError(try t.run(resume: checkpoint)) { error in
            XCTAssertTrue("\(error)".contains("made for another model"), "\(error)")
        }
        var changed = options
        changed.batchSize = 3
        let t2 = try Trainer(model: model, adapter: lora, options: changed, train: examples, eval: [],
                             output: out.appendingPathComponent("y"), baseModelPath: "tiny-qwen2")
        XCTAssertThrowsError(try t2.run(resume: checkpoint)) { error in
            XCTAssertTrue("\(error)".contains("--batch-size 2 -> 3"), "\(error)")
        }
        XCTAssertThrowsError(try t2.run(resume: out.appendingPathComponent("nope"))) { error in
            XCTAssertTrue("\(error)".contains("not a checkpoint directory"), "\(error)")
        }
        // Same shapes, other scaling: resuming would silently change the curve, so it is refused.
        var otherAlpha = config
        otherAlpha.alpha = 8
        let lora3 = try LoRAAdapter(config: otherAlpha, model: model.config)
        let t3 = try Trainer(model: model, adapter: lora3, options: options, train: examples, eval: [],
                             output: out.appendingPathComponent("z"), baseModelPath: "tiny-qwen2")
        XCTAssertThrowsError(try t3.run(resume: checkpoint)) { error in
            XCTAssertTrue("\(error)".contains("LoRA settings differ") && "\(error)".contains("lora_alpha 4 -> 8"), "\(error)")
        }
    }

    func testStopRequestSavesACheckpointAndTheAdapter() throws {
        var options = TrainingOptions()
        options.batchSize = 1
        options.maxSteps = 10
        let (model, lora, _, examples) = try setup(options, lora: LoRAConfig(r: 2, alpha: 4, dropout: 0))
        let trainer = try Trainer(model: model, adapter: lora, options: options, train: examples, eval: [], output: out,
                                  baseModelPath: "tiny-qwen2")
        var steps = 0
        trainer.onStep = { _ in steps += 1 }
        trainer.shouldStop = { steps >= 2 }
        let summary = try trainer.run()
        XCTAssertTrue(summary.interrupted)
        XCTAssertEqual(summary.steps, 2)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("checkpoint-2/optimizer.safetensors").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("adapter_model.safetensors").path))
    }

    func testGradientAccumulationEqualsOneBigBatch() throws {
        // Token-weighted accumulation: 2 micro-batches of 1 == 1 batch of 2 (no dropout, same order).
        func run(batch: Int, accum: Int) throws -> [Float] {
            var options = TrainingOptions()
            options.batchSize = batch
            options.gradientAccumulation = accum
            options.maxSteps = 3
            options.learningRate = 1e-2
            let (model, lora, _, examples) = try setup(options, lora: LoRAConfig(r: 4, alpha: 8, dropout: 0))
            let plan = StepPlan(steps: (0..<3).map { _ in
                .init(epoch: 0, microBatches: batch == 2 ? [[0, 1]] : [[0], [1]], endsEpoch: false)
            }, stepsPerEpoch: 3)
            try Trainer(model: model, adapter: lora, options: options, train: examples, eval: [],
                        output: out.appendingPathComponent("\(batch)"), baseModelPath: "t", plan: plan).run()
            return lora.parameters.array
        }
        assertClose(try run(batch: 1, accum: 2), try run(batch: 2, accum: 1), atol: 1e-6)
    }
}

extension TrainerTests {
    func testExamplesOutsideTheModelAreRefusedUpFront() throws {
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let lora = try LoRAAdapter(config: LoRAConfig(r: 2, alpha: 4), model: model.config)
        let bad = TrainingExample(ids: [1, 2, 999], trainable: [false, true, true])
        XCTAssertThrowsError(try Trainer(model: model, adapter: lora, options: TrainingOptions(), train: [bad], eval: [],
                                         output: out, baseModelPath: "t")) { error in
            XCTAssertTrue("\(error)".contains("example 1: token id 999 is outside the vocabulary (size 384)"), "\(error)")
        }
        let long = TrainingExample(ids: [Int32](repeating: 5, count: 300), trainable: [Bool](repeating: true, count: 300))
        XCTAssertThrowsError(try LossEvaluator.evaluate(model: model, examples: [long], batchSize: 1)) { error in
            XCTAssertTrue("\(error)".contains("longer than the model's context"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "nothing written")
    }
}

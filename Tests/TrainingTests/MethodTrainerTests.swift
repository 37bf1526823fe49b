import Adapters
import Foundation
import Kernels
import TestSupport
import Tokenizer
import Training
import Transformer
import XCTest

/// The training loop's guarantees hold for every method, not only LoRA: exact resume (the prompt encoders'
/// state included), token-weighted gradient accumulation equal to one packed batch, and a stop request that leaves a
/// checkpoint and the adapter behind.
final class MethodTrainerTests: XCTestCase {
    var out: URL!

    override func setUp() { out = FileManager.default.temporaryDirectory.appendingPathComponent("mtrainer-\(UUID().uuidString)") }
    override func tearDown() { try? FileManager.default.removeItem(at: out) }

    let records = trainerRecords

    static let methods: [AdapterMethod] = [.dora, .ia3, .prompt, .ptuning, .prefix, .adapter, .full, .freeze]

    /// A fresh model and a freshly initialised adapter of `method` (the same for the same seed).
    func setup(_ method: AdapterMethod, dropout: Double = 0.1, seed: UInt64 = 9) throws -> (TransformerModel, TrainableAdapter, [TrainingExample]) {
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let tok = try Tokenizer.load(directory: modelFixture("tiny-qwen2"))
        let builder = ExampleBuilder(formatter: try ChatFormatter(template: .chatml, tokenizer: tok), maxLength: 512)
        let adapter: TrainableAdapter
        switch method {
        case .lora, .dora:
            let lora = try LoRAAdapter(config: LoRAConfig(r: 4, alpha: 8, dropout: dropout, targetModules: .names(["q_proj", "v_proj", "down_proj"]),
                                                          useDoRA: method == .dora), model: model.config)
            lora.initialize(seed: seed, weights: model.weights)
            adapter = lora
        case .ia3:
            adapter = try IA3Adapter(config: IA3Config(), model: model.config)
        case .prompt, .ptuning, .prefix:
            var config = PromptLearningConfig(method: method, virtualTokens: 4)
            config.encoderHiddenSize = 16
            config.prefixProjection = method == .prefix
            let p = try PromptLearningAdapter(config: config, model: model.config)
            p.initialize(seed: seed)
            adapter = p
        case .adapter:
            let b = try BottleneckAdapter(config: BottleneckConfig(.pfeiffer), model: model.config)
            b.initialize(seed: seed)
            adapter = b
        case .full, .freeze:
            adapter = try BaseFineTuning(model: model, baseDirectory: modelFixture("tiny-qwen2"),
                                         freeze: method == .freeze ? FreezeConfig(trainableLayers: 1) : nil)
        }
        return (model, adapter, try builder.build(records).examples)
    }

    func testResumeContinuesTheSameLossCurveForEveryMethod() throws {
        for method in Self.methods {
            var options = TrainingOptions()
            options.batchSize = 2
            options.maxSteps = 6
            options.saveEvery = 3
            options.learningRate = 1e-2
            options.warmupRatio = 0.2
            let dir = out.appendingPathComponent(method.rawValue)
            var (model, adapter, examples) = try setup(method)
            let full = try Trainer(model: model, adapter: adapter, options: options, train: examples, eval: [],
                                   output: dir, baseModelPath: "tiny-qwen2")
            var fullLosses: [Double] = []
            full.onStep = { fullLosses.append($0.loss) }
            try full.run()
            let fullParams = adapter.parameters.array
            (model, adapter, examples) = try setup(method, seed: 77)   // other init: the checkpoint must replace it
            let resumed = try Trainer(model: model, adapter: adapter, options: options, train: examples, eval: [],
                                      output: dir.appendingPathComponent("resumed"), baseModelPath: "tiny-qwen2")
            var resumedLosses: [Double] = []
            resumed.onStep = { resumedLosses.append($0.loss) }
            try resumed.run(resume: dir.appendingPathComponent("checkpoint-3"))
            XCTAssertEqual(resumedLosses, Array(fullLosses[3...]), method.rawValue)
            XCTAssertEqual(adapter.parameters.array, fullParams, method.rawValue)
        }
    }

    func testResumeRefusesAnotherMethod() throws {
        var options = TrainingOptions()
        options.batchSize = 2
        options.maxSteps = 1
        options.saveEvery = 1
        let (model, adapter, examples) = try setup(.prefix)
        try Trainer(model: model, adapter: adapter, options: options, train: examples, eval: [], output: out,
                    baseModelPath: "tiny-qwen2").run()
        let (m2, other, _) = try setup(.prompt)
        let t = try Trainer(model: m2, adapter: other, options: options, train: examples, eval: [],
                            output: out.appendingPathComponent("x"), baseModelPath: "tiny-qwen2")
        XCTAssertThrowsError(try t.run(resume: out.appendingPathComponent("checkpoint-1"))) { error in
            XCTAssertTrue("\(error)".contains("prefix tuning (P-tuning v2) settings differ"), "\(error)")
        }
    }

    func testGradientAccumulationEqualsOnePackedBatchForEveryMethod() throws {
        for method in Self.methods {
            func run(batch: Int, accum: Int) throws -> [Float] {
                var options = TrainingOptions()
                options.batchSize = batch
                options.gradientAccumulation = accum
                options.maxSteps = 3
                options.learningRate = 1e-2
                let (model, adapter, examples) = try setup(method, dropout: 0)
                let plan = StepPlan(steps: (0..<3).map { _ in
                    .init(epoch: 0, microBatches: batch == 2 ? [[0, 1]] : [[0], [1]], endsEpoch: false)
                }, stepsPerEpoch: 3)
                try Trainer(model: model, adapter: adapter, options: options, train: examples, eval: [],
                            output: out.appendingPathComponent("\(method)-\(batch)"), baseModelPath: "t", plan: plan).run()
                return adapter.parameters.array
            }
            // Adapters: equal to f32 rounding. Full / freeze train every weight with Adam, which normalises each
            // gradient: entries near zero, whose sign the summation order decides, move by up to lr either way.
            assertClose(try run(batch: 1, accum: 2), try run(batch: 2, accum: 1), atol: method.savesAdapter ? 2e-6 : 2e-4,
                        method.rawValue)
        }
    }

    func testStopRequestSavesACheckpointAndTheAdapterForEveryMethod() throws {
        for method in Self.methods {
            var options = TrainingOptions()
            options.batchSize = 1
            options.maxSteps = 10
            let (model, adapter, examples) = try setup(method)
            let dir = out.appendingPathComponent(method.rawValue)
            let trainer = try Trainer(model: model, adapter: adapter, options: options, train: examples, eval: [],
                                      output: dir, baseModelPath: "tiny-qwen2")
            var steps = 0
            trainer.onStep = { _ in steps += 1 }
            trainer.shouldStop = { steps >= 2 }
            let summary = try trainer.run()
            XCTAssertTrue(summary.interrupted)
            XCTAssertEqual(summary.steps, 2)
            let result = method == .adapter ? "adapter.safetensors" : method.savesAdapter ? "adapter_model.safetensors" : "model.safetensors"
            for file in ["checkpoint-2/optimizer.safetensors", "checkpoint-2/trainable_state.safetensors", result] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(file).path), "\(method) \(file)")
            }
            XCTAssertEqual(try AdapterFiles.method(of: method.savesAdapter ? dir : dir.appendingPathComponent("checkpoint-2")), method)
        }
    }
}

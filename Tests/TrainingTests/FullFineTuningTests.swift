import Adapters
import Foundation
import Kernels
import TestSupport
import Training
import Transformer
import XCTest

/// Full and freeze fine-tuning against torch autograd (scripts/make_full_fixtures.py): the loss and every
/// parameter's gradient, 10 AdamW and 10 Adafactor steps, finite differences where the fixtures do not reach
/// (Qwen3's q/k norms), and the written model directory.
final class FullFineTuningTests: XCTestCase {
    struct Golden: Decodable {
        let examples: [GoldenExample]
        let loss: Float
        let grads: [String: [Float]]
        let freeze_grads: [String: [Float]]
        let adamw: GoldenTrajectory
        let adafactor: GoldenTrajectory
    }

    static let architectures = ["tiny-qwen2", "tiny-llama"]

    func golden(_ arch: String) throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("full/\(arch).json")))
    }

    func gradients(_ arch: String, freeze: FreezeConfig?, policy: ActivationPolicy) throws -> (Float, BaseFineTuning) {
        let g = try golden(arch)
        let m = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
        let adapter = try BaseFineTuning(model: m, baseDirectory: modelFixture(arch), freeze: freeze)
        m.adapter = adapter
        let batch = PackedBatch(sequences: g.examples.map(\.ids))
        let labels = g.examples.flatMap(\.labels)
        let count = labels.filter { $0 >= 0 }.count
        adapter.zeroGradients()
        let (sum, n) = m.forwardBackward(batch, labels: labels, gradScale: 1 / Float(count),
                                         buffers: m.makeBuffers(batches: [batch.lengths], policy: policy),
                                         context: PassContext(training: true, randomKey: 1))
        return (Float(sum) / Float(n), adapter)
    }

    func compare(_ adapter: BaseFineTuning, _ expected: [String: [Float]], _ label: String) throws {
        XCTAssertEqual(Set(adapter.namedParameters.map(\.name)), Set(expected.keys), label)
        for p in adapter.namedParameters {
            let want = try XCTUnwrap(expected[p.name], p.name)
            let ours = Array(UnsafeBufferPointer(start: adapter.gradients.pointer + p.offset, count: p.count))
            // f32 on both sides, different summation orders: 2e-4 of the tensor's largest entry.
            assertClose(ours, want, atol: 2e-4 * (want.map(abs).max() ?? 1), rtol: 1e-3, "\(label) \(p.name)")
        }
    }

    func testEveryParameterGradientMatchesTorch() throws {
        for arch in Self.architectures {
            let g = try golden(arch)
            for policy in [ActivationPolicy.keepAll, .checkpointing] {
                let (loss, adapter) = try gradients(arch, freeze: nil, policy: policy)
                XCTAssertEqual(loss, g.loss, accuracy: 1e-5 * g.loss)
                try compare(adapter, g.grads, "\(arch) full \(policy)")
            }
        }
    }

    func testFreezeTrainsExactlyLLaMAFactorysSelection() throws {
        for arch in Self.architectures {
            let g = try golden(arch)
            let (loss, adapter) = try gradients(arch, freeze: FreezeConfig(trainableLayers: 1, trainableModules: ["all"], extraModules: ["norm"]),
                                                policy: .keepAll)
            XCTAssertEqual(loss, g.loss, accuracy: 1e-5 * g.loss)
            try compare(adapter, g.freeze_grads, "\(arch) freeze")
            XCTAssertEqual(adapter.lowestTrainableLayer, 1, "backward stops at the last layer")
        }
        // Selections by module and from the front.
        let c = try TransformerModel.load(directory: modelFixture("tiny-qwen3"), dtype: .float32).config
        let attn = try FreezeConfig(trainableLayers: -1, trainableModules: ["self_attn"]).tensors(c).map(c.layout.name)
        XCTAssertEqual(Set(attn), Set(["q_proj", "k_proj", "v_proj", "o_proj"].map { "model.layers.0.self_attn.\($0).weight" }
                                      + ["model.layers.0.self_attn.q_norm.weight", "model.layers.0.self_attn.k_norm.weight"]))
        let mlp = try FreezeConfig(trainableLayers: 1, trainableModules: ["mlp", "input_layernorm"], extraModules: ["lm_head"]).tensors(c).map(c.layout.name)
        XCTAssertEqual(mlp.count, 5)
        // A tied LM head is the embedding.
        XCTAssertTrue(mlp.contains(c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"), "\(mlp)")
        XCTAssertThrowsError(try FreezeConfig(trainableLayers: 3).tensors(c)) { XCTAssertTrue("\($0)".contains("outside the model's 2 layers"), "\($0)") }
        XCTAssertThrowsError(try FreezeConfig(trainableModules: ["attention"]).tensors(c)) { XCTAssertTrue("\($0)".contains("unknown module 'attention'"), "\($0)") }
    }

    func testFiniteDifferencesIncludingQwen3Norms() throws {
        let m = try TransformerModel.load(directory: modelFixture("tiny-qwen3"), dtype: .float32)
        let adapter = try BaseFineTuning(model: m, baseDirectory: modelFixture("tiny-qwen3"), freeze: nil)
        m.adapter = adapter
        let batch = PackedBatch(sequences: [[3, 9, 27, 81, 243, 5, 7], [11, 13, 17, 19]])
        let labels: [Int32] = [9, 27, 81, 243, 5, 7, -100, 13, -100, 19, -100]
        func run() -> Double {
            adapter.zeroGradients()
            return m.forwardBackward(batch, labels: labels, gradScale: 1, buffers: m.makeBuffers(batches: [batch.lengths], policy: .keepAll),
                                     context: PassContext(training: true, randomKey: 1)).lossSum
        }
        _ = run()
        let analytic = adapter.gradients.array
        var probes: [Int] = []
        for p in adapter.namedParameters where ["q_norm", "k_norm", "embed_tokens", "lm_head", "model.norm", "layers.1.mlp.down_proj", "layers.0.input_layernorm"].contains(where: p.name.contains) {
            // Embedding rows of tokens in the batch (other rows have no gradient).
            let start = p.name.contains("embed_tokens") ? p.offset + 27 * p.shape[1] : p.offset
            probes += [start, start + 1, p.name.contains("embed_tokens") ? start + 5 : p.offset + p.count - 1]
        }
        let base = adapter.parameters.array
        let fd = finiteDifferenceGradient(base, indices: probes, step: 1e-2) { values in
            for i in probes { adapter.parameters[i] = values[i] }
            defer { for i in probes { adapter.parameters[i] = base[i] } }
            return run()
        }
        assertClose(probes.map { analytic[$0] }, fd, atol: 3e-3, rtol: 3e-2)
    }

    func testTenAdamWAndAdafactorStepsMatchTorch() throws {
        for arch in Self.architectures {
            let g = try golden(arch)
            for (kind, t) in [(OptimizerKind.adamw, g.adamw), (.adafactor, g.adafactor)] {
                let m = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
                let adapter = try BaseFineTuning(model: m, baseDirectory: modelFixture(arch), freeze: nil)
                let out = temporaryURL("full")
                defer { try? FileManager.default.removeItem(at: out) }
                try t.assertReplayMatches(model: m, adapter: adapter, optimizer: kind, output: out, "\(arch) \(kind)")
                // The output is a model directory that loads with the trained weights' logits.
                let batch = PackedBatch(sequences: [[5, 6, 7, 8]])
                let trained = m.logits(batch)
                let reloaded = try TransformerModel.load(directory: out, dtype: .float32)
                assertClose(reloaded.logits(batch), trained, atol: 1e-5, "\(arch) \(kind) output")
            }
        }
    }

    /// A model fully fine-tuned by `peft train --method full` (bf16 sharded base; scripts/make_full_fixtures.py
    /// --peft-binary): transformers loaded the directory it wrote and computed these logits.
    func testOurFullFineTuneLoadsInTransformersWithOurLogits() throws {
        struct Logits: Decodable { let examples: [GoldenExample]; let logits: [[Float]] }
        let golden = try JSONDecoder().decode(Logits.self, from: Data(contentsOf: fixtureURL("full/ours-full.json")))
        let dir = fixtureURL("full/ours-full-model")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        XCTAssertEqual(files.filter { $0.hasSuffix(".safetensors") }.count, 4, "the base's shard layout is kept")
        let m = try TransformerModel.load(directory: dir, dtype: .float32)
        XCTAssertEqual(m.weights.dtype, .float32)
        assertClose(m.logits(PackedBatch(sequences: golden.examples.map(\.ids))), golden.logits.flatMap { $0 }, atol: 2e-4)
    }
}

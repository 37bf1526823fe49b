import Adapters
import Foundation
import Kernels
import ModelIO
import TestSupport
import Training
import Transformer
import XCTest

/// DoRA, (IA)³, prompt tuning, P-tuning and prefix tuning (with and without projection) against Python PEFT 0.21
/// on two architectures (scripts/make_method_fixtures.py): loss and every trainable gradient of PEFT's autograd,
/// logits in eval mode and from the saved adapter, merged logits (DoRA, IA3) and 10 AdamW steps from PEFT's own
/// initial adapter.
final class MethodGoldenTests: XCTestCase {
    static let architectures = ["tiny-qwen2", "tiny-llama"]
    static let cases = ["dora", "ia3", "prompt", "ptuning", "ptuning-lstm", "prefix", "prefix-proj"]

    struct Golden: Decodable {
        let examples: [GoldenExample]
        let loss: Float
        let grads: [String: [Float]]
        let logits: [[Float]]
        let loaded_logits: [[Float]]
        let merged_logits: [[Float]]?
    }

    func directory(_ arch: String, _ name: String) -> URL { fixtureURL("methods/\(arch)-\(name)") }

    /// The adapter in its training form with the parameters PEFT trained (`trainable.safetensors`).
    func trainable(_ dir: URL, model: TransformerModel) throws -> TrainableAdapter {
        let adapter = try AdapterFiles.makeTrainable(settingsOf: dir.appendingPathComponent("adapter"), model: model.config)
        let path = dir.appendingPathComponent("trainable.safetensors").path
        try adapter.loadTrainableState(SafetensorsFile(path: path), path: path)
        return adapter
    }

    func testLossAndEveryGradientMatchPEFT() throws {
        for arch in Self.architectures {
            for name in Self.cases {
                let dir = directory(arch, name)
                let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: dir.appendingPathComponent("golden.json")))
                for policy in [ActivationPolicy.keepAll, .checkpointing] {
                    let m = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
                    let adapter = try trainable(dir, model: m)
                    m.adapter = adapter
                    let batch = PackedBatch(sequences: golden.examples.map(\.ids))
                    let labels = golden.examples.flatMap(\.labels)
                    let count = labels.filter { $0 >= 0 }.count
                    let buffers = m.makeBuffers(batches: [batch.lengths], policy: policy)
                    adapter.reserve(rows: buffers.capacity)
                    adapter.zeroGradients()
                    let (lossSum, n) = m.forwardBackward(batch, labels: labels, gradScale: 1 / Float(count),
                                                         buffers: buffers, context: PassContext(training: true, randomKey: 1))
                    adapter.finishGradients()
                    XCTAssertEqual(n, count)
                    // Loss ~5 in f32: 1e-5 relative.
                    XCTAssertEqual(Float(lossSum) / Float(n), golden.loss, accuracy: 1e-5 * golden.loss, "\(arch) \(name)")
                    XCTAssertEqual(Set(golden.grads.keys), Set(adapter.namedParameters.map(\.name)), "\(arch) \(name)")
                    for p in adapter.namedParameters {
                        let expected = try XCTUnwrap(golden.grads[p.name], p.name)
                        let ours = Array(UnsafeBufferPointer(start: adapter.gradients.pointer + p.offset, count: p.count))
                        // f32 on both sides, different summation orders: 2e-4 of the tensor's largest entry.
                        let scale = expected.map(abs).max() ?? 1
                        assertClose(ours, expected, atol: 2e-4 * scale, rtol: 1e-3, "\(arch) \(name) \(p.name) \(policy)")
                    }
                }
            }
        }
    }

    func testLogitsOfTrainedAndSavedAdapters() throws {
        for arch in Self.architectures {
            for name in Self.cases {
                let dir = directory(arch, name)
                let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: dir.appendingPathComponent("golden.json")))
                let m = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
                let batch = PackedBatch(sequences: golden.examples.map(\.ids))
                let adapter = try trainable(dir, model: m)
                m.adapter = adapter
                // PEFT's logits include the virtual tokens' rows; ours cover the real tokens only.
                let skip = adapter.virtualTokenCount * m.config.vocabSize
                func real(_ rows: [[Float]]) -> [Float] { rows.flatMap { $0.dropFirst(skip) } }
                assertClose(m.logits(batch), real(golden.logits), atol: 2e-4, "\(arch) \(name) trainable")
                // PEFT's saved files (prompt encoders reduced to their output), read by the generic loader.
                m.adapter = try AdapterFiles.load(from: dir.appendingPathComponent("adapter"), model: m)
                assertClose(m.logits(batch), real(golden.loaded_logits), atol: 2e-4, "\(arch) \(name) loaded")
            }
        }
    }

    func testMergedDoRAAndIA3EqualPEFTMergeAndUnload() throws {
        for arch in Self.architectures {
            for name in ["dora", "ia3"] {
                let dir = directory(arch, name)
                let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: dir.appendingPathComponent("golden.json")))
                let base = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
                let adapter = try AdapterFiles.load(from: dir.appendingPathComponent("adapter"), model: base)
                let out = FileManager.default.temporaryDirectory.appendingPathComponent("merge-\(UUID().uuidString)")
                defer { try? FileManager.default.removeItem(at: out) }
                _ = try AdapterMerger.merge(model: modelFixture(arch), adapter: adapter, output: out)
                let merged = try TransformerModel.load(directory: out, dtype: .float32)
                let logits = merged.logits(PackedBatch(sequences: golden.examples.map(\.ids)))
                assertClose(logits, try XCTUnwrap(golden.merged_logits).flatMap { $0 }, atol: 2e-4, "\(arch) \(name)")
            }
        }
    }

    func testTenAdamWStepsFromPEFTInitMatchPEFTLosses() throws {
        for arch in Self.architectures {
            for name in Self.cases {
                let dir = directory(arch, name)
                let golden = try GoldenTrajectory.load(dir.appendingPathComponent("trajectory.json"))
                let m = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
                let out = temporaryURL("traj")
                defer { try? FileManager.default.removeItem(at: out) }
                try golden.assertReplayMatches(model: m, adapter: try trainable(dir.appendingPathComponent("init"), model: m),
                                               output: out, "\(arch) \(name)")
            }
        }
    }
}

extension MethodGoldenTests {
    struct OursGolden: Decodable {
        let examples: [GoldenExample]
        let logits: [[Float]]
        let merged_logits: [[Float]]?
    }

    /// Adapters trained by `peft train` (scripts/make_method_fixtures.py --peft-binary): Python PEFT's
    /// `PeftModel.from_pretrained` loaded each and computed these logits (and, for lora/dora/ia3, those of its
    /// `merge_and_unload`). Ours must agree, and so must our own merge.
    func testOurAdaptersLoadedByPEFTGiveOurLogits() throws {
        for method in AdapterMethod.allCases where method.savesAdapter && method != .adapter {   // bottleneck: BottleneckGoldenTests
            let golden = try JSONDecoder().decode(OursGolden.self, from: Data(contentsOf: fixtureURL("methods/ours-\(method.rawValue).json")))
            let m = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
            let dir = fixtureURL("methods/ours-\(method.rawValue)")
            let adapter = try AdapterFiles.load(from: dir, model: m)
            XCTAssertEqual(adapter.method, method)
            m.adapter = adapter
            let batch = PackedBatch(sequences: golden.examples.map(\.ids))
            let skip = adapter.virtualTokenCount * m.config.vocabSize
            assertClose(m.logits(batch), golden.logits.flatMap { $0.dropFirst(skip) }, atol: 2e-4, method.rawValue)
            guard let merged = golden.merged_logits else { continue }
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("merge-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            _ = try AdapterMerger.merge(model: modelFixture("tiny-qwen2"), adapter: adapter, output: out)
            let mm = try TransformerModel.load(directory: out, dtype: .float32)
            assertClose(mm.logits(batch), merged.flatMap { $0 }, atol: 2e-4, "\(method) merged")
        }
    }
}

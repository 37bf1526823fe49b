import Adapters
import Foundation
import Kernels
import ModelIO
import TestSupport
import Training
import Transformer
import XCTest

/// Bottleneck adapters against the AdapterHub `adapters` library 1.3 (scripts/make_bottleneck_fixtures.py) on
/// tiny Llama and Mistral checkpoints (the library has no Qwen2 support): loss, every gradient, logits, 10 AdamW
/// steps from the library's own initialisation, and our trained adapters loaded by `load_adapter`.
final class BottleneckGoldenTests: XCTestCase {
    static let architectures = ["tiny-llama", "tiny-mistral"]
    static let configs = ["double_seq_bn", "seq_bn", "par_bn"]

    struct Golden: Decodable {
        let examples: [GoldenExample]
        let loss: Float
        let grads: [String: [Float]]
        let logits: [[Float]]
    }

    func testLossGradientsAndLogitsMatchTheAdaptersLibrary() throws {
        for arch in Self.architectures {
            for config in Self.configs {
                let dir = fixtureURL("bottleneck/\(arch)-\(config)")
                let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: dir.appendingPathComponent("golden.json")))
                for policy in [ActivationPolicy.keepAll, .checkpointing] {
                    let m = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
                    let adapter = try AdapterFiles.load(from: dir.appendingPathComponent("adapter"), model: m)
                    XCTAssertEqual(adapter.method, .adapter)
                    m.adapter = adapter
                    let batch = PackedBatch(sequences: golden.examples.map(\.ids))
                    assertClose(m.logits(batch), golden.logits.flatMap { $0 }, atol: 2e-4, "\(arch) \(config) logits")
                    let labels = golden.examples.flatMap(\.labels)
                    let count = labels.filter { $0 >= 0 }.count
                    let buffers = m.makeBuffers(batches: [batch.lengths], policy: policy)
                    adapter.reserve(rows: buffers.capacity)
                    adapter.zeroGradients()
                    let (sum, n) = m.forwardBackward(batch, labels: labels, gradScale: 1 / Float(count), buffers: buffers,
                                                     context: PassContext(training: true, randomKey: 1))
                    XCTAssertEqual(Float(sum) / Float(n), golden.loss, accuracy: 1e-5 * golden.loss, "\(arch) \(config)")
                    XCTAssertEqual(Set(adapter.namedParameters.map(\.name)), Set(golden.grads.keys))
                    for p in adapter.namedParameters {
                        let want = try XCTUnwrap(golden.grads[p.name])
                        let ours = Array(UnsafeBufferPointer(start: adapter.gradients.pointer + p.offset, count: p.count))
                        // f32 on both sides: 2e-4 of the tensor's largest entry.
                        assertClose(ours, want, atol: 2e-4 * (want.map(abs).max() ?? 1), rtol: 1e-3, "\(arch) \(config) \(p.name) \(policy)")
                    }
                }
            }
        }
    }

    func testTenAdamWStepsFromTheLibrarysInitialisation() throws {
        for arch in Self.architectures {
            for config in Self.configs {
                let dir = fixtureURL("bottleneck/\(arch)-\(config)")
                let golden = try GoldenTrajectory.load(dir.appendingPathComponent("trajectory.json"))
                let m = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
                let adapter = try AdapterFiles.load(from: dir.appendingPathComponent("init"), model: m)
                let out = temporaryURL("bn")
                defer { try? FileManager.default.removeItem(at: out) }
                try golden.assertReplayMatches(model: m, adapter: adapter, output: out, "\(arch) \(config)")
                // The run's output is an AdapterHub folder that reloads to the same logits.
                let batch = PackedBatch(sequences: [[5, 6, 7, 8]])
                let trained = m.logits(batch)
                m.adapter = try AdapterFiles.load(from: out, model: m)
                assertClose(m.logits(batch), trained, atol: 1e-6, "\(arch) \(config) reload")
            }
        }
    }
}

extension BottleneckGoldenTests {
    /// Adapters trained by `peft train --method adapter` (scripts/make_bottleneck_fixtures.py --peft-binary): the
    /// `adapters` library's `load_adapter` read each folder and computed these logits.
    func testOurAdaptersLoadInTheAdaptersLibraryWithOurLogits() throws {
        struct Logits: Decodable { let examples: [GoldenExample]; let logits: [[Float]] }
        for config in Self.configs {
            let golden = try JSONDecoder().decode(Logits.self, from: Data(contentsOf: fixtureURL("bottleneck/ours-\(config).json")))
            let m = try TransformerModel.load(directory: modelFixture("tiny-llama"), dtype: .float32)
            m.adapter = try AdapterFiles.load(from: fixtureURL("bottleneck/ours-\(config)"), model: m)
            assertClose(m.logits(PackedBatch(sequences: golden.examples.map(\.ids))), golden.logits.flatMap { $0 }, atol: 2e-4, config)
        }
    }
}

extension BottleneckGoldenTests {
    func testAdapterHubConfigsThisEngineCannotComputeAreRefusedByName() throws {
        let base = BottleneckConfig(.pfeiffer).object()
        let cases: [(String, Any, String)] = [
            ("ln_after", true, "ln_after = true is not supported"),
            ("use_gating", true, "use_gating = true is not supported"),
            ("phm_layer", true, "phm_layer = true is not supported"),
            ("residual_before_ln", "post_add", "residual_before_ln = post_add"),
            ("non_linearity", "tanh", "non_linearity 'tanh' is not supported"),
            ("scaling", "learned", "scaling 'learned' is not supported"),
            ("reduction_factor", ["default": 16, "1": 8], "per-layer mappings are not supported"),
            ("architecture", "lora", "architecture 'lora' is not supported"),
            ("dropout", 0.1, "adapter dropout 0.1 is not supported"),
        ]
        for (key, value, message) in cases {
            var object = base
            object[key] = value
            XCTAssertThrowsError(try BottleneckConfig(object: object, path: "adapter_config.json"), key) { error in
                XCTAssertTrue("\(error)".contains(message), "\(key): \(error)")
            }
        }
        // The three placements read back as themselves.
        for placement in [BottleneckConfig.Placement.houlsby, .pfeiffer, .parallel] {
            let config = BottleneckConfig(placement)
            XCTAssertEqual(try BottleneckConfig(object: config.object(), path: "x"), config)
        }
    }
}

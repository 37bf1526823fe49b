import Adapters
import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// LoRA against Python PEFT (scripts/make_peft_fixtures.py): adapters made by PEFT load and give PEFT's logits;
/// loss and every lora_A / lora_B gradient match PEFT's autograd.
final class LoRAGoldenTests: XCTestCase {
    typealias Example = GoldenExample

    struct GradientGolden: Decodable {
        let examples: [Example]
        let loss: Float
        let grads: [String: [Float]]
        let logits: [[Float]]
    }

    struct LogitsGolden: Decodable {
        let examples: [Example]
        let logits: [[Float]]
        let merged_logits: [[Float]]?
    }

    func load<T: Decodable>(_ name: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: fixtureURL("golden/\(name).json")))
    }

    func model() throws -> TransformerModel {
        try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
    }

    func testPEFTAdapterLogitsAllLinear() throws {
        let golden: GradientGolden = try load("lora-gradients")
        let m = try model()
        m.adapter = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-lora-all"), model: m.config)
        let logits = m.logits(PackedBatch(sequences: golden.examples.map(\.ids)))
        // The random all-linear adapter drives activations to ~600 and attention scores to ~140, where f32 summation
        // order is amplified layer by layer: measured worst element 1.4e-5 with the built-in GEMM and 2.1e-4 with
        // oneDNN's AVX2 kernels (each product agreeing with the other to 2e-7 relative). A wrong scaling or a
        // missing site moves logits by more than 1e-2.
        assertClose(logits, golden.logits.flatMap { $0 }, atol: 5e-4)
    }

    func testPEFTAdapterLogitsRSLoRA() throws {
        let golden: LogitsGolden = try load("lora-rslora")
        let m = try model()
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-rslora-qv"), model: m.config)
        XCTAssertEqual(lora.orderedSites.count, 4)  // q and v of 2 layers
        XCTAssertEqual(lora.orderedSites[0].scaling, 16 / Float(8).squareRoot(), accuracy: 1e-6)
        m.adapter = lora
        assertClose(m.logits(PackedBatch(sequences: golden.examples.map(\.ids))), golden.logits.flatMap { $0 }, atol: 2e-4)
    }

    func testLossAndEveryGradientMatchPEFT() throws {
        let golden: GradientGolden = try load("lora-gradients")
        for policy in [ActivationPolicy.keepAll, .checkpointing] {
            let m = try model()
            let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-lora-all"), model: m.config)
            m.adapter = lora
            let batch = PackedBatch(sequences: golden.examples.map(\.ids))
            let labels = golden.examples.flatMap(\.labels)
            let count = labels.filter { $0 >= 0 }.count
            let buffers = ActivationBuffers(config: m.config, capacity: batch.rowCount, longest: batch.longest,
                                            policy: policy)
            lora.zeroGradients()
            let (lossSum, n) = m.forwardBackward(batch, labels: labels, gradScale: 1 / Float(count), buffers: buffers,
                                                 context: PassContext(training: true, randomKey: 1))
            XCTAssertEqual(n, count)
            XCTAssertEqual(Float(lossSum) / Float(n), golden.loss, accuracy: 1e-5)
            XCTAssertEqual(golden.grads.count, lora.orderedSites.count * 2)
            try assertLoRAGradients(lora, equal: golden.grads, "\(policy)")
        }
    }

    func testOurAdapterLoadedByPEFTGivesOurLogits() throws {
        // tiny-qwen2-ours was trained by `peft train` (scripts/make_peft_fixtures.py --peft-binary); PEFT's
        // PeftModel.from_pretrained loaded it and computed these logits.
        let golden: LogitsGolden = try load("lora-ours-in-peft")
        let m = try model()
        m.adapter = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-ours"), model: m.config)
        assertClose(m.logits(PackedBatch(sequences: golden.examples.map(\.ids))), golden.logits.flatMap { $0 }, atol: 2e-4)
    }
}

/// Every lora_A / lora_B gradient of `lora` against autograd's, by PEFT key. f32 on both sides with different
/// summation orders: the worst element differs by ~1e-4 of the tensor's largest entry (layer-0 q/k gradients pass
/// through sharp softmaxes); a wrong term would be off by O(1) of it.
func assertLoRAGradients(_ lora: LoRAAdapter, equal expected: [String: [Float]], _ label: String,
                         file: StaticString = #filePath, line: UInt = #line) throws {
    for s in lora.orderedSites {
        for (matrix, offset, size) in [("lora_A", s.aOffset, s.rank * s.inFeatures), ("lora_B", s.bOffset, s.outFeatures * s.rank)] {
            let key = LoRAAdapter.key(s.moduleName, matrix)
            let theirs = try XCTUnwrap(expected[key], key, file: file, line: line)
            let ours = Array(UnsafeBufferPointer(start: lora.gradients.pointer + offset, count: size))
            let scale = theirs.map(abs).max() ?? 1
            assertClose(ours, theirs, atol: 2e-4 * scale, rtol: 1e-3, "\(key) \(label)", file: file, line: line)
        }
    }
}

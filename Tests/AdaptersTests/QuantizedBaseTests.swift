import Adapters
import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// QLoRA-style training: with the frozen base in a block format, the loss and every LoRA gradient equal those of
/// the same model whose weights are the dequantized values in f32 (the fp32 reference), for each format.
final class QuantizedBaseTests: XCTestCase {
    /// The model with its matrices replaced by their dequantized f32 values.
    func dequantizedTwin(of quantized: TransformerModel, arch: String) throws -> TransformerModel {
        let twin = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
        for t in BaseTensor.all(twin.config) {
            guard case .matrix(let m)? = quantized.weights.storage(t), m.quantType != nil else { continue }
            let values = m.toFloat()
            twin.weights.replace(t, with: .matrix(WeightMatrix(rows: m.rows, cols: m.cols, values: values.pointer)))
        }
        return twin
    }

    func testLoRAOnAQuantizedBaseEqualsTheDequantizedModel() throws {
        for arch in ["tiny-qwen2", "tiny-llama"] {
            for type in QuantType.allCases {
                // f32 compute: the products see exactly the dequantized values (bf16 compute would round them).
                let q = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
                q.weights.quantize(type)
                XCTAssertNotNil(q.weights.quantType, "\(arch) \(type)")
                let reference = try dequantizedTwin(of: q, arch: arch)
                let batch = PackedBatch(sequences: [[3, 9, 27, 81, 243, 5, 7], [11, 13, 17, 19]])
                let labels: [Int32] = [9, 27, 81, 243, 5, 7, -100, 13, -100, 19, -100]
                var results: [(Double, [Float])] = []
                for m in [q, reference] {
                    let lora = try LoRAAdapter(config: LoRAConfig(r: 4, alpha: 8, dropout: 0, targetModules: .allLinear), model: m.config)
                    lora.initialize(seed: 2)
                    var rng = SeededGenerator(seed: 4)
                    for s in lora.orderedSites { for i in 0..<(s.outFeatures * s.rank) { lora.parameters[s.bOffset + i] = rng.nextNormal() * 0.2 } }
                    m.adapter = lora
                    let b = m.makeBuffers(batches: [batch.lengths], policy: .keepAll)
                    lora.zeroGradients()
                    let (sum, _) = m.forwardBackward(batch, labels: labels, gradScale: 1, buffers: b,
                                                     context: PassContext(training: true, randomKey: 1))
                    results.append((sum, lora.gradients.array))
                }
                XCTAssertEqual(results[0].0, results[1].0, accuracy: 1e-5 * abs(results[1].0), "\(arch) \(type) loss")
                let scale = results[1].1.map(abs).max() ?? 1
                assertClose(results[0].1, results[1].1, atol: 1e-4 * scale, rtol: 1e-4, "\(arch) \(type) gradients")
                // Decoding multiplies 8-bit activations (as llama.cpp): close to the exact forward of the dequantized
                // twin, within that rounding through two layers.
                let prompt: [Int32] = [301, 17, 42, 99, 3]
                let session = DecodeSession(model: q, capacity: 32)
                let last = try session.append(prompt)
                let full = reference.logits(PackedBatch(sequences: [prompt]))
                let V = q.config.vocabSize
                let want = Array(full[(prompt.count - 1) * V..<(prompt.count * V)])
                assertClose(last, want, atol: 0.1 * (want.map(abs).max() ?? 1), "\(arch) \(type) decode")
            }
        }
    }
}

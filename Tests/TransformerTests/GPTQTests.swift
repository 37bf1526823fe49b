import Foundation
import Kernels
import ModelIO
import TestSupport
import Transformer
import XCTest

/// GPTQ-Int4 checkpoints (scripts/make_gptq_fixtures.py): the tiny GPTQ model runs from 4-bit storage and gives the
/// logits transformers computes with the documented dequantization; unsupported variants are refused by name.
final class GPTQTests: XCTestCase {
    func testGPTQModelMatchesItsDocumentedDequantization() throws {
        struct Golden: Decodable { let sequences: [[Int32]]; let logits: [[Float]] }
        // Without and with act-order (inputs assigned to groups out of order by g_idx).
        for name in ["tiny-qwen2-gptq", "tiny-qwen2-gptq-actorder"] {
            let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/\(name).json")))
            for dtype in [DType.float32, .bfloat16] {
                let m = try TransformerModel.load(directory: modelFixture(name), dtype: dtype)
                XCTAssertEqual(m.weights.quantType, .q4_0, "projections stay 4-bit")
                XCTAssertEqual(m.weights.layers[0].linear(.q).weight.inputOrder != nil, name.hasSuffix("actorder"))
                let logits = m.logits(PackedBatch(sequences: golden.sequences))
                // f32: the same weights exactly; bf16 rounds embeddings and inputs of the f16 parts.
                assertClose(logits, golden.logits.flatMap { $0 }, atol: dtype == .float32 ? 2e-4 : 5e-2, "\(name) \(dtype)")
            }
        }
    }

    /// An act-order matrix multiplies, back-propagates and reads rows as its dequantized dense matrix does.
    func testActOrderProductsEqualTheDenseMatrix() throws {
        let m = try TransformerModel.load(directory: modelFixture("tiny-qwen2-gptq-actorder"), dtype: .float32)
        var rng = SeededGenerator(seed: 5)
        for w in [m.weights.layers[0].linear(.q).weight, m.weights.layers[1].linear(.down).weight] {
            let order = try XCTUnwrap(w.inputOrder)
            XCTAssertNotEqual(order.indices, (0..<Int32(w.cols)).map { $0 }, "a real permutation")
            let dense = w.toFloat()
            let d = WeightMatrix(rows: w.rows, cols: w.cols, values: dense.pointer)
            for rows in [1, 3, 40] {
                let x = (0..<(rows * w.cols)).map { _ in rng.nextNormal() }
                let dy = (0..<(rows * w.rows)).map { _ in rng.nextNormal() }
                var y = [Float](repeating: 0, count: rows * w.rows), yWant = y
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { w.forward(xp.baseAddress!, rows: rows, into: $0.baseAddress!) }
                    yWant.withUnsafeMutableBufferPointer { d.forward(xp.baseAddress!, rows: rows, into: $0.baseAddress!) }
                }
                assertClose(y, yWant, atol: 1e-4, rtol: 1e-4, "forward rows=\(rows)")
                // dx = dy W, written and accumulated.
                var dx = [Float](repeating: 0.5, count: rows * w.cols), dxWant = dx
                dy.withUnsafeBufferPointer { dp in
                    dx.withUnsafeMutableBufferPointer { w.backwardInput(dp.baseAddress!, rows: rows, into: $0.baseAddress!, accumulate: true) }
                    dxWant.withUnsafeMutableBufferPointer { d.backwardInput(dp.baseAddress!, rows: rows, into: $0.baseAddress!, accumulate: true) }
                }
                assertClose(dx, dxWant, atol: 1e-4, rtol: 1e-4, "backward rows=\(rows)")
            }
        }
    }

    func testUnsupportedGPTQVariantsAreClearErrors() throws {
        let tmp = try TemporaryDirectory("gptq")
        defer { tmp.cleanup() }
        let dir = try tmp.copyModel("tiny-qwen2-gptq", as: "variant")
        let configURL = dir.appendingPathComponent("config.json")
        let original = try Data(contentsOf: configURL)
        for (key, value, message) in [("bits", 3 as Any, "GPTQ with 3 bits"), ("sym", false as Any, "asymmetric GPTQ"),
                                      ("group_size", -1 as Any, "group_size -1"), ("quant_method", "awq" as Any, "quant_method 'awq'")] {
            var config = try XCTUnwrap(JSONSerialization.jsonObject(with: original) as? [String: Any])
            var q = try XCTUnwrap(config["quantization_config"] as? [String: Any])
            q[key] = value
            config["quantization_config"] = q
            try JSONSerialization.data(withJSONObject: config).write(to: configURL)
            XCTAssertThrowsError(try TransformerModel.load(directory: dir, dtype: .float32)) {
                XCTAssertTrue("\($0)".contains(message), "\(key): \($0)")
            }
        }
    }

    func testActOrderAndAsymmetricTensorsAreRefused() throws {
        let tmp = try TemporaryDirectory("gptq-tensors")
        defer { tmp.cleanup() }
        /// A copy of the fixture with bytes of one tensor changed in place.
        func variant(_ name: String, tensor: String, _ patch: (UnsafeMutableRawPointer) -> Void) throws -> URL {
            let dir = try tmp.copyModel("tiny-qwen2-gptq", as: name)
            let file = dir.appendingPathComponent("model.safetensors")
            let st = try SafetensorsFile(path: file.path)
            let view = try XCTUnwrap(st.tensors[tensor])
            let offset = view.data - st.mapping.base
            var bytes = try Data(contentsOf: file)
            bytes.withUnsafeMutableBytes { patch($0.baseAddress! + offset) }
            try bytes.write(to: file)
            return dir
        }
        let reordered = try variant("act-order", tensor: "model.layers.0.self_attn.q_proj.g_idx") { p in
            p.storeBytes(of: Int32(1), toByteOffset: 0, as: Int32.self)   // input 0 in group 1
        }
        // Act-order is supported, but only with every group holding group_size inputs.
        XCTAssertThrowsError(try TransformerModel.load(directory: reordered, dtype: .float32)) {
            XCTAssertTrue("\($0)".contains("group 0 holds 31 inputs, not the group size 32"), "\($0)")
        }
        let asymmetric = try variant("asym", tensor: "model.layers.1.mlp.down_proj.qzeros") { p in
            p.storeBytes(of: UInt32(0x7777_7773), toByteOffset: 0, as: UInt32.self)   // zero + 1 = 4 for output 0
        }
        XCTAssertThrowsError(try TransformerModel.load(directory: asymmetric, dtype: .float32)) {
            XCTAssertTrue("\($0)".contains("zero point 4 in group 0 is not the symmetric 8"), "\($0)")
        }
    }
}

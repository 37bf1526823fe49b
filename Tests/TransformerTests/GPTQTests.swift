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
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/tiny-qwen2-gptq.json")))
        for dtype in [DType.float32, .bfloat16] {
            let m = try TransformerModel.load(directory: modelFixture("tiny-qwen2-gptq"), dtype: dtype)
            XCTAssertEqual(m.weights.quantType, .q4_0, "projections stay 4-bit")
            let logits = m.logits(PackedBatch(sequences: golden.sequences))
            // f32: the same weights exactly; bf16 rounds embeddings and inputs of the f16 parts.
            assertClose(logits, golden.logits.flatMap { $0 }, atol: dtype == .float32 ? 2e-4 : 5e-2, "\(dtype)")
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
        XCTAssertThrowsError(try TransformerModel.load(directory: reordered, dtype: .float32)) {
            XCTAssertTrue("\($0)".contains("act-order (desc_act) reordering at input 0"), "\($0)")
        }
        let asymmetric = try variant("asym", tensor: "model.layers.1.mlp.down_proj.qzeros") { p in
            p.storeBytes(of: UInt32(0x7777_7773), toByteOffset: 0, as: UInt32.self)   // zero + 1 = 4 for output 0
        }
        XCTAssertThrowsError(try TransformerModel.load(directory: asymmetric, dtype: .float32)) {
            XCTAssertTrue("\($0)".contains("zero point 4 in group 0 is not the symmetric 8"), "\($0)")
        }
    }
}

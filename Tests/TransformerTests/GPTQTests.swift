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
}

import Adapters
import Foundation
import Kernels
import ModelIO
import TestSupport
import Transformer
import XCTest

/// `merge` then a plain forward equals the adapter forward, and PEFT's merge_and_unload.
final class LoRAMergeTests: XCTestCase {
    var out: URL!

    override func setUp() {
        out = FileManager.default.temporaryDirectory.appendingPathComponent("merged-\(UUID().uuidString)")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: out) }

    func testMergedModelEqualsAdapterForwardAndPEFTMerge() throws {
        struct Golden: Decodable { let examples: [GoldenExample]; let merged_logits: [[Float]] }
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/lora-rslora.json")))
        let base = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-rslora-qv"), model: base.config)
        let report = try AdapterMerger.merge(model: modelFixture("tiny-qwen2"), adapter: lora, output: out)
        XCTAssertEqual(report.mergedTensors, 4)
        let merged = try TransformerModel.load(directory: out, dtype: .float32)
        let batch = PackedBatch(sequences: golden.examples.map(\.ids))
        let mergedLogits = merged.logits(batch)
        base.adapter = lora
        assertClose(mergedLogits, base.logits(batch), atol: 2e-4, "merged vs side-car")
        assertClose(mergedLogits, golden.merged_logits.flatMap { $0 }, atol: 2e-4, "merged vs PEFT merge_and_unload")
        for file in ["config.json", "tokenizer.json", "generation_config.json", "chat_template.jinja"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(file).path), file)
        }
    }

    func testShardedBF16MergeKeepsLayoutAndDType() throws {
        let source = modelFixture("tiny-qwen2-bf16-sharded")
        let base = try TransformerModel.load(directory: source, dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-rslora-qv"), model: base.config)
        _ = try AdapterMerger.merge(model: source, adapter: lora, output: out)
        let original = try ModelDirectory(url: source), merged = try ModelDirectory(url: out)
        XCTAssertEqual(original.weightMap, merged.weightMap)
        for name in merged.tensorNames { XCTAssertEqual(try merged.tensor(name).dtypeName, "BF16", name) }
        // Unadapted tensors are byte-identical.
        let a = try original.tensor("model.norm.weight"), b = try merged.tensor("model.norm.weight")
        XCTAssertEqual(Data(bytes: a.data, count: a.byteCount), Data(bytes: b.data, count: b.byteCount))
        // Adapted ones moved by the update (bf16 rounding of W + delta).
        let mergedModel = try TransformerModel.load(directory: out, dtype: .float32)
        base.adapter = lora
        let batch = PackedBatch(sequences: [[1, 5, 9, 200, 33]])
        // bf16 rounding of the merged weights (8-bit mantissa): logits agree to ~1e-2 of their scale.
        let expected = base.logits(batch)
        let scale = expected.map(abs).max()!
        assertClose(mergedModel.logits(batch), expected, atol: 0.03 * scale)
    }

    func testOurMergeLoadedByTransformersGivesOurLogits() throws {
        // scripts/make_peft_fixtures.py merged tiny-qwen2-ours into the bf16 sharded base with `peft merge`, loaded
        // the result with transformers' AutoModelForCausalLM and recorded its float32 logits.
        struct Golden: Decodable { let examples: [GoldenExample]; let logits: [[Float]] }
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/merge-ours-in-transformers.json")))
        let source = modelFixture("tiny-qwen2-bf16-sharded")
        let base = try TransformerModel.load(directory: source, dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-ours"), model: base.config)
        _ = try AdapterMerger.merge(model: source, adapter: lora, output: out)
        let merged = try TransformerModel.load(directory: out, dtype: .float32)
        // Same bf16 weights on both sides, f32 compute: the base-model tolerance applies.
        assertClose(merged.logits(PackedBatch(sequences: golden.examples.map(\.ids))), golden.logits.flatMap { $0 }, atol: 2e-4)
    }

    func testMergeRefusesToOverwriteItsInput() throws {
        let base = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-rslora-qv"), model: base.config)
        XCTAssertThrowsError(try AdapterMerger.merge(model: modelFixture("tiny-qwen2"), adapter: lora,
                                                  output: modelFixture("tiny-qwen2"))) { error in
            XCTAssertTrue("\(error)".contains("must differ"), "\(error)")
        }
    }
}

import Kernels
import TestSupport
import Transformer
import XCTest

/// Forward pass against Python transformers on tiny random checkpoints (scripts/make_model_fixtures.py):
/// full logits, KV-cache decode, and 32 greedy tokens.
final class GoldenForwardTests: XCTestCase {
    // fp32 compute with different summation order than torch: logits of magnitude ~5 agree to ~1e-5;
    // 2e-4 absolute leaves room for oneDNN's blocking without hiding real bugs (a wrong RoPE or bias is > 1e-1).
    let tolerance: Float = 2e-4

    func checkLogits(_ name: String, model modelName: String? = nil, dtype: DType = .float32) throws {
        let golden = try GoldenModel.load(name)
        let model = try TransformerModel.load(directory: modelFixture(modelName ?? name), dtype: dtype)
        XCTAssertEqual(model.config.vocabSize, golden.vocabSize)
        // Both sequences packed into one batch: packing must not leak attention across sequences.
        let logits = model.logits(PackedBatch(sequences: golden.sequences))
        assertClose(logits, golden.logits.flatMap { $0 }, atol: tolerance, "\(name) packed logits")
    }

    func testQwen2Logits() throws { try checkLogits("tiny-qwen2") }
    func testLlamaLogitsWithLlama3RopeScalingAndUntiedHead() throws { try checkLogits("tiny-llama") }
    func testQwen3LogitsWithQKNorm() throws { try checkLogits("tiny-qwen3") }
    func testMistralLogitsWithSlidingWindow() throws { try checkLogits("tiny-mistral") }
    func testQwen2SlidingWindowOnLaterLayersOnly() throws {
        let config = try ModelConfig(directory: modelFixture("tiny-qwen2-swa"))
        XCTAssertEqual([config.attentionWindow(layer: 0), config.attentionWindow(layer: 1)], [nil, 4])
        try checkLogits("tiny-qwen2-swa")
    }

    func testBF16ShardedCheckpointLoadsAsFloat32() throws {
        try checkLogits("tiny-qwen2-bf16", model: "tiny-qwen2-bf16-sharded")
    }

    func testBF16ComputeStaysCloseToFloat32() throws {
        // bf16 storage of an f32 checkpoint rounds weights to 8 bits of mantissa: logits move by ~1e-2.
        let golden = try GoldenModel.load("tiny-qwen2")
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .bfloat16)
        let logits = model.logits(PackedBatch(sequences: [golden.sequences[0]]))
        assertClose(logits, golden.logits[0], atol: 0.15, "bf16 vs f32 logits")
    }

    func testKVCacheDecodeEqualsFullForward() throws {
        for name in ["tiny-qwen2", "tiny-llama", "tiny-qwen3", "tiny-mistral", "tiny-qwen2-swa"] {
            let golden = try GoldenModel.load(name)
            let model = try TransformerModel.load(directory: modelFixture(name), dtype: .float32)
            let seq = golden.sequences[0], v = golden.vocabSize
            // Prefill 4 tokens in one chunk, then one token at a time: every step's logits match the full forward row.
            let session = DecodeSession(model: model, capacity: 64)
            var last = try session.append(Array(seq[0..<4]))
            assertClose(last, Array(golden.logits[0][(3 * v)..<(4 * v)]), atol: tolerance, "\(name) prefill")
            for t in 4..<seq.count {
                last = try session.append([seq[t]])
                assertClose(last, Array(golden.logits[0][(t * v)..<((t + 1) * v)]), atol: tolerance, "\(name) step \(t)")
            }
        }
    }

    func testGreedyContinuationMatchesTransformers() throws {
        for name in ["tiny-qwen2", "tiny-llama", "tiny-qwen3", "tiny-mistral"] {
            let golden = try GoldenModel.load(name)
            let model = try TransformerModel.load(directory: modelFixture(name), dtype: .float32)
            let session = DecodeSession(model: model, capacity: 64)
            var logits = try session.append(golden.greedyPrompt)
            var generated: [Int32] = []
            for _ in 0..<32 {
                let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
                generated.append(next)
                logits = try session.append([next])
            }
            XCTAssertEqual(generated, golden.greedyContinuation, name)
        }
    }

    func testGrowingCacheKeepsEarlierKeysAndValues() throws {
        // Start with room for 2 positions: the cache doubles three times while decoding 11 tokens.
        let golden = try GoldenModel.load("tiny-qwen2")
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let seq = golden.sequences[0], v = golden.vocabSize
        let session = DecodeSession(model: model, capacity: 64, chunkRows: 2, initialAllocation: 2)
        var last = try session.append(Array(seq[0..<3]))
        for t in 3..<seq.count { last = try session.append([seq[t]]) }
        assertClose(last, Array(golden.logits[0][((seq.count - 1) * v)...]), atol: tolerance)
    }

    func testChunkedPrefillEqualsSingleChunk() throws {
        let golden = try GoldenModel.load("tiny-qwen2")
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let seq = golden.sequences[0]
        let small = DecodeSession(model: model, capacity: 64, chunkRows: 3)
        let logits = try small.append(seq)
        let v = golden.vocabSize
        assertClose(logits, Array(golden.logits[0][((seq.count - 1) * v)...]), atol: tolerance)
    }

    func testContextOverflowAndBadTokenAreErrors() throws {
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let session = DecodeSession(model: model, capacity: 8)
        XCTAssertThrowsError(try session.append([Int32](repeating: 1, count: 9))) { error in
            XCTAssertTrue("\(error)".contains("exceeds"), "\(error)")
        }
        XCTAssertThrowsError(try session.append([999])) { error in
            XCTAssertTrue("\(error)".contains("outside the vocabulary"), "\(error)")
        }
    }
}

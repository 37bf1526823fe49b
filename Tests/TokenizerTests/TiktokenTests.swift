import XCTest
@testable import Tokenizer

/// Qwen v1 `qwen.tiktoken` loading; expected ids come from the `tiktoken` package (Fixtures/qwen-tiktoken).
final class TiktokenTests: XCTestCase {
    func testRankFileMatchesTiktoken() throws {
        try Fixtures.assertMatchesExpected("qwen-tiktoken")
    }

    /// Qwen v1 has no chat template file: its remote code's make_context format is used, and the prompt's ids are
    /// what make_context builds (role and content encoded apart, joined by the newline's ids).
    func testQwenV1ChatFormatIsMakeContext() throws {
        let tokenizer = try Fixtures.tokenizer("qwen-tiktoken")
        XCTAssertEqual(ChatTemplate.detect(from: tokenizer.config), .chatml)
        let formatter = try ChatFormatter(template: .jinja, tokenizer: tokenizer)
        let ids = try formatter.promptIDs([ChatMessage(role: .user, content: "hello world"),
                                           ChatMessage(role: .assistant, content: "hi"),
                                           ChatMessage(role: .user, content: "2 + 2?")])
        let start = tokenizer.id(forToken: "<|im_start|>")!, end = tokenizer.id(forToken: "<|im_end|>")!
        let nl = tokenizer.encode("\n")
        func turn(_ role: String, _ content: String) -> [TokenID] {
            [start] + tokenizer.encode(role) + nl + tokenizer.encode(content) + [end]
        }
        let expected = turn("system", "You are a helpful assistant.") + nl + turn("user", "hello world") + nl
            + turn("assistant", "hi") + nl + turn("user", "2 + 2?") + nl + [start] + tokenizer.encode("assistant") + nl
        XCTAssertEqual(ids, expected)
    }

    func testQwenSpecialTokensFollowTheRanks() throws {
        let tokenizer = try Fixtures.tokenizer("qwen-tiktoken")
        let first = TokenID(900)  // the fixture has ranks 0..<900; the real file 0..<151643
        XCTAssertEqual(tokenizer.id(forToken: "<|endoftext|>"), first)
        XCTAssertEqual(tokenizer.id(forToken: "<|im_start|>"), first + 1)
        XCTAssertEqual(tokenizer.id(forToken: "<|im_end|>"), first + 2)
        XCTAssertEqual(tokenizer.id(forToken: "<|extra_0|>"), first + 3)
        XCTAssertEqual(tokenizer.id(forToken: "<|extra_204|>"), first + 207)
        XCTAssertEqual(tokenizer.vocabularySize, 900 + 208)
        XCTAssertEqual(tokenizer.eosTokenID, first)
        XCTAssertTrue(tokenizer.isSpecial(first + 2))
        XCTAssertEqual(tokenizer.token(forID: 220), "Ġ")
        XCTAssertEqual(tokenizer.encode("<|im_start|>user<|im_end|>").first, first + 1)
    }

    /// GLM-4's remote code keeps a tiktoken rank file as `tokenizer.model`: read as ChatGLM4Tokenizer reads it
    /// (Llama-3's split, its specials after the ranks, `[gMASK]<sop>` before every encoded text); ids from `tiktoken`.
    func testGLM4RankFileNamedTokenizerModelMatchesChatGLM4Tokenizer() throws {
        let tokenizer = try Fixtures.assertMatchesExpected("glm4-tiktoken")
        XCTAssertEqual(tokenizer.id(forToken: "[gMASK]"), 902)
        XCTAssertEqual(tokenizer.eosTokenID, 900)
        XCTAssertEqual(Array(tokenizer.encode("x").prefix(2)), [902, 904])  // [gMASK] <sop>
        XCTAssertEqual(tokenizer.encode("x", addSpecialTokens: false).count, 1)
    }

    func testMalformedRankFileNamesTheLine() throws {
        let good = Data("IQ== 0\r\nIg== 1\r\n".utf8)
        XCTAssertNoThrow(try Tokenizer(tiktokenRanks: good, config: TokenizerConfig()))
        let cases: [(String, String)] = [
            ("IQ== 0\nnot-base64!! 1\n", "line 2: invalid base64 token"),
            ("IQ== 0\nIg==\n", "line 2: expected two fields"),
            ("IQ== zero\n", "line 1: invalid rank"),
            ("IQ== 0\nIQ== 1\n", "line 2: duplicate token"),
            ("IQ== 0\nIg== 0\n", "line 2: duplicate rank 0"),
            ("\n\n", "no ranks"),
            ("IQ== 0\n\nIg== 9\n", "line 3: rank 9 is not below the number of lines"),
        ]
        for (text, message) in cases {
            XCTAssertThrowsError(try Tokenizer(tiktokenRanks: Data(text.utf8), config: TokenizerConfig())) { error in
                XCTAssertTrue("\(error)".contains(message), "\(error)")
                XCTAssertTrue("\(error)".hasPrefix("qwen.tiktoken"), "\(error)")
            }
        }
    }
}

import XCTest
@testable import Tokenizer

/// Bad directories and files fail with a `TokenizerError` that names the file and the field.
final class LoadingErrorTests: XCTestCase {
    /// A minimal valid byte-level tokenizer.json, as a dictionary that each test breaks in one place.
    private func minimalTokenizer() -> [String: Any] {
        [
            "model": ["type": "BPE", "vocab": ["a": 0, "b": 1, "ab": 2], "merges": ["a b"]],
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true],
            "decoder": ["type": "ByteLevel"],
            "added_tokens": [["id": 3, "content": "<|end|>", "special": true]],
        ]
    }

    private func load(_ json: [String: Any]) throws -> Tokenizer {
        try Tokenizer(tokenizerJSON: JSONSerialization.data(withJSONObject: json), config: TokenizerConfig())
    }

    private func assertError(_ json: [String: Any], _ expected: TokenizerError, line: UInt = #line) {
        XCTAssertThrowsError(try load(json), line: line) { error in
            XCTAssertEqual(error as? TokenizerError, expected, line: line)
        }
    }

    func testMinimalTokenizerWorks() throws {
        let tokenizer = try load(minimalTokenizer())
        XCTAssertEqual(tokenizer.encode("ab<|end|>"), [2, 3])
        XCTAssertEqual(tokenizer.encode("ba"), [1, 0])
        XCTAssertEqual(tokenizer.encode("c"), [], "bytes missing from the vocabulary vanish, as in Hugging Face")
        XCTAssertEqual(tokenizer.vocabularySize, 4)
    }

    func testUnsupportedComponents() {
        var json = minimalTokenizer()
        json["model"] = ["type": "WordPiece", "vocab": ["a": 0]]
        assertError(json, .unsupported(file: "tokenizer.json", field: "model.type", value: "WordPiece"))
        json = minimalTokenizer()
        json["normalizer"] = ["type": "Sequence", "normalizers": [["type": "NFC"], ["type": "Lowercase"]]]
        assertError(json, .unsupported(file: "tokenizer.json", field: "normalizer.normalizers[1].type", value: "Lowercase"))
        json = minimalTokenizer()
        json["pre_tokenizer"] = ["type": "Whitespace"]
        assertError(json, .unsupported(file: "tokenizer.json", field: "pre_tokenizer.type", value: "Whitespace"))
        json = minimalTokenizer()
        json["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": "a"], "behavior": "Merged", "invert": false]
        assertError(json, .unsupported(file: "tokenizer.json", field: "pre_tokenizer.behavior", value: "Merged"))
        json = minimalTokenizer()
        json["post_processor"] = ["type": "RobertaProcessing"]
        assertError(json, .unsupported(file: "tokenizer.json", field: "post_processor.type", value: "RobertaProcessing"))
        json = minimalTokenizer()
        json["decoder"] = NSNull()
        assertError(json, .unsupported(file: "tokenizer.json", field: "decoder", value: "null"))
        json = minimalTokenizer()
        json["model"] = ["type": "BPE", "vocab": ["a": 0], "merges": [], "byte_fallback": true]
        assertError(json, .unsupported(file: "tokenizer.json", field: "model.byte_fallback", value: "true with ByteLevel"))
    }

    func testInvalidFields() {
        var json = minimalTokenizer()
        json["model"] = ["type": "BPE", "vocab": ["a": 0, "b": 1], "merges": ["a b"]]
        assertError(json, .invalidField(file: "tokenizer.json", field: "model.merges[0]",
                                        reason: "the merged token 'ab' is not in model.vocab"))
        json["model"] = ["type": "BPE", "vocab": ["a": 0, "ab": 2], "merges": [["a", "b"]]]
        assertError(json, .invalidField(file: "tokenizer.json", field: "model.merges[0]",
                                        reason: "token 'b' is not in model.vocab"))
        json["model"] = ["type": "BPE", "vocab": ["a": "zero"], "merges": []]
        XCTAssertThrowsError(try load(json)) { XCTAssertTrue("\($0)".contains("model.vocab"), "\($0)") }
        json["model"] = ["type": "BPE", "vocab": ["a": 0]]
        assertError(json, .missingField(file: "tokenizer.json", field: "model.merges"))
        json["model"] = ["type": "BPE", "vocab": ["a": 2_000_000_000], "merges": []]
        XCTAssertThrowsError(try load(json)) { XCTAssertTrue("\($0)".contains("far beyond"), "\($0)") }
        json = minimalTokenizer()
        json["added_tokens"] = [["id": 3, "special": true]]
        assertError(json, .missingField(file: "tokenizer.json", field: "added_tokens[0].content"))
        json = minimalTokenizer()
        json["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": "(unclosed"], "behavior": "Isolated"]
        XCTAssertThrowsError(try load(json)) { XCTAssertTrue("\($0)".contains("pre_tokenizer.pattern.Regex"), "\($0)") }
    }

    func testMissingDirectoryAndFiles() throws {
        let missing = URL(fileURLWithPath: "/nonexistent/model-\(UUID().uuidString)")
        XCTAssertThrowsError(try Tokenizer.load(directory: missing)) {
            XCTAssertEqual($0 as? TokenizerError, .directoryNotFound(path: missing.path))
        }
        let empty = try Fixtures.temporaryDirectory(files: [:], testCase: self)
        XCTAssertThrowsError(try Tokenizer.load(directory: empty)) {
            XCTAssertEqual($0 as? TokenizerError, .noTokenizerFile(directory: empty.path))
            XCTAssertTrue("\($0)".contains("no tokenizer.json, tokenizer.model or qwen.tiktoken"))
        }
    }

    func testMalformedFilesNameThemselves() throws {
        let brokenJSON = try Fixtures.temporaryDirectory(files: ["tokenizer.json": Data("{\n  \"model\": [1,\n}".utf8)],
                                                         testCase: self)
        XCTAssertThrowsError(try Tokenizer.load(directory: brokenJSON)) { error in
            guard case .malformedJSON(let file, let line, _, _)? = error as? TokenizerError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue(file.hasSuffix("tokenizer.json"))
            XCTAssertEqual(line, 3)
        }
        let tokenizerData = try JSONSerialization.data(withJSONObject: minimalTokenizer())
        let brokenConfig = try Fixtures.temporaryDirectory(
            files: ["tokenizer.json": tokenizerData, "tokenizer_config.json": Data("{\"eos_token\": 5}".utf8)],
            testCase: self)
        XCTAssertThrowsError(try Tokenizer.load(directory: brokenConfig)) { error in
            XCTAssertTrue("\(error)".contains("tokenizer_config.json: field 'eos_token' is invalid: expected a string"), "\(error)")
        }
    }

    func testConfigAndJinjaTemplate() throws {
        let config = """
        {"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "<|end|>", "add_bos_token": true,
         "model_max_length": 1000000000000000019884624838656, "chat_template": [{"name": "tool_use", "template": "T"},
         {"name": "default", "template": "D"}], "tokenizer_class": "X"}
        """
        let parsed = try TokenizerConfig(json: Data(config.utf8))
        XCTAssertEqual(parsed, TokenizerConfig(chatTemplate: "D", bosToken: "<s>", eosToken: "<|end|>", addBosToken: true,
                                               modelMaxLength: nil, tokenizerClass: "X"))
        let directory = try Fixtures.temporaryDirectory(
            files: ["tokenizer.json": try JSONSerialization.data(withJSONObject: minimalTokenizer()),
                    "tokenizer_config.json": Data(config.utf8), "chat_template.jinja": Data("<|im_start|>".utf8)],
            testCase: self)
        let tokenizer = try Tokenizer.load(directory: directory)
        XCTAssertEqual(tokenizer.config.chatTemplate, "<|im_start|>", "chat_template.jinja wins")
        XCTAssertEqual(tokenizer.eosTokenID, 3)
        XCTAssertNil(tokenizer.bosTokenID, "<s> is not in this vocabulary")
    }
}

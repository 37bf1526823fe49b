import Foundation
import XCTest
@testable import Tokenizer

/// tokenizer.json layouts of model families as transformers 5 builds them (Tests/Fixtures/tokenizers, made by
/// scripts/make_sentencepiece_fixtures.py): every text's ids and decode as transformers gives them.
final class ModelLayoutTests: XCTestCase {
    /// sp-gemma: the tokenizer.json layout of Gemma 2 / 3 checkpoints (what transformers' GemmaTokenizer builds from a
    /// SentencePiece model with Gemma's settings: Replace(" ", "▁"), a Split on " ", BPE with byte fallback, <bos>
    /// prepended; the folder holds no tokenizer.model): every id of the 2000 texts and every decode as transformers
    /// gives them, and sentencepiece's own ids wherever no special token's literal ("<unk>", the turn markers) is in
    /// the text.
    func testGemmaTokenizerJSONLayoutMatchesTransformers() throws {
        struct GemmaExpected: Decodable {
            struct Case: Decodable { let ids: [TokenID]; let decoded: String; let sentencepiece: [TokenID] }
            let cases: [Case]
        }
        let directory = SentencePieceTests.fixture("sp-gemma")
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("tokenizer.model").path))
        let tokenizer = try Tokenizer.load(directory: directory)
        XCTAssertEqual(tokenizer.bosTokenID, 2)
        XCTAssertEqual(tokenizer.eosTokenID, 1)
        let texts = try JSONDecoder().decode([String].self, from: Data(contentsOf: SentencePieceTests.fixture("texts.json")))
        let expected = try JSONDecoder().decode(GemmaExpected.self,
                                                from: Data(contentsOf: directory.appendingPathComponent("expected.json")))
        XCTAssertEqual(texts.count, expected.cases.count)
        var mismatches = 0, plain = 0
        for (text, want) in zip(texts, expected.cases) {
            let ids = tokenizer.encode(text)
            if ids != want.ids {
                mismatches += 1
                if mismatches <= 10 { XCTFail("\(text.debugDescription): \(ids) != \(want.ids)") }
            }
            XCTAssertEqual(tokenizer.decode(want.ids), want.decoded, text.debugDescription)
            if !["<unk>", "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<pad>"].contains(where: text.contains) {
                XCTAssertEqual(ids, want.sentencepiece, text.debugDescription)
                plain += 1
            }
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertGreaterThan(plain, 1800)
        // A chat turn: the markers are single tokens.
        XCTAssertEqual(Array(tokenizer.encode("<start_of_turn>user\nhi<end_of_turn>").prefix(2)), [2, 4])
    }

    /// bpe-neox: the GPT-NeoX vocabulary layout of OLMoE (NFC, ByteLevel without a prefix space, a ByteLevel
    /// post-processor, OLMoE's |||...||| added tokens); transformers' GPTNeoXTokenizer rebuilds it from the file's
    /// vocabulary and merges. Every id and decode of 2003 texts equal.
    func testNeoXLayoutMatchesTransformers() throws {
        struct NeoXExpected: Decodable {
            struct Case: Decodable { let text: String; let ids: [TokenID]; let decoded: String }
            let cases: [Case]
        }
        let directory = SentencePieceTests.fixture("bpe-neox")
        let tokenizer = try Tokenizer.load(directory: directory)
        let expected = try JSONDecoder().decode(NeoXExpected.self,
                                                from: Data(contentsOf: directory.appendingPathComponent("expected.json")))
        XCTAssertGreaterThan(expected.cases.count, 2000)
        var mismatches = 0
        for want in expected.cases {
            let ids = tokenizer.encode(want.text)
            if ids != want.ids {
                mismatches += 1
                if mismatches <= 10 { XCTFail("\(want.text.debugDescription): \(ids) != \(want.ids)") }
            }
            XCTAssertEqual(tokenizer.decode(want.ids), want.decoded, want.text.debugDescription)
        }
        XCTAssertEqual(mismatches, 0)
        XCTAssertEqual(tokenizer.encode("|||PHONE_NUMBER|||").count, 1)
    }
}

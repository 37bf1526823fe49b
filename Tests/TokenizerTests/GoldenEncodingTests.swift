import XCTest
@testable import Tokenizer

/// Every fixture text must encode to exactly the ids Hugging Face tokenizers 0.23.3 produced and decode to
/// the same string (Fixtures/*/expected.json).
final class GoldenEncodingTests: XCTestCase {
    func testEveryFixtureMatchesHuggingFace() throws {
        for name in Fixtures.tokenizerJSONNames { try Fixtures.assertMatchesExpected(name) }
    }

    /// Without a normalizer or a prefix space, decoding is the exact inverse of encoding, except where an
    /// added token swallows the spaces around it (`[MASK]` has lstrip/rstrip, as in Hugging Face).
    func testDecodeInvertsEncode() throws {
        for name in ["qwen2-style", "llama3-style"] {
            let tokenizer = try Fixtures.tokenizer(name)
            let cases = try Fixtures.decode([Fixtures.EncodingCase].self, from: "\(name)/expected.json")
            for golden in cases where !golden.text.contains("[MASK]") {
                XCTAssertEqual(tokenizer.decode(tokenizer.encode(golden.text, addSpecialTokens: false)), golden.text, name)
            }
        }
    }

    func testLegacyAndPairMergesLoadTheSameModel() throws {
        let pairs = try Fixtures.tokenizer("qwen2-style")
        let legacy = try Fixtures.tokenizer("qwen2-legacy-merges")
        XCTAssertEqual(pairs.model.merges.count, legacy.model.merges.count)
        XCTAssertEqual(pairs.vocabularySize, legacy.vocabularySize)
        let text = "问：六味地黄丸的功效是什么？ It's 2024!"
        XCTAssertEqual(pairs.encode(text), legacy.encode(text))
    }

    func testSpecialTokensInTextAreRecognised() throws {
        let tokenizer = try Fixtures.tokenizer("qwen2-style")
        let start = try XCTUnwrap(tokenizer.id(forToken: "<|im_start|>"))
        let end = try XCTUnwrap(tokenizer.id(forToken: "<|im_end|>"))
        let ids = tokenizer.encode("<|im_start|>user\n你好<|im_end|>")
        XCTAssertEqual(ids.first, start)
        XCTAssertEqual(ids.last, end)
        XCTAssertEqual(ids.filter { $0 == start || $0 == end }.count, 2)
        XCTAssertTrue(tokenizer.isSpecial(end))
        XCTAssertFalse(tokenizer.isSpecial(try XCTUnwrap(tokenizer.id(forToken: "<think>"))))
        XCTAssertEqual(tokenizer.token(forID: end), "<|im_end|>")
        XCTAssertEqual(tokenizer.decode(ids, skipSpecialTokens: true), "user\n你好")
        XCTAssertEqual(tokenizer.eosTokenID, end)
        XCTAssertEqual(tokenizer.padTokenID, tokenizer.id(forToken: "<|endoftext|>"))
        XCTAssertNil(tokenizer.bosTokenID)
        XCTAssertEqual(tokenizer.config.modelMaxLength, 32768)
    }

    func testLlama3TemplateAddsBOSOnlyWithSpecialTokens() throws {
        let tokenizer = try Fixtures.tokenizer("llama3-style")
        let bos = try XCTUnwrap(tokenizer.id(forToken: "<|begin_of_text|>"))
        XCTAssertEqual(tokenizer.bosTokenID, bos)
        XCTAssertTrue(tokenizer.prependsBOS)
        XCTAssertEqual(tokenizer.encode("hi").first, bos)
        XCTAssertNotEqual(tokenizer.encode("hi", addSpecialTokens: false).first, bos)
        XCTAssertEqual(tokenizer.encode("", addSpecialTokens: true), [bos])
    }

    /// Llama-2 style: "▁" spaces, `<0xXX>` byte fallback for characters outside the vocabulary, BOS.
    func testSentencePieceStyleByteFallback() throws {
        for name in ["llama2-style", "metaspace-style"] {
            let tokenizer = try Fixtures.tokenizer(name)
            XCTAssertEqual(tokenizer.bosTokenID, tokenizer.id(forToken: "<s>"))
            XCTAssertTrue(tokenizer.prependsBOS)
            let ids = tokenizer.encode("鳄", addSpecialTokens: false)
            let bytes = ["<0xE9>", "<0xB3>", "<0x84>"].compactMap { tokenizer.id(forToken: $0) }
            XCTAssertEqual(Array(ids.suffix(3)), bytes, name)
            XCTAssertEqual(tokenizer.token(forID: ids[0]), "▁", name)
        }
        let llama2 = try Fixtures.tokenizer("llama2-style")
        XCTAssertEqual(llama2.decode(llama2.encode("鳄鱼 swim"), skipSpecialTokens: true), "鳄鱼 swim")
    }

    func testVocabularyLookups() throws {
        let tokenizer = try Fixtures.tokenizer("qwen2-style")
        XCTAssertEqual(tokenizer.vocabularySize, 906)
        let space = try XCTUnwrap(tokenizer.id(forToken: "Ġ"))
        XCTAssertEqual(tokenizer.token(forID: space), "Ġ")
        XCTAssertEqual(tokenizer.encode(" "), [space])
        XCTAssertNil(tokenizer.id(forToken: "no such token"))
        XCTAssertNil(tokenizer.token(forID: 100_000))
        XCTAssertNil(tokenizer.token(forID: -1))
        XCTAssertEqual(tokenizer.decode([-5, 100_000]), "")
    }

    /// One tokenizer shared by several threads gives every thread the single-threaded answer.
    func testConcurrentEncodingIsConsistent() throws {
        let tokenizer = try Fixtures.tokenizer("qwen2-style")
        let cases = try Fixtures.decode([Fixtures.EncodingCase].self, from: "qwen2-style/expected.json")
        let failures = LockedCounter()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for round in 0..<20 {
                let golden = cases[(worker * 7 + round) % cases.count]
                if tokenizer.encode(golden.text) != golden.ids { failures.increment() }
            }
        }
        XCTAssertEqual(failures.value, 0)
    }
}

/// A counter several threads may bump.
final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }

    func increment() {
        lock.lock()
        count += 1
        lock.unlock()
    }
}

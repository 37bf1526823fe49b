import XCTest
@testable import Tokenizer

final class StreamingDecoderTests: XCTestCase {
    /// The tiny fixture vocabulary spells most Chinese characters as 2-3 byte tokens, so a stream that
    /// emitted bytes eagerly would show U+FFFD; ours emits whole characters only.
    func testChineseStreamsWholeCharacters() throws {
        let tokenizer = try Fixtures.tokenizer("qwen2-style")
        let text = "问：鳄鱼吃了醋栗，骡子驮着榴莲。答：不建议长期服用。😀 OK"
        let ids = tokenizer.encode(text)
        XCTAssertGreaterThan(ids.count, text.count, "the fixture should split rare characters into byte tokens")
        var stream = StreamingDecoder(tokenizer: tokenizer)
        var pieces: [String] = []
        for id in ids { pieces.append(stream.append(id)) }
        pieces.append(stream.flush())
        XCTAssertFalse(pieces.contains { $0.contains("\u{FFFD}") }, "\(pieces)")
        XCTAssertTrue(pieces.contains(""), "some tokens end mid-character and must emit nothing")
        XCTAssertEqual(pieces.joined(), text)
    }

    /// For every fixture (byte-level, Llama-2 `Strip`, Metaspace) the stream adds up to `decode`.
    func testStreamsAddUpToDecode() throws {
        for name in Fixtures.tokenizerJSONNames {
            let tokenizer = try Fixtures.tokenizer(name)
            for golden in try Fixtures.decode([Fixtures.EncodingCase].self, from: "\(name)/expected.json") {
                for skip in [true, false] {
                    var stream = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: skip)
                    let streamed = golden.ids.map { stream.append($0) }.joined() + stream.flush()
                    XCTAssertEqual(streamed, tokenizer.decode(golden.ids, skipSpecialTokens: skip), "\(name): \(golden.text.debugDescription)")
                }
            }
        }
    }

    func testSpecialTokensAreSkippedByDefault() throws {
        let tokenizer = try Fixtures.tokenizer("qwen2-style")
        let ids = tokenizer.encode("你好<|im_end|>")
        var quiet = StreamingDecoder(tokenizer: tokenizer)
        var verbose = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: false)
        XCTAssertEqual(ids.map { quiet.append($0) }.joined() + quiet.flush(), "你好")
        XCTAssertEqual(ids.map { verbose.append($0) }.joined() + verbose.flush(), "你好<|im_end|>")
    }

    func testFlushReleasesAnUnfinishedCharacter() throws {
        let tokenizer = try Fixtures.tokenizer("qwen2-style")
        var stream = StreamingDecoder(tokenizer: tokenizer)
        let firstByteOfZhong = try XCTUnwrap(tokenizer.id(forToken: ByteLevelAlphabet.token(fromBytes: [0xE4])))
        XCTAssertEqual(stream.append(firstByteOfZhong), "")
        XCTAssertEqual(stream.flush(), "\u{FFFD}")
        XCTAssertEqual(stream.flush(), "")
    }

    func testCompleteLength() {
        XCTAssertEqual(StreamingDecoder.completeLength(of: []), 0)
        XCTAssertEqual(StreamingDecoder.completeLength(of: Array("a中".utf8)), 4)
        XCTAssertEqual(StreamingDecoder.completeLength(of: [0x61, 0xE4, 0xB8]), 1)
        XCTAssertEqual(StreamingDecoder.completeLength(of: [0xF0, 0x9F, 0x98]), 0)
        XCTAssertEqual(StreamingDecoder.completeLength(of: [0xF0, 0x9F, 0x98, 0x80]), 4)
        XCTAssertEqual(StreamingDecoder.completeLength(of: [0x80, 0x80]), 2, "stray continuation bytes are released")
        XCTAssertEqual(StreamingDecoder.completeLength(of: [0xFF]), 1, "an impossible byte is released")
    }
}

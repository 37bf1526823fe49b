import XCTest
@testable import Tokenizer

/// The hand-written matcher must cut text exactly where the regex does. ICU (NSRegularExpression) is the
/// second opinion here; it differs from Oniguruma only in `\s` for U+000B and U+0085, which are left out of
/// the alphabet (the golden fixtures cover them against Hugging Face).
final class GPT2FamilyPatternTests: XCTestCase {
    static let qwen2 = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3 = qwen2.replacingOccurrences(of: #"|\p{N}|"#, with: #"|\p{N}{1,3}|"#)

    func testRecognition() {
        XCTAssertEqual(GPT2FamilyPattern(recognizing: Self.qwen2), GPT2FamilyPattern(flavor: .qwen, maximumDigits: 1))
        XCTAssertEqual(GPT2FamilyPattern(recognizing: Self.llama3), GPT2FamilyPattern(flavor: .qwen, maximumDigits: 3))
        XCTAssertEqual(GPT2FamilyPattern(recognizing: GPT2FamilyPattern.gpt2Source),
                       GPT2FamilyPattern(flavor: .gpt2, maximumDigits: .max))
        XCTAssertNil(GPT2FamilyPattern(recognizing: Self.qwen2.replacingOccurrences(of: #"|\p{N}|"#, with: #"|\p{N}{2}|"#)))
        XCTAssertNil(GPT2FamilyPattern(recognizing: #"\w+"#))
    }

    func testAgreesWithRegexOnRandomText() throws {
        let alphabet = ["a", "Z", "é", "中", "文", "1", "٣", "½", "Ⅻ", " ", " ", " ", "\t", "\n", "\r", "\u{3000}",
                        "\u{A0}", "\u{2028}", "'", "s", "S", "t", "T", "re", "VE", "lL", "m", "d", "ſ", "!", "?", ".",
                        "😀", "_", "-", "\u{301}", "\u{0}", "🇨🇳"]
        var generator = SplitMix64(seed: 2024)
        let field = JSONField(value: .null, file: "test")
        for source in [Self.qwen2, Self.llama3, GPT2FamilyPattern.gpt2Source] {
            let fast = try XCTUnwrap(GPT2FamilyPattern(recognizing: source))
            let regex = try RegexPattern(source: source, field: field)
            for _ in 0..<1500 {
                let length = Int(generator.next() % 24)
                let text = (0..<length).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] }.joined()
                let bytes = Array(text.utf8)[...]
                XCTAssertEqual(fast.matches(in: bytes), regex.matches(in: bytes), "\(source.prefix(20)) on \(text.debugDescription)")
            }
        }
    }

    func testLlama3DigitGroups() throws {
        let pattern = try XCTUnwrap(GPT2FamilyPattern(recognizing: Self.llama3))
        let bytes = Array("1234567".utf8)[...]
        XCTAssertEqual(pattern.matches(in: bytes), [0..<3, 3..<6, 6..<7])
    }
}

/// A small deterministic generator for reproducible random tests.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

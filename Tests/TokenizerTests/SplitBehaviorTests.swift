import Foundation
import XCTest
@testable import Tokenizer

/// The `Split` pre-tokenizer's five behaviors, with and without `invert`, against what Hugging Face `tokenizers`
/// 0.23.3 gives (`pre_tokenizers.Split(pattern, behavior, invert=...).pre_tokenize_str(text)`), on a literal pattern
/// and a regex. Gemma's tokenizer.json files split with `MergedWithPrevious`.
final class SplitBehaviorTests: XCTestCase {
    private static let cases: [(text: String, pattern: [String: String])] = [
        ("a  b c ", ["String": " "]), ("--a--b-", ["String": "-"]), ("hello world!!", ["Regex": #"\s+|!+"#]),
        ("", ["String": " "]), ("  ", ["String": " "]), ("x", ["String": " "]),
    ]

    /// behavior, invert, then the words of each case.
    private static let expected: [(String, Bool, [[String]])] = [
        ("Removed", false, [["a", "b", "c"], ["a", "b"], ["hello", "world"], [], [], ["x"]]),
        ("Removed", true, [[" ", " ", " ", " "], ["-", "-", "-", "-", "-"], [" ", "!!"], [], [" ", " "], []]),
        ("Isolated", false, [["a", " ", " ", "b", " ", "c", " "], ["-", "-", "a", "-", "-", "b", "-"],
                             ["hello", " ", "world", "!!"], [], [" ", " "], ["x"]]),
        ("Isolated", true, [["a", " ", " ", "b", " ", "c", " "], ["-", "-", "a", "-", "-", "b", "-"],
                            ["hello", " ", "world", "!!"], [], [" ", " "], ["x"]]),
        ("MergedWithPrevious", false, [["a ", " ", "b ", "c "], ["-", "-", "a-", "-", "b-"], ["hello ", "world!!"], [],
                                       [" ", " "], ["x"]]),
        ("MergedWithPrevious", true, [["a", " ", " b", " c", " "], ["-", "-a", "-", "-b", "-"], ["hello", " world", "!!"],
                                      [], [" ", " "], ["x"]]),
        ("MergedWithNext", false, [["a", " ", " b", " c", " "], ["-", "-a", "-", "-b", "-"], ["hello", " world", "!!"], [],
                                   [" ", " "], ["x"]]),
        ("MergedWithNext", true, [["a ", " ", "b ", "c "], ["-", "-", "a-", "-", "b-"], ["hello ", "world!!"], [],
                                  [" ", " "], ["x"]]),
        ("Contiguous", false, [["a", "  ", "b", " ", "c", " "], ["--", "a", "--", "b", "-"], ["hello", " ", "world", "!!"],
                               [], ["  "], ["x"]]),
        ("Contiguous", true, [["a", "  ", "b", " ", "c", " "], ["--", "a", "--", "b", "-"], ["hello", " ", "world", "!!"],
                              [], ["  "], ["x"]]),
    ]

    func testEveryBehaviorSplitsAsHuggingFace() throws {
        for (behavior, invert, words) in Self.expected {
            for (test, want) in zip(Self.cases, words) {
                let json: [String: Any] = ["type": "Split", "pattern": test.pattern, "behavior": behavior, "invert": invert]
                let value = try JSONParser.parse(JSONSerialization.data(withJSONObject: json), file: "tokenizer.json")
                let split = try PreTokenizer(json: JSONField(value: value, file: "tokenizer.json", path: "pre_tokenizer"))
                let got = split.split([Array(test.text.utf8)[...]], firstStartsText: true).map { String(decoding: $0, as: UTF8.self) }
                XCTAssertEqual(got, want, "\(behavior) invert \(invert) on \(test.text.debugDescription)")
            }
        }
    }
}

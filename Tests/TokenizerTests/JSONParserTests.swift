import XCTest
@testable import Tokenizer

final class JSONParserTests: XCTestCase {
    private func parse(_ text: String) throws -> JSONValue {
        try JSONParser.parse(Data(text.utf8), file: "t.json")
    }

    private func string(_ text: String) throws -> String? {
        guard case .string(let value) = try parse(text) else { return nil }
        return value
    }

    func testStringsAndEscapes() throws {
        XCTAssertEqual(try string(#""plain Ġhello 你好""#), "plain Ġhello 你好")
        XCTAssertEqual(try string(#""a\"b\\c\/d\n\t\u00e9\u4f60\ud83d\ude00""#), "a\"b\\c/d\n\té你😀")
        XCTAssertEqual(try string(#""lone \ud800 half""#), "lone \u{FFFD} half")
        XCTAssertEqual(try string("\u{FEFF}\"bom\""), "bom")
    }

    func testNumbersAndStructure() throws {
        let value = try parse(#"{"a": [1, -2, 3.5, 1e30, true, false, null], "b": {}, "a": 0}"#)
        guard case .object(let object) = value, case .array(let items)? = object["a"] else { return XCTFail("\(value)") }
        XCTAssertEqual(object.keys, ["a", "b", "a"], "file order kept; the first duplicate wins on lookup")
        let numbers = items.compactMap { if case .number(let n) = $0 { return n } else { return nil } }
        XCTAssertEqual(numbers, [1, -2, 3.5, 1e30])
    }

    func testErrorsHavePositions() {
        let cases: [(String, Int, Int, String)] = [
            ("{\"a\": }", 1, 7, "unexpected character"),
            ("[1, 2", 1, 6, "unexpected end of file"),
            ("{\"a\": 1}\n x", 2, 2, "unexpected text after the document"),
            ("\"abc", 1, 5, "unterminated string"),
            ("\"\\q\"", 1, 4, "invalid escape"),
            ("[01x]", 1, 4, "expected ',' or ']'"),
            ("-", 1, 2, "expected digits"),
            (String(repeating: "[", count: 600), 1, 513, "nesting deeper than 512 levels"),
        ]
        for (text, line, column, reason) in cases {
            XCTAssertThrowsError(try parse(text)) { error in
                guard case .malformedJSON(let file, let l, let c, let r)? = error as? TokenizerError else {
                    return XCTFail("\(error)")
                }
                XCTAssertEqual(file, "t.json")
                XCTAssertEqual([l, c], [line, column], text)
                XCTAssertTrue(r.contains(reason), "\(r) for \(text)")
            }
        }
    }
}

@testable import Serving
import XCTest

/// Hermes-format tool calls (Qwen2.5 / Qwen3 templates) read back into OpenAI `tool_calls`, whole and streamed.
final class ToolCallTests: XCTestCase {
    let answer = """
    我来查一下。
    <tool_call>
    {"name": "get_weather", "arguments": {"city": "北京", "unit": "c"}}
    </tool_call>
    <tool_call>
    {"name": "get_time", "arguments": {}}
    </tool_call>
    """

    func testParse() throws {
        let (content, calls) = try XCTUnwrap(HermesToolCalls.parse(answer))
        XCTAssertEqual(content, "我来查一下。")
        XCTAssertEqual(calls.map(\.name), ["get_weather", "get_time"])
        let args = try JSONSerialization.jsonObject(with: Data(calls[0].arguments.utf8)) as? [String: String]
        XCTAssertEqual(args, ["city": "北京", "unit": "c"])
        XCTAssertEqual(calls[1].arguments, "{}")
        // Plain text stays text; a block that is not a call leaves the whole answer as text.
        XCTAssertEqual(HermesToolCalls.parse("没有调用")?.calls, [])
        XCTAssertNil(HermesToolCalls.parse("<tool_call>\nnot json\n</tool_call>"))
        XCTAssertNil(HermesToolCalls.parse("<tool_call>{\"name\": \"f\"}</tool_call> and then text"))
        // An unterminated last block (generation stopped at its end of turn) still parses.
        XCTAssertEqual(HermesToolCalls.parse("<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}")?.calls,
                       [.init(name: "f", arguments: #"{"a": 1}"#)])
        XCTAssertTrue(HermesToolCalls.templateUses("... <tool_call>\\n{{ tool_call | tojson }}\\n</tool_call> ..."))
        XCTAssertFalse(HermesToolCalls.templateUses("{{ messages }}"))
    }

    /// Text before the calls streams as it comes (a possible `<tool_call>` start held back); the calls at the end.
    func testSplitterStreamsTextAndHoldsCalls() {
        for size in [1, 2, 3, 5, 8, 1000] {
            var splitter = HermesToolCalls.Splitter()
            var streamed = ""
            var i = answer.startIndex
            while i < answer.endIndex {
                let j = answer.index(i, offsetBy: size, limitedBy: answer.endIndex) ?? answer.endIndex
                streamed += splitter.feed(String(answer[i..<j]))
                i = j
            }
            let (calls, rest) = splitter.finish()
            XCTAssertEqual(streamed, "我来查一下。\n", "pieces of \(size)")
            XCTAssertEqual(rest, "")
            XCTAssertEqual(calls.map(\.name), ["get_weather", "get_time"])
        }
        var plain = HermesToolCalls.Splitter()
        XCTAssertEqual(plain.feed("a <tool"), "a ")
        XCTAssertEqual(plain.feed("box> b"), "<toolbox> b")
        XCTAssertEqual(plain.finish().text, "")
        var broken = HermesToolCalls.Splitter()
        XCTAssertEqual(broken.feed("x<tool_call>oops"), "x")
        XCTAssertEqual(broken.finish().text, "<tool_call>oops", "calls that do not parse come back as text")
    }
}

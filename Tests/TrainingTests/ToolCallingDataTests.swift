import Foundation
import Jinja
import TestSupport
import Tokenizer
import Training
import XCTest

/// Tool-calling records (LLaMA-Factory's ShareGPT with function_call / observation turns and tools; OpenAI messages
/// with tool_calls and tool messages) rendered through the model's own template: the assistant's calls and answers
/// are trained, tool results are not.
final class ToolCallingDataTests: XCTestCase {
    func write(_ text: String) throws -> URL {
        let url = temporaryURL("tools").appendingPathExtension("jsonl")
        try Data(text.utf8).write(to: url)
        return url
    }

    let sharegpt = #"{"conversations": [{"from": "human", "value": "北京天气？"}, {"from": "function_call", "value": "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"北京\"}}"}, {"from": "observation", "value": "{\"temperature\": 21}"}, {"from": "gpt", "value": "北京现在21度。"}], "tools": "[{\"name\": \"get_weather\", \"description\": \"Weather of a city\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}}]"}"#
    let openai = #"{"messages": [{"role": "user", "content": "北京天气？"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"北京\"}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "{\"temperature\": 21}"}, {"role": "assistant", "content": "北京现在21度。"}], "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}"#

    func testBothFormatsParseIntoTheSameMessages() throws {
        let a = try DataLoader.load(try write(sharegpt)).conversations[0]
        let b = try DataLoader.load(try write(openai)).conversations[0]
        for c in [a, b] {
            let m = try XCTUnwrap(c.messages)
            XCTAssertEqual(m.map(\.role), [.user, .assistant, .tool, .assistant])
            XCTAssertEqual(m[1].toolCalls?.first?.name, "get_weather")
            let args = try JSONSerialization.jsonObject(with: Data(m[1].toolCalls![0].arguments.utf8)) as? [String: String]
            XCTAssertEqual(args, ["city": "北京"])
            XCTAssertNotNil(c.tools)
        }
    }

    func testCallsAndAnswersAreTrainedToolResultsAreNot() throws {
        let dir = modelFixture("tiny-qwen2")
        let base = try Tokenizer.load(directory: dir)
        var config = base.config
        config.chatTemplate = try String(contentsOf: fixtureURL("templates/qwen2.5.jinja"), encoding: .utf8)
        let tok = try Tokenizer(tokenizerJSON: Data(contentsOf: dir.appendingPathComponent("tokenizer.json")), config: config)
        let builder = ExampleBuilder(formatter: try ChatFormatter(template: .jinja, tokenizer: tok), maxLength: 4096)
        for record in [sharegpt, openai] {
            let c = try DataLoader.load(try write(record)).conversations[0]
            let t = try builder.formatter.trainingExample(builder.messages(c), tools: c.tools)
            let trained = tok.decode(zip(t.ids, t.trainable).filter(\.1).map(\.0))
            let untrained = tok.decode(zip(t.ids, t.trainable).filter { !$0.1 }.map(\.0))
            XCTAssertTrue(trained.contains("<tool_call>") && trained.contains("\"get_weather\"") && trained.contains("北京现在21度。"), trained)
            XCTAssertFalse(trained.contains("temperature"), trained)
            XCTAssertTrue(untrained.contains("temperature") && untrained.contains("# Tools"), untrained)
            // The prompt for the final answer ends where the assistant's turn starts.
            XCTAssertTrue(tok.decode(try builder.promptIDs(c)).hasSuffix("<|im_start|>assistant\n"))
        }
        // Built-in formats refuse tool turns with a reason.
        let chatml = ExampleBuilder(formatter: try ChatFormatter(template: .chatml, tokenizer: tok), maxLength: 4096)
        XCTAssertThrowsError(try chatml.build(try DataLoader.load(try write(openai)).conversations)) {
            XCTAssertTrue("\($0)".contains("record 1") && "\($0)".contains("--template auto"), "\($0)")
        }
    }

    func testBadToolRecordsNameTheRecordAndField() throws {
        let badCall = #"{"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "not json"}, {"from": "gpt", "value": "a"}]}"#
        XCTAssertThrowsError(try DataLoader.load(try write(badCall))) { XCTAssertTrue("\($0)".contains("record 1") && "\($0)".contains("function_call"), "\($0)") }
        let endsWithTool = #"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {}}}]}, {"role": "tool", "content": "r"}]}"#
        XCTAssertThrowsError(try DataLoader.load(try write(endsWithTool))) { XCTAssertTrue("\($0)".contains("last message must be the assistant"), "\($0)") }
        let badTools = #"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "tools": "{oops"}"#
        XCTAssertThrowsError(try DataLoader.load(try write(badTools))) { XCTAssertTrue("\($0)".contains("tools"), "\($0)") }
    }
}

/// LLaMA-Factory data folders: `dataset_info.json` entries with formatting, columns and tags.
final class DatasetInfoTests: XCTestCase {
    func testColumnsAndTagsMapOntoOurFormats() throws {
        let dir = temporaryURL("lf-data")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let info = #"""
        {"zh_demo": {"file_name": "zh.json", "columns": {"prompt": "q", "query": "ctx", "response": "a"}},
         "chat_demo": {"file_name": "chat.jsonl", "formatting": "sharegpt",
                       "columns": {"messages": "msgs", "system": "sys", "tools": "fns"},
                       "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                                "observation_tag": "tool", "function_tag": "call"}},
         "remote": {"hf_hub_url": "org/data"}}
        """#
        try Data(info.utf8).write(to: dir.appendingPathComponent("dataset_info.json"))
        try Data(#"[{"q": "板蓝根颗粒的功效？", "ctx": "", "a": "清热解毒。"}]"#.utf8).write(to: dir.appendingPathComponent("zh.json"))
        let chat = #"""
        {"sys": "你是助手", "msgs": [{"role": "user", "content": "天气？"}, {"role": "assistant", "content": "晴。"}], "fns": ""}
        {"msgs": [{"role": "user", "content": "北京？"}, {"role": "call", "content": "{\"name\": \"w\", \"arguments\": {\"c\": \"北京\"}}"}, {"role": "tool", "content": "21"}, {"role": "assistant", "content": "21度"}], "fns": "[{\"name\": \"w\", \"parameters\": {}}]"}
        """#
        try Data(chat.utf8).write(to: dir.appendingPathComponent("chat.jsonl"))
        let a = try DataLoader.load(dataset: "zh_demo", directory: dir)
        XCTAssertEqual(a.format, .alpaca)
        XCTAssertEqual(a.conversations[0].turns[0].instruction, "板蓝根颗粒的功效？")
        XCTAssertEqual(a.conversations[0].turns[0].answer, "清热解毒。")
        let b = try DataLoader.load(dataset: "chat_demo", directory: dir)
        XCTAssertEqual(b.conversations[0].system, "你是助手")
        XCTAssertEqual(b.conversations[0].turns.first?.answer, "晴。")
        XCTAssertEqual(b.conversations[1].messages?.map(\.role), [.user, .assistant, .tool, .assistant])
        XCTAssertEqual(b.conversations[1].messages?[1].toolCalls?.first?.name, "w")
        XCTAssertNotNil(b.conversations[1].tools)
        XCTAssertThrowsError(try DataLoader.load(dataset: "nope", directory: dir)) {
            XCTAssertTrue("\($0)".contains("no data set named 'nope'") && "\($0)".contains("zh_demo"), "\($0)")
        }
        XCTAssertThrowsError(try DataLoader.load(dataset: "remote", directory: dir)) { XCTAssertTrue("\($0)".contains("hf_hub_url"), "\($0)") }
    }
}

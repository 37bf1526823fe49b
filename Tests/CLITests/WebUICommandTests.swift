import Foundation
import TestSupport
import XCTest

/// `peft preview` (what training sees, as the web UI shows it) and `peft webui`'s start-up refusals.
final class WebUICommandTests: XCTestCase {
    func testPreviewMarksTheAnswerTokensAsTrained() throws {
        let dir = try TemporaryDirectory("preview")
        defer { dir.cleanup() }
        let data = dir.path("d.jsonl")
        try Data(#"""
        {"instruction": "板蓝根有什么用", "output": "清热解毒"}
        {"instruction": "second", "input": "x", "output": "another answer"}
        """#.utf8).write(to: URL(fileURLWithPath: data))
        let r = try PeftCommand.run(["preview", "--model", modelFixture("tiny-qwen2").path, "--data", data, "--count", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(json["records"] as? Int, 2)
        XCTAssertEqual(json["examples"] as? Int, 2)
        let samples = try XCTUnwrap(json["samples"] as? [[String: Any]])
        XCTAssertEqual(samples.count, 1)
        let segments = try XCTUnwrap(samples[0]["segments"] as? [[String: Any]])
        let trained = segments.filter { $0["trained"] as? Bool == true }.map { $0["text"] as! String }.joined()
        let prompt = segments.filter { $0["trained"] as? Bool == false }.map { $0["text"] as! String }.joined()
        XCTAssertTrue(trained.hasPrefix("清热解毒"), trained)
        XCTAssertTrue(prompt.contains("板蓝根有什么用") && !prompt.contains("清热解毒"), prompt)
        XCTAssertGreaterThan(json["trained_tokens"] as? Int ?? 0, samples[0]["trained_tokens"] as? Int ?? .max, "the counts cover every record")
        // The text form marks the same span.
        let text = try PeftCommand.run(["preview", "--model", modelFixture("tiny-qwen2").path, "--data", data, "--count", "1"])
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("[[清热解毒"), text.stdout)
    }

    func testPreviewNamesTheBrokenRecordAndTheBrokenCatalog() throws {
        let dir = try TemporaryDirectory("preview-bad")
        defer { dir.cleanup() }
        let data = dir.path("d.jsonl")
        try Data("{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\"}\n".utf8).write(to: URL(fileURLWithPath: data))
        let r = try PeftCommand.run(["preview", "--model", modelFixture("tiny-qwen2").path, "--data", data])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("d.jsonl") && r.stderr.contains("record 2"), r.stderr)
        try Data("{\"a\": {\"file_name\": \"a.json\"},\n  \"b\" {}}".utf8).write(to: URL(fileURLWithPath: dir.path("dataset_info.json")))
        let list = try PeftCommand.run(["preview", "--list", "--dataset-dir", dir.url.path])
        XCTAssertNotEqual(list.status, 0)
        XCTAssertTrue(list.stderr.contains("dataset_info.json: malformed JSON at line 2, column 7: expected ':' after a key"), list.stderr)
    }

    func testWebUIOnAnotherAddressNeedsAKey() throws {
        let dir = try TemporaryDirectory("webui-cli")
        defer { dir.cleanup() }
        let r = try PeftCommand.run(["webui", "--host", "0.0.0.0", "--port", "0", "--workdir", dir.url.path], environment: ["PEFT_API_KEY": ""])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--api-key"), r.stderr)
        XCTAssertFalse(r.stderr.contains("open http"), "nothing listens")
        let jobs = try PeftCommand.run(["webui", "--max-jobs", "0"])
        XCTAssertNotEqual(jobs.status, 0)
        XCTAssertTrue(jobs.stderr.contains("--max-jobs"), jobs.stderr)
    }
}

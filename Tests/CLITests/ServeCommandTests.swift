import Foundation
import TestSupport
import XCTest

/// `peft serve` as a process: it listens where it says, answers, and on SIGINT/SIGTERM stops taking requests,
/// finishes the one running and exits 0.
final class ServeCommandTests: XCTestCase {
    func testSignalFinishesTheRunningRequestAndExitsZero() throws {
        for signal in [SIGTERM, SIGINT] {
            final class Box: @unchecked Sendable { var fd: Int32 = -1; var head = "" }
            let box = Box()
            let result = try PeftCommand.run(
                ["serve", "--model", modelFixture("tiny-qwen2").path, "--port", "0", "--max-model-len", "128",
                 "--adapter", "lora=\(fixtureURL("adapters/tiny-qwen2-lora-all").path)"],
                interruptWhen: { err in
                    guard let r = err.range(of: #"http://127\.0\.0\.1:(\d+)/v1"#, options: .regularExpression) else { return false }
                    let port = Int(err[r].dropFirst("http://127.0.0.1:".count).dropLast(3))!
                    box.fd = rawPost(port: port, path: "/v1/completions",
                                     body: #"{"model": "lora", "prompt": "板蓝根", "max_tokens": 110, "temperature": 0, "stream": true, "ignore_eos": true, "stream_options": {"include_usage": true}}"#,
                                     apiKey: nil)
                    // The answer has begun streaming when the signal arrives.
                    var buffer = [UInt8](repeating: 0, count: 64)
                    let n = recv(box.fd, &buffer, 64, 0)
                    box.head = String(decoding: buffer[0..<max(0, n)], as: UTF8.self)
                    return true
                }, signal: signal)
            XCTAssertEqual(result.status, 0, result.stderr)
            XCTAssertFalse(result.signaled)
            XCTAssertTrue(result.stderr.contains("peft serve: stopped"), result.stderr)
            let answer = box.head + readAll(box.fd)
            XCTAssertTrue(answer.hasPrefix("HTTP/1.1 200"), answer)
            XCTAssertTrue(answer.contains(#""finish_reason":"length""#), answer)
            XCTAssertTrue(answer.contains("data: [DONE]"), answer)
            XCTAssertTrue(answer.contains(#""completion_tokens":110"#), answer)
        }
    }

    /// Bad start-up input is an error that names it, before anything listens.
    func testBadAdaptersAndFlagsAreRefused() throws {
        let model = modelFixture("tiny-qwen2").path
        let missing = try PeftCommand.run(["serve", "--model", model, "--port", "0", "--adapter", "x=/nonexistent/adapter"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/adapter"), missing.stderr)
        let wrongBase = try PeftCommand.run(["serve", "--model", model, "--port", "0",
                                             "--adapter", "x=\(fixtureURL("methods/tiny-llama-ia3/adapter").path)"])
        XCTAssertNotEqual(wrongBase.status, 0, wrongBase.stderr)
        XCTAssertTrue(wrongBase.stderr.contains("--adapter x="), wrongBase.stderr)
        let twice = try PeftCommand.run(["serve", "--model", model, "--port", "0",
                                         "--adapter", "a=\(fixtureURL("adapters/tiny-qwen2-lora-all").path)",
                                         "--adapter", "a=\(fixtureURL("methods/tiny-qwen2-ia3/adapter").path)"])
        XCTAssertNotEqual(twice.status, 0)
        XCTAssertTrue(twice.stderr.contains("already loaded"), twice.stderr)
        let batch = try PeftCommand.run(["serve", "--model", model, "--max-batch", "0"])
        XCTAssertNotEqual(batch.status, 0)
        XCTAssertTrue(batch.stderr.contains("--max-batch"), batch.stderr)
        XCTAssertFalse(missing.stderr.contains("listening") || wrongBase.stderr.contains("listening"))
    }
}

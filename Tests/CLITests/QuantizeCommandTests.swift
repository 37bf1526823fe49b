import Foundation
import TestSupport
import XCTest

/// `peft quantize` and GGUF / quantized models through the executable.
final class QuantizeCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2").path

    override func setUpWithError() throws {
        tmp = try TemporaryDirectory("cli-quant")
        let lines = [("你好", "你好！"), ("2+2?", "4")].map { "{\"instruction\": \"\($0.0)\", \"input\": \"\", \"output\": \"\($0.1)\"}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("train.jsonl"))
    }

    override func tearDown() { tmp.cleanup() }

    func testQuantizeThenRunTrainAndEvaluateFromGGUF() throws {
        let gguf = tmp.path("tiny-q8_0.gguf")
        let q = try PeftCommand.run(["quantize", "--model", model, "--type", "q8_0", "--output", gguf])
        XCTAssertEqual(q.status, 0, q.stderr)
        let flags = ["--prompt", "hi", "--max-new-tokens", "6", "--temperature", "0", "--repetition-penalty", "1",
                     "--top-k", "0", "--top-p", "1", "--dtype", "float32", "--json"]
        let fromFile = try PeftCommand.run(["generate", "--model", gguf] + flags)
        XCTAssertEqual(fromFile.status, 0, fromFile.stderr)
        let inMemory = try PeftCommand.run(["generate", "--model", model, "--quantize", "q8_0"] + flags)
        func ids(_ r: CommandResult) throws -> [Int] {
            try XCTUnwrap((JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["token_ids"] as? [Int])
        }
        XCTAssertEqual(try ids(fromFile), try ids(inMemory))
        // info: bits per weight of the file, and of every format for the directory.
        let info = try PeftCommand.run(["info", "--model", gguf, "--json"])
        XCTAssertEqual(info.status, 0, info.stderr)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((o["tensor_types"] as? [String: Int])?["q8_0"], 15)
        XCTAssertGreaterThan(o["bits_per_weight"] as? Double ?? 0, 8.5)
        let dirInfo = try PeftCommand.run(["info", "--model", model, "--json"])
        let memory = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(dirInfo.stdout.utf8)) as? [String: Any])?["memory_bytes"] as? [String: Int])
        XCTAssertLessThan(memory["q4_0"] ?? .max, memory["q8_0"] ?? 0)
        XCTAssertLessThan(memory["q8_0"] ?? .max, memory["bfloat16"] ?? 0)
        // QLoRA on the GGUF base: an ordinary PEFT adapter that the original model takes too.
        let adapter = tmp.path("adapter")
        let t = try PeftCommand.run(["train", "--model", gguf, "--data", tmp.path("train.jsonl"), "--output", adapter,
                                     "--max-steps", "2", "--batch-size", "2"])
        XCTAssertEqual(t.status, 0, t.stderr)
        let e = try PeftCommand.run(["eval", "--model", model, "--adapter", adapter, "--data", tmp.path("train.jsonl"), "--json"])
        XCTAssertEqual(e.status, 0, e.stderr)
        let qt = try PeftCommand.run(["train", "--model", model, "--quantize", "q4_0", "--data", tmp.path("train.jsonl"),
                                      "--output", tmp.path("qlora"), "--max-steps", "2", "--batch-size", "2"])
        XCTAssertEqual(qt.status, 0, qt.stderr)
    }

    func testLoRAOnAGPTQCheckpoint() throws {
        for name in ["tiny-qwen2-gptq", "tiny-qwen2-gptq-actorder"] {
            let out = tmp.path("\(name)-lora")
            let t = try PeftCommand.run(["train", "--model", modelFixture(name).path, "--data", tmp.path("train.jsonl"),
                                         "--output", out, "--max-steps", "2", "--batch-size", "2"])
            XCTAssertEqual(t.status, 0, t.stderr)
            let g = try PeftCommand.run(["generate", "--model", modelFixture(name).path, "--adapter", out,
                                         "--prompt", "hi", "--max-new-tokens", "3", "--json"])
            XCTAssertEqual(g.status, 0, g.stderr)
        }
    }

    func testBadQuantizeInput() throws {
        func fails(_ args: [String], _ fragment: String, line: UInt = #line) throws {
            let r = try PeftCommand.run(args)
            XCTAssertNotEqual(r.status, 0, line: line)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr, line: line)
        }
        try fails(["quantize", "--model", model, "--type", "q3_k", "--output", tmp.path("x.gguf")], "q3_k")
        try fails(["quantize", "--model", model, "--type", "q8_0", "--output", tmp.path("x.bin")], "must end in .gguf")
        try fails(["quantize", "--model", modelFixture("tiny-baichuan2").path, "--type", "q8_0", "--output", tmp.path("x.gguf")],
                  "only to 32-layer")
        try fails(["train", "--model", model, "--quantize", "q8_0", "--method", "full", "--data", tmp.path("train.jsonl"),
                   "--output", tmp.path("f")], "--quantize keeps the base frozen")
        try Data("GGUF garbage".utf8).write(to: tmp.url.appendingPathComponent("bad.gguf"))
        try fails(["generate", "--model", tmp.path("bad.gguf"), "--prompt", "hi"], "bad.gguf")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("x.gguf")))
    }
}

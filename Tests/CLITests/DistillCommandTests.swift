import Foundation
import TestSupport
import XCTest

/// `peft distill` and `peft eval --teacher` through the executable.
final class DistillCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let student = modelFixture("tiny-qwen2").path
    let teacher = modelFixture("tiny-qwen2-teacher-v400").path

    override func setUpWithError() throws {
        tmp = try TemporaryDirectory("cli-distill")
        let lines = [("你好", "你好！"), ("2+2?", "4"), ("hello", "hi there"), ("colour?", "blue")]
            .map { "{\"instruction\": \"\($0.0)\", \"input\": \"\", \"output\": \"\($0.1)\"}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("d.jsonl"))
    }

    override func tearDown() { tmp.cleanup() }

    func logEntries(_ dir: String) throws -> [[String: Any]] {
        try String(contentsOfFile: dir + "/train_log.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .filter { $0["type"] as? String == "train" }
    }

    func testOnPolicyDistillationThenEvalAgainstTheTeacher() throws {
        let out = tmp.path("student")
        let r = try PeftCommand.run(["distill", "--teacher", teacher, "--model", student, "--data", tmp.path("d.jsonl"),
                                     "--output", out, "--max-steps", "3", "--batch-size", "2", "--lmbda", "1",
                                     "--max-new-tokens", "6", "--ce-weight", "0.1", "--temperature", "1.5", "--dtype", "float32"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("comparing the first 384 logits"), r.stderr)
        let entries = try logEntries(out)
        XCTAssertEqual(entries.count, 3)
        for e in entries {
            XCTAssertEqual(e["on_policy"] as? Bool, true)
            let d = try XCTUnwrap(e["distill_loss"] as? Double), ce = try XCTUnwrap(e["ce_loss"] as? Double)
            XCTAssertEqual(e["loss"] as? Double ?? .nan, d + 0.1 * ce, accuracy: 1e-9 * max(1, d))
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/adapter_model.safetensors"))
        // Off-policy: the reference answers.
        let off = tmp.path("off")
        let o = try PeftCommand.run(["distill", "--teacher", teacher, "--model", student, "--data", tmp.path("d.jsonl"),
                                     "--output", off, "--max-steps", "2", "--batch-size", "2", "--beta", "0", "--dtype", "float32"])
        XCTAssertEqual(o.status, 0, o.stderr)
        for e in try logEntries(off) {
            XCTAssertEqual(e["on_policy"] as? Bool, false)
            XCTAssertEqual(e["loss"] as? Double ?? .nan, e["distill_loss"] as? Double ?? 0, accuracy: 1e-12)
        }
        // eval --teacher: the same divergence on held-out data, with and without the adapter.
        func distillLoss(_ extra: [String]) throws -> Double {
            let e = try PeftCommand.run(["eval", "--model", student, "--data", tmp.path("d.jsonl"), "--teacher", teacher,
                                         "--beta", "0.5", "--temperature", "1.5", "--json"] + extra)
            XCTAssertEqual(e.status, 0, e.stderr)
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Any])
            XCTAssertNotNil(o["loss"])
            return try XCTUnwrap(o["distill_loss"] as? Double)
        }
        let base = try distillLoss([]), tuned = try distillLoss(["--adapter", out])
        XCTAssertGreaterThan(base, 0)
        XCTAssertNotEqual(base, tuned)
    }

    /// A GGUF teacher (llama.cpp's block format) and a teacher quantized at load.
    func testQuantizedTeachers() throws {
        let gguf = tmp.path("teacher.gguf")
        let q = try PeftCommand.run(["quantize", "--model", teacher, "--type", "q8_0", "--output", gguf])
        XCTAssertEqual(q.status, 0, q.stderr)
        for (name, args) in [("gguf", ["--teacher", gguf]), ("q4_0", ["--teacher", teacher, "--teacher-quantize", "q4_0"])] {
            let out = tmp.path("s-\(name)")
            let r = try PeftCommand.run(["distill", "--model", student, "--data", tmp.path("d.jsonl"), "--output", out,
                                         "--max-steps", "2", "--batch-size", "2", "--dtype", "float32"] + args)
            XCTAssertEqual(r.status, 0, "\(name): \(r.stderr)")
            let entries = try logEntries(out)
            XCTAssertEqual(entries.count, 2, name)
            XCTAssertTrue(entries.allSatisfy { ($0["distill_loss"] as? Double ?? -1) > 0 }, name)
        }
    }

    func testRefusals() throws {
        func fails(_ args: [String], _ fragment: String, line: UInt = #line) throws {
            let r = try PeftCommand.run(args)
            XCTAssertNotEqual(r.status, 0, line: line)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr, line: line)
        }
        let base = ["distill", "--model", student, "--data", tmp.path("d.jsonl"), "--output", tmp.path("x"), "--max-steps", "1"]
        try fails(base + ["--teacher", modelFixture("tiny-llama-sp").path], "shared tokenizer")
        try fails(base + ["--teacher", teacher, "--beta", "1.5"], "--beta")
        try fails(base + ["--teacher", teacher, "--temperature", "0"], "--temperature")
        try fails(base + ["--teacher", teacher, "--lmbda", "2"], "--lmbda")
        try fails(["eval", "--model", student, "--data", tmp.path("d.jsonl"), "--teacher", teacher, "--generate"], "--generate")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("x/adapter_model.safetensors")))
    }
}

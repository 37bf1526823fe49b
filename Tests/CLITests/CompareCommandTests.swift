import Foundation
import TestSupport
import XCTest

/// `peft compare` through the executable: a comparison of two methods, a method that fails alone, Ctrl-C, bad input.
final class CompareCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2").path

    override func setUpWithError() throws {
        tmp = try TemporaryDirectory("cli-compare")
        let records = [("你好", "你好！"), ("2+2?", "4"), ("hello", "hi there"), ("再见", "再见！"), ("谢谢", "不客气。")]
        let lines = records.map { "{\"instruction\": \"\($0.0)\", \"input\": \"\", \"output\": \"\($0.1)\"}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("train.jsonl"))
    }

    override func tearDown() { tmp.cleanup() }

    func compare(_ extra: [String], output: String, interruptWhen: ((String) -> Bool)? = nil) throws -> CommandResult {
        try PeftCommand.run(["compare", "--model", model, "--data", tmp.path("train.jsonl"), "--output", output,
                             "--max-steps", "2", "--questions", "2", "--max-new-tokens", "3", "--dtype", "float32"] + extra,
                            interruptWhen: interruptWhen)
    }

    func report(_ dir: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/compare.json"))) as? [String: Any])
    }

    func testTwoMethodsSideBySide() throws {
        let out = tmp.path("cmp")
        let r = try compare(["--methods", "lora,prefix,full"], output: out)
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try report(out)
        let methods = try XCTUnwrap(o["methods"] as? [[String: Any]])
        XCTAssertEqual(methods.map { $0["method"] as? String }, ["lora", "prefix", "full"])
        for m in methods {
            XCTAssertEqual(m["status"] as? String, "done", "\(m)")
            XCTAssertGreaterThan(m["trainableParameters"] as? Int ?? 0, 0)
            XCTAssertGreaterThan(m["peakRSSBytes"] as? Int ?? 0, 0)
            XCTAssertGreaterThan(m["bytesOnDisk"] as? Int ?? 0, 0)
            XCTAssertEqual((m["trainLoss"] as? [Any])?.count, 2)
            XCTAssertEqual((m["samples"] as? [Any])?.count, 1, "two samples at most, one question here")
            XCTAssertNotNil((m["after"] as? [String: Any])?["metrics"])
        }
        XCTAssertEqual((methods[2]["sharePercent"] as? Double) ?? 0, 100, accuracy: 1e-9, "full trains everything")
        XCTAssertNotNil((o["before"] as? [String: Any])?["loss"])
        // The held-out questions are the data's last tenth (1 record of 5), never trained on.
        XCTAssertEqual(o["questions"] as? Int, 1)
        let html = try String(contentsOfFile: "\(out)/compare.html", encoding: .utf8)
        for fragment in ["<svg", "Training loss of every method", "Trainable parameters against quality", "prefix", "full"] {
            XCTAssertTrue(html.contains(fragment), fragment)
        }
        XCTAssertFalse(html.contains("http"), "self-contained")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/compare.md"))
        XCTAssertTrue(r.stdout.contains("| lora | done |"), r.stdout)
    }

    /// --benchmark: the base and every trained state scored on MMLU's layout; a column in the tables.
    func testBenchmarkColumn() throws {
        let out = tmp.path("cmp-bench")
        let r = try compare(["--methods", "lora", "--benchmark", "mmlu", "--benchmark-dir", fixtureURL("benchmarks/mmlu").path,
                             "--n-shot", "1"], output: out)
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try report(out)
        XCTAssertEqual(o["benchmark"] as? String, "mmlu")
        let before = try XCTUnwrap((o["before"] as? [String: Any])?["benchmarkAverage"] as? Double)
        XCTAssertTrue((0...1).contains(before))
        let methods = try XCTUnwrap(o["methods"] as? [[String: Any]])
        let after = try XCTUnwrap((methods[0]["after"] as? [String: Any])?["benchmarkAverage"] as? Double)
        XCTAssertTrue((0...1).contains(after))
        XCTAssertNotNil(((methods[0]["after"] as? [String: Any])?["benchmarkCategories"] as? [String: Double])?["STEM"])
        XCTAssertTrue(r.stdout.contains("MMLU %"), r.stdout)
        let html = try String(contentsOfFile: "\(out)/compare.html", encoding: .utf8)
        XCTAssertTrue(html.contains("MMLU %"))
        // A bad benchmark folder fails before any training.
        let bad = try compare(["--methods", "lora", "--benchmark", "mmlu", "--benchmark-dir", tmp.path("nothing")], output: tmp.path("cmp-bad"))
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("no dev/ folder"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("cmp-bad/runs")))
    }

    /// --stage: every method trains on preference pairs and is scored with `peft eval --stage`; the tables show
    /// the preference loss and TRL's rewards (KL instead of accuracy for KTO).
    func testPreferenceComparison() throws {
        var lines: [String] = []
        for i in 0..<10 {
            lines.append("{\"instruction\": \"问题 \(i)\", \"input\": \"\", \"chosen\": \"答案 \(i * 7)\", \"rejected\": \"不\"}")
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("pairs.jsonl"))
        for (stage, third) in [("dpo", "rewards/accuracies"), ("kto", "kl")] {
            let out = tmp.path("cmp-\(stage)")
            let r = try PeftCommand.run(["compare", "--model", model, "--data", tmp.path("pairs.jsonl"), "--output", out,
                                         "--max-steps", "2", "--batch-size", "2", "--dtype", "float32", "--methods", "lora,ia3",
                                         "--stage", stage])
            XCTAssertEqual(r.status, 0, r.stderr)
            let o = try report(out)
            XCTAssertEqual(o["stage"] as? String, stage)
            let before = try XCTUnwrap((o["before"] as? [String: Any])?["preference"] as? [String: Double])
            // The base model is its own reference: every reward is 0.
            XCTAssertEqual(before["rewards/margins"] ?? .nan, 0, accuracy: 1e-9)
            let methods = try XCTUnwrap(o["methods"] as? [[String: Any]])
            XCTAssertEqual(methods.count, 2)
            for m in methods {
                XCTAssertEqual(m["status"] as? String, "done", "\(m)")
                let after = try XCTUnwrap((m["after"] as? [String: Any])?["preference"] as? [String: Double], "\(m)")
                for key in ["loss", "rewards/chosen", "rewards/rejected", third, "rewards/margins", "logps/chosen", "logps/rejected"] {
                    XCTAssertNotNil(after[key], "\(stage) \(key)")
                }
                XCTAssertNotEqual(after["rewards/margins"] ?? 0, 0, "trained away from the reference")
            }
            XCTAssertTrue(r.stdout.contains("\(stage) loss") && r.stdout.contains(third), r.stdout)
            let html = try String(contentsOfFile: "\(out)/compare.html", encoding: .utf8)
            XCTAssertTrue(html.contains("reward margin after"))
        }
    }

    func testAFailingMethodIsReportedAndTheOthersFinish() throws {
        // A copy of the model with a 70-token context: the examples fit, but not behind prompt tuning's 20 virtual
        // tokens, so prompt fails and LoRA trains.
        let small = try tmp.copyModel("tiny-qwen2", as: "short-context")
        let configURL = small.appendingPathComponent("config.json")
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        config["max_position_embeddings"] = 70
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let out = tmp.path("fail")
        let r = try PeftCommand.run(["compare", "--model", small.path, "--data", tmp.path("train.jsonl"), "--output", out,
                                     "--methods", "prompt,lora", "--max-steps", "1", "--questions", "1", "--max-new-tokens", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let methods = try XCTUnwrap(try report(out)["methods"] as? [[String: Any]])
        XCTAssertEqual(methods[0]["status"] as? String, "failed")
        XCTAssertTrue((methods[0]["message"] as? String ?? "").contains("virtual tokens"), "\(methods[0])")
        XCTAssertEqual(methods[1]["status"] as? String, "done")
        XCTAssertTrue(try String(contentsOfFile: "\(out)/compare.html", encoding: .utf8).contains("failed"))
    }

    func testInterruptedComparisonLeavesAPartialReport() throws {
        let out = tmp.path("int")
        let r = try compare(["--methods", "lora,ia3", "--max-steps", "100000"], output: out,
                            interruptWhen: { $0.contains("[1/2] lora") })
        XCTAssertEqual(r.status, 130, r.stderr)
        let methods = try XCTUnwrap(try report(out)["methods"] as? [[String: Any]])
        XCTAssertEqual(methods.map { $0["status"] as? String }, ["interrupted", "pending"])
        XCTAssertTrue(try String(contentsOfFile: "\(out)/compare.html", encoding: .utf8).contains("partial"))
    }

    func testBadInput() throws {
        let r = try compare(["--methods", "lora,loha"], output: tmp.path("bad"))
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("unknown method 'loha' in --methods"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("bad")))
        let other = try tmp.copyModel("tiny-qwen2", as: "occupied")
        let r2 = try compare(["--methods", "lora"], output: other.path)
        XCTAssertNotEqual(r2.status, 0)
        XCTAssertTrue(r2.stderr.contains("holds something else than an earlier comparison"), r2.stderr)
    }
}

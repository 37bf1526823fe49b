import Foundation
import TestSupport
import XCTest

/// `peft train --stage dpo|orpo|simpo|kto` and `peft eval --stage` through the executable, with every pair format and
/// every KTO format.
final class PreferenceCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2").path

    override func setUpWithError() throws {
        tmp = try TemporaryDirectory("cli-pref")
        let records = [
            // LLaMA-Factory Alpaca ranking.
            #"{"instruction": "2+2?", "input": "", "chosen": "4", "rejected": "5"}"#,
            // LLaMA-Factory ShareGPT ranking.
            #"{"conversations": [{"from": "human", "value": "你好"}], "chosen": {"from": "gpt", "value": "你好！"}, "rejected": {"from": "gpt", "value": "走开"}}"#,
            // TRL, plain strings.
            #"{"prompt": "hello", "chosen": "hi there", "rejected": "no"}"#,
            // TRL, message lists.
            #"{"prompt": [{"role": "user", "content": "colour?"}], "chosen": [{"role": "assistant", "content": "blue"}], "rejected": [{"role": "assistant", "content": "loud"}]}"#,
            // TRL, implicit prompt.
            #"{"chosen": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}], "rejected": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "3"}]}"#,
        ]
        try Data((records.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("pairs.jsonl"))
        let unpaired = [
            // LLaMA-Factory: Alpaca and ShareGPT rows with kto_tag.
            #"{"instruction": "2+2?", "input": "", "output": "4", "kto_tag": true}"#,
            #"{"instruction": "2+2?", "input": "", "output": "5", "kto_tag": false}"#,
            #"{"conversations": [{"from": "human", "value": "你好"}, {"from": "gpt", "value": "你好！"}], "kto_tag": true}"#,
            // TRL: prompt / completion / label, plain strings and message lists.
            #"{"prompt": "hello", "completion": "go away", "label": false}"#,
            #"{"prompt": [{"role": "user", "content": "colour?"}], "completion": [{"role": "assistant", "content": "blue"}], "label": true}"#,
            #"{"prompt": [{"role": "user", "content": "colour?"}], "completion": [{"role": "assistant", "content": "loud"}], "label": false}"#,
        ]
        try Data((unpaired.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("kto.jsonl"))
    }

    override func tearDown() { tmp.cleanup() }

    func entries(_ dir: String) throws -> [[String: Any]] {
        try String(contentsOfFile: dir + "/train_log.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// `peft train --stage stage` for 3 steps on `data` into `out`, evaluated on the same file: its stderr, its whole
    /// log and the log's step entries, once it has succeeded and logged 3 steps.
    func trainStage(_ stage: String, data: String, out: String, batchSize: Int, _ extra: [String],
                    line: UInt = #line) throws -> (stderr: String, log: [[String: Any]], steps: [[String: Any]]) {
        let r = try PeftCommand.run(["train", "--model", model, "--data", tmp.path(data), "--output", out,
                                     "--stage", stage, "--max-steps", "3", "--batch-size", "\(batchSize)", "--lr", "0.02",
                                     "--dtype", "float32", "--eval-data", tmp.path(data)] + extra)
        XCTAssertEqual(r.status, 0, "\(stage) \(data): \(r.stderr)", line: line)
        let log = try entries(out)
        let steps = log.filter { $0["type"] as? String == "train" }
        XCTAssertEqual(steps.count, 3, "\(stage) \(data)", line: line)
        return (r.stderr, log, steps)
    }

    /// `peft report` of the run in `out`: its Markdown report, once it has succeeded.
    func report(_ out: String, line: UInt = #line) throws -> String {
        let rep = try PeftCommand.run(["report", "--log", out + "/train_log.jsonl", "--output", out + "/report.html"])
        XCTAssertEqual(rep.status, 0, rep.stderr, line: line)
        return try String(contentsOfFile: out + "/report.md", encoding: .utf8)
    }

    func testEveryStageTrainsAndEvaluates() throws {
        for (stage, extra) in [("dpo", ["--pref-loss", "sigmoid"]), ("dpo", ["--pref-loss", "ipo"]), ("orpo", []),
                               ("simpo", ["--pref-beta", "2", "--simpo-gamma", "0.5"])] {
            let out = tmp.path("\(stage)-\(extra.last ?? "")")
            let (stderr, log, train) = try trainStage(stage, data: "pairs.jsonl", out: out, batchSize: 2, extra)
            XCTAssertTrue(stderr.contains("5 preference pairs"), stderr)
            for e in train {
                for key in ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"] {
                    XCTAssertNotNil(e[key] as? Double, "\(stage) \(key) in \(e)")
                }
            }
            XCTAssertNotNil(log.first { $0["type"] as? String == "eval" }?["eval_loss"] as? Double, stage)
            // The report shows the rewards by step.
            let md = try report(out)
            XCTAssertTrue(md.contains("## Preference rewards") && md.contains("rewards/accuracies: 3 points"), md)
            XCTAssertTrue(try String(contentsOfFile: out + "/report.html", encoding: .utf8).contains("Preference rewards by step"))
            // The same loss and rewards on held-out pairs without training.
            let e = try PeftCommand.run(["eval", "--model", model, "--adapter", out, "--data", tmp.path("pairs.jsonl"),
                                         "--stage", stage, "--json", "--dtype", "float32"] + extra)
            XCTAssertEqual(e.status, 0, e.stderr)
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(o["pairs"] as? Int, 5)
            XCTAssertNotNil(o["rewards/accuracies"] as? Double)
            XCTAssertTrue((o["loss"] as? Double ?? .nan).isFinite)
        }
        // Without an adapter the policy is its own reference: DPO's sigmoid loss is log 2.
        let base = try PeftCommand.run(["eval", "--model", model, "--data", tmp.path("pairs.jsonl"), "--stage", "dpo", "--json"])
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(base.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(o["loss"] as? Double ?? 0, log(2), accuracy: 1e-9)
    }

    func testKTOTrainsAndEvaluatesEveryFormat() throws {
        for (data, count, desirable) in [("kto.jsonl", 6, 3), ("pairs.jsonl", 10, 5)] {
            let out = tmp.path("kto-\(data)")
            let (stderr, log, train) = try trainStage("kto", data: data, out: out, batchSize: 3, ["--undesirable-weight", "1.2"])
            XCTAssertTrue(stderr.contains("(\(desirable) desirable answers, \(count - desirable) undesirable)"), stderr)
            for e in train {
                for key in ["loss", "kl"] { XCTAssertNotNil(e[key] as? Double, "\(data) \(key) in \(e)") }
                // A step's means cover the kinds of answer it held (as TRL logs them); a margin needs both.
                XCTAssertEqual(e["rewards/chosen"] != nil, e["logps/chosen"] != nil)
                XCTAssertEqual(e["rewards/rejected"] != nil, e["logps/rejected"] != nil)
                XCTAssertEqual(e["rewards/margins"] != nil, e["rewards/chosen"] != nil && e["rewards/rejected"] != nil)
                XCTAssertTrue(e["rewards/chosen"] != nil || e["rewards/rejected"] != nil, "\(e)")
                XCTAssertGreaterThanOrEqual(e["kl"] as? Double ?? -1, 0)
                XCTAssertNil(e["rewards/accuracies"], "KTO has no pairs to be accurate on")
            }
            // The held-out evaluation covers both kinds.
            let evalEntry = try XCTUnwrap(log.first { $0["type"] as? String == "eval" })
            for key in ["rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected"] {
                XCTAssertNotNil(evalEntry[key] as? Double, "\(data) eval \(key)")
            }
            XCTAssertNotNil(log.first { $0["type"] as? String == "eval" }?["kl"] as? Double, data)
            let md = try report(out)
            XCTAssertTrue(md.contains("kl: 3 points") && !md.contains("rewards/accuracies"), md)
            let e = try PeftCommand.run(["eval", "--model", model, "--adapter", out, "--data", tmp.path(data),
                                         "--stage", "kto", "--json", "--dtype", "float32", "--batch-size", "3"])
            XCTAssertEqual(e.status, 0, e.stderr)
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(e.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(o["answers"] as? Int, count)
            XCTAssertTrue((o["loss"] as? Double ?? .nan).isFinite)
            XCTAssertNotNil(o["kl"] as? Double)
        }
        // --limit counts records: 2 pair records give 2 desirable and 2 undesirable answers.
        let limited = try PeftCommand.run(["eval", "--model", model, "--data", tmp.path("pairs.jsonl"), "--stage", "kto", "--json",
                                           "--limit", "2", "--batch-size", "2"])
        let lo = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(limited.stdout.utf8)) as? [String: Any], limited.stderr)
        XCTAssertEqual(lo["answers"] as? Int, 4)
        XCTAssertNotNil(lo["rewards/rejected"] as? Double)
        // Without an adapter the policy is its own reference: every log-ratio and the KL are 0, each loss 1 - sigmoid(0).
        let base = try PeftCommand.run(["eval", "--model", model, "--data", tmp.path("kto.jsonl"), "--stage", "kto", "--json"])
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(base.stdout.utf8)) as? [String: Any], base.stderr)
        XCTAssertEqual(o["loss"] as? Double ?? 0, 0.5, accuracy: 1e-9)
        XCTAssertEqual(o["kl"] as? Double ?? 1, 0, accuracy: 1e-9)
    }

    /// LLaMA-Factory data folders: `"ranking": true` entries (alpaca and sharegpt with its own tags and columns) for
    /// the paired stages, a `kto_tag` column for KTO; the wrong kind of entry is refused by name.
    func testLLaMAFactoryDatasetInfo() throws {
        let dir = tmp.url.appendingPathComponent("lf")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let info = #"""
        {"dpo_alpaca": {"file_name": "dpo_alpaca.json", "ranking": true,
                        "columns": {"prompt": "instruction", "query": "input", "chosen": "chosen", "rejected": "rejected"}},
         "dpo_sharegpt": {"file_name": "dpo_sharegpt.json", "ranking": true, "formatting": "sharegpt",
                          "columns": {"messages": "conversations", "chosen": "better", "rejected": "worse"},
                          "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}},
         "kto_sharegpt": {"file_name": "kto_sharegpt.json", "formatting": "sharegpt",
                          "columns": {"messages": "messages", "kto_tag": "label"},
                          "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}},
         "sft": {"file_name": "sft.json"}}
        """#
        try Data(info.utf8).write(to: dir.appendingPathComponent("dataset_info.json"))
        try Data(#"[{"instruction": "2+2?", "input": "", "chosen": "4", "rejected": "5"}, {"instruction": "hi", "input": "", "chosen": "hello", "rejected": "go"}]"#.utf8)
            .write(to: dir.appendingPathComponent("dpo_alpaca.json"))
        try Data(#"[{"conversations": [{"role": "user", "content": "colour?"}], "better": {"role": "assistant", "content": "blue"}, "worse": {"role": "assistant", "content": "loud"}}, {"conversations": [{"role": "user", "content": "你好"}], "better": {"role": "assistant", "content": "你好！"}, "worse": {"role": "assistant", "content": "走开"}}]"#.utf8)
            .write(to: dir.appendingPathComponent("dpo_sharegpt.json"))
        try Data(#"[{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "label": true}, {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}], "label": false}, {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "label": true}]"#.utf8)
            .write(to: dir.appendingPathComponent("kto_sharegpt.json"))
        try Data(#"[{"instruction": "hi", "input": "", "output": "hello"}]"#.utf8).write(to: dir.appendingPathComponent("sft.json"))
        func train(_ dataset: String, _ stage: String) throws -> CommandResult {
            try PeftCommand.run(["train", "--model", model, "--dataset", dataset, "--dataset-dir", dir.path, "--output", tmp.path("lf-\(dataset)-\(stage)"),
                                 "--stage", stage, "--max-steps", "1", "--batch-size", "2", "--dtype", "float32"])
        }
        for (dataset, stage, note) in [("dpo_alpaca", "dpo", "2 preference pairs from dpo_alpaca"), ("dpo_sharegpt", "orpo", "2 preference pairs from dpo_sharegpt"),
                                       ("kto_sharegpt", "kto", "(2 desirable answers, 1 undesirable)"), ("dpo_sharegpt", "kto", "(2 desirable answers, 2 undesirable)")] {
            let r = try train(dataset, stage)
            XCTAssertEqual(r.status, 0, "\(dataset) \(stage): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(note), r.stderr)
        }
        let wrong = try train("kto_sharegpt", "dpo")
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("kto_sharegpt") && wrong.stderr.contains("ranking"), wrong.stderr)
        let sft = try train("dpo_alpaca", "sft")
        XCTAssertNotEqual(sft.status, 0)
        XCTAssertTrue(sft.stderr.contains("dpo_alpaca") && sft.stderr.contains("--stage dpo"), sft.stderr)
    }

    func testBadPreferenceInput() throws {
        func fails(_ args: [String], _ fragment: String, line: UInt = #line) throws {
            let r = try PeftCommand.run(["train", "--model", model, "--output", tmp.path("x"), "--max-steps", "1"] + args)
            XCTAssertNotEqual(r.status, 0, line: line)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr, line: line)
        }
        try Data("{\"prompt\": \"a\", \"chosen\": \"b\"}\n".utf8).write(to: tmp.url.appendingPathComponent("bad.jsonl"))
        try fails(["--data", tmp.path("bad.jsonl"), "--stage", "dpo"], "bad.jsonl")
        try fails(["--data", tmp.path("bad.jsonl"), "--stage", "dpo"], "rejected")
        try fails(["--data", tmp.path("kto.jsonl"), "--stage", "kto", "--batch-size", "1"], "--batch-size 2")
        try Data("{\"prompt\": \"a\", \"completion\": \"b\", \"label\": true}\n{\"prompt\": \"a\", \"completion\": \"b\", \"label\": \"yes\"}\n".utf8)
            .write(to: tmp.url.appendingPathComponent("badkto.jsonl"))
        try fails(["--data", tmp.path("badkto.jsonl"), "--stage", "kto"], "record 2")
        try fails(["--data", tmp.path("badkto.jsonl"), "--stage", "kto"], "label")
        try Data("{\"instruction\": \"a\", \"output\": \"b\"}\n".utf8).write(to: tmp.url.appendingPathComponent("untagged.jsonl"))
        try fails(["--data", tmp.path("untagged.jsonl"), "--stage", "kto"], "kto_tag")
        try fails(["--data", tmp.path("pairs.jsonl"), "--stage", "dpo", "--pref-loss", "wild"], "--pref-loss")
        try fails(["--data", tmp.path("pairs.jsonl"), "--stage", "dpo", "--label-smoothing", "0.7"], "--label-smoothing")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("x/adapter_model.safetensors")))
    }
}

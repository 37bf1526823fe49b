import Foundation
import ModelIO
import TestSupport
import XCTest

/// `train`, `eval`, `merge`, `report` and `demo` through the executable, including their failure modes.
final class TrainingCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2").path

    override func setUpWithError() throws {
        tmp = try TemporaryDirectory("cli-train")
        let records = [("你好", "你好！"), ("2+2?", "4"), ("hello", "hi there"), ("再见", "再见！")]
        let lines = records.map { "{\"instruction\": \"\($0.0)\", \"input\": \"\", \"output\": \"\($0.1)\"}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("train.jsonl"))
    }

    override func tearDown() { tmp.cleanup() }

    func train(_ extra: [String], output: String) throws -> CommandResult {
        try PeftCommand.run(["train", "--model", model, "--data", tmp.path("train.jsonl"), "--output", output,
                             "--max-steps", "3", "--batch-size", "2", "--lora-r", "4", "--lr", "1e-2"] + extra)
    }

    /// Every family trains with its default LoRA targets (the fused q/k/v module where there is one), merges into its
    /// own layout, and the merged model greedy-generates what the adapter did.
    func testEveryFamilyTrainsMergesAndGenerates() throws {
        let gen = ["generate", "--prompt", "hello", "--max-new-tokens", "5", "--temperature", "0", "--dtype", "float32", "--json"]
        for family in ["qwen1", "internlm2", "baichuan2", "phi3", "gemma2", "gemma3", "glm4", "qwen3-moe", "chatglm"] {
            let base = modelFixture("tiny-\(family)").path, out = tmp.path("\(family)-lora")
            let r = try PeftCommand.run(["train", "--model", base, "--data", tmp.path("train.jsonl"), "--output", out,
                                         "--max-steps", "2", "--batch-size", "2", "--lora-r", "4", "--lr", "1e-2"])
            XCTAssertEqual(r.status, 0, "\(family): \(r.stderr)")
            let config = try String(contentsOfFile: out + "/adapter_config.json", encoding: .utf8)
            let expected = ["qwen1": "c_attn", "internlm2": "wqkv", "baichuan2": "W_pack", "phi3": "qkv_proj", "chatglm": "query_key_value"][family] ?? "q_proj"
            XCTAssertTrue(config.contains(expected), "\(family) default targets: \(config)")
            let withAdapter = try PeftCommand.run(gen + ["--model", base, "--adapter", out])
            XCTAssertEqual(withAdapter.status, 0, "\(family): \(withAdapter.stderr)")
            let merged = tmp.path("\(family)-merged")
            let m = try PeftCommand.run(["merge", "--model", base, "--adapter", out, "--output", merged])
            XCTAssertEqual(m.status, 0, "\(family): \(m.stderr)")
            let fromMerged = try PeftCommand.run(gen + ["--model", merged])
            func ids(_ r: CommandResult) throws -> [Int] {
                try XCTUnwrap((JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["token_ids"] as? [Int])
            }
            XCTAssertEqual(try ids(fromMerged), try ids(withAdapter), family)
        }
    }

    func testTrainsFromALlamaFactoryDataFolder() throws {
        let dir = tmp.url.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data(#"{"demo": {"file_name": "demo.jsonl"}}"#.utf8).write(to: dir.appendingPathComponent("dataset_info.json"))
        try FileManager.default.copyItem(at: tmp.url.appendingPathComponent("train.jsonl"), to: dir.appendingPathComponent("demo.jsonl"))
        let r = try PeftCommand.run(["train", "--model", model, "--dataset", "demo", "--dataset-dir", dir.path, "--output", tmp.path("lf"),
                                     "--max-steps", "1", "--batch-size", "2"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("records from demo"), r.stderr)
        let both = try PeftCommand.run(["train", "--model", model, "--dataset", "demo", "--data", tmp.path("train.jsonl"), "--output", tmp.path("x")])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.stderr.contains("exactly one of --data FILE or --dataset NAME"), both.stderr)
    }

    func testTrainEvalGenerateMergeRoundTrip() throws {
        let out = tmp.path("adapter")
        let r = try train(["--eval-data", tmp.path("train.jsonl"), "--save-every", "2"], output: out)
        XCTAssertEqual(r.status, 0, r.stderr)
        for file in ["adapter_config.json", "adapter_model.safetensors", "train_log.jsonl",
                     "checkpoint-2/trainer_state.json", "checkpoint-2/optimizer.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path("adapter/\(file)")), file)
        }
        let eval = try PeftCommand.run(["eval", "--model", model, "--adapter", out, "--data", tmp.path("train.jsonl"), "--json"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(o["examples"] as? Int, 4)
        XCTAssertGreaterThan(o["tokens"] as? Int ?? 0, 4)
        XCTAssertEqual(o["perplexity"] as? Double ?? 0, exp(o["loss"] as? Double ?? 0), accuracy: 1e-6)
        // Adapter on generate; merge; the merged model greedy-generates the same tokens in float32.
        let gen = ["generate", "--prompt", "hello", "--max-new-tokens", "6", "--temperature", "0", "--dtype", "float32", "--json"]
        let withAdapter = try PeftCommand.run(gen + ["--model", model, "--adapter", out])
        XCTAssertEqual(withAdapter.status, 0, withAdapter.stderr)
        let merged = tmp.path("merged")
        let m = try PeftCommand.run(["merge", "--model", model, "--adapter", out, "--output", merged])
        XCTAssertEqual(m.status, 0, m.stderr)
        let fromMerged = try PeftCommand.run(gen + ["--model", merged])
        func ids(_ r: CommandResult) throws -> [Int] {
            try XCTUnwrap((JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["token_ids"] as? [Int])
        }
        XCTAssertEqual(try ids(fromMerged), try ids(withAdapter))
        // Resume from the step-2 checkpoint finishes the run.
        let resumed = try train(["--resume", tmp.path("adapter/checkpoint-2")], output: tmp.path("resumed"))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
    }

    func expectFailure(_ r: CommandResult, _ fragments: [String], line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, line: line)
        for f in fragments { XCTAssertTrue(r.stderr.contains(f), "stderr lacks '\(f)': \(r.stderr)", line: line) }
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.signaled, line: line)
    }

    func testBadTrainingInputsLeaveEarlierOutputsIntact() throws {
        let out = tmp.path("keep")
        XCTAssertEqual(try train([], output: out).status, 0)
        let weights = URL(fileURLWithPath: out).appendingPathComponent("adapter_model.safetensors")
        let before = try Data(contentsOf: weights)
        let bad = tmp.path("bad.jsonl")
        try Data("{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\", \"output\": }\n".utf8).write(to: URL(fileURLWithPath: bad))
        expectFailure(try PeftCommand.run(["train", "--model", model, "--data", bad, "--output", out]),
                      ["bad.jsonl, record 2", "malformed JSON on line 2"])
        try Data("{\"instruction\": \"a\"}\n".utf8).write(to: URL(fileURLWithPath: bad))
        expectFailure(try PeftCommand.run(["train", "--model", model, "--data", bad, "--output", out]),
                      ["record 1, field 'output'", "missing"])
        expectFailure(try train(["--template", "vicuna"], output: out), ["unknown template 'vicuna'"])
        expectFailure(try train(["--target-modules", "query,value"], output: out),
                      ["match no projection", "q_proj", "down_proj"])
        expectFailure(try train(["--method", "loha"], output: out), ["unknown --method 'loha'", "ptuning"])
        // A resume directory made for another model.
        XCTAssertEqual(try train(["--save-every", "1"], output: tmp.path("other")).status, 0)
        let other = try PeftCommand.run(["train", "--model", modelFixture("tiny-qwen3").path, "--data", tmp.path("train.jsonl"),
                                         "--output", out, "--max-steps", "3", "--batch-size", "2", "--lora-r", "4",
                                         "--resume", tmp.path("other/checkpoint-1")])
        expectFailure(other, ["made for another model"])
        // An adapter that does not fit the model: every mismatch listed.
        let mismatch = try PeftCommand.run(["generate", "--model", modelFixture("tiny-llama").path, "--adapter",
                                            fixtureURL("adapters/tiny-qwen2-lora-all").path, "--prompt", "x"])
        expectFailure(mismatch, ["4 problems", "k_proj.lora_B.weight: file has shape [32, 4], this model needs [64, 4]"])
        XCTAssertEqual(try Data(contentsOf: weights), before, "a failed run must not touch the earlier adapter")
    }

    func testDemoRunsEndToEndAndWritesTheReport() throws {
        let out = tmp.path("demo")
        let r = try PeftCommand.run(["demo", "--output", out, "--max-steps", "3", "--questions", "2", "--max-new-tokens", "8"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("built-in tiny demo model"), r.stderr)
        XCTAssertTrue(r.stdout.contains("medicine name %"), r.stdout)
        let html = try String(contentsOfFile: tmp.path("demo/report.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("<svg") && html.contains("after"))
        for file in ["report.md", "before/predictions.jsonl", "after/metrics.json", "adapter/adapter_model.safetensors",
                     "data/DATA_CARD.md", "base-model/config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path("demo/\(file)")), file)
        }
        // The report command renders the same runs on its own, with and without a training log.
        let report = try PeftCommand.run(["report", "--log", tmp.path("demo/adapter/train_log.jsonl"),
                                          "--run", "before=\(tmp.path("demo/before"))", "--run", "after=\(tmp.path("demo/after"))",
                                          "--output", tmp.path("r/report.html")])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path("r/report.md")))
        let noLog = try PeftCommand.run(["report", "--run", "before=\(tmp.path("demo/before"))", "--output", tmp.path("r2.html")])
        XCTAssertEqual(noLog.status, 0, noLog.stderr)
        expectFailure(try PeftCommand.run(["report", "--run", "x=\(tmp.path("nowhere"))"]), ["metrics.json", "missing"])
        expectFailure(try PeftCommand.run(["report", "--run", "nodir"]), ["NAME=DIR"])
    }

    func testDemoInterruptedDuringTrainingLeavesAPartialReport() throws {
        let out = tmp.path("demo-int")
        let r = try PeftCommand.run(["demo", "--output", out, "--max-steps", "100000", "--questions", "2", "--max-new-tokens", "4"],
                                    interruptWhen: { $0.contains("train ") })
        XCTAssertEqual(r.status, 130, r.stderr)
        let html = try String(contentsOfFile: tmp.path("demo-int/report.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("partial"), "partial note")
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path("demo-int/adapter/adapter_model.safetensors")))
    }

    func testEvalGenerateWritesPredictionsAndMetrics() throws {
        let dir = tmp.path("ev")
        let r = try PeftCommand.run(["eval", "--model", model, "--data", tmp.path("train.jsonl"), "--generate",
                                     "--output-dir", dir, "--max-new-tokens", "4", "--metric-name-match", "(h)", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        for key in ["bleu4", "rouge1", "rouge2", "rougeL", "exact_match", "loss", "perplexity", "examples"] {
            XCTAssertNotNil(o[key], key)
        }
        let lines = try String(contentsOfFile: dir + "/predictions.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        let first = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        XCTAssertEqual(first["prompt"] as? String, "你好")
        XCTAssertEqual(first["reference"] as? String, "你好！")
        XCTAssertNotNil(first["prediction"] as? String)
        expectFailure(try PeftCommand.run(["eval", "--model", model, "--data", tmp.path("train.jsonl"), "--generate",
                                           "--output-dir", dir, "--metric-name-match", "(unclosed"]), ["not a valid regular expression"])
    }
}

import Foundation
import TestSupport
import XCTest

/// Every method through the executable: train, eval, generate, info --adapter, merge (or its refusal), resume,
/// Ctrl-C, and the flag and adapter errors.
final class MethodCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2").path

    override func setUpWithError() throws {
        tmp = try TemporaryDirectory("cli-methods")
        let records = [("你好", "你好！"), ("2+2?", "4"), ("hello", "hi there"), ("再见", "再见！")]
        let lines = records.map { "{\"instruction\": \"\($0.0)\", \"input\": \"\", \"output\": \"\($0.1)\"}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("train.jsonl"))
    }

    override func tearDown() { tmp.cleanup() }

    /// Method flags small enough for the fixture's 64-token context.
    static let flags: [String: [String]] = [
        "dora": ["--lora-r", "4", "--target-modules", "q_proj,v_proj,down_proj"],
        "ia3": [],
        "prompt": ["--num-virtual-tokens", "4"],
        "ptuning": ["--num-virtual-tokens", "4", "--encoder-hidden-size", "16"],
        "prefix": ["--num-virtual-tokens", "4", "--prefix-projection"],
        "adapter": ["--adapter-config", "pfeiffer", "--reduction-factor", "8"],
    ]

    func train(_ method: String, _ extra: [String] = [], output: String) throws -> CommandResult {
        try PeftCommand.run(["train", "--model", model, "--data", tmp.path("train.jsonl"), "--output", output,
                             "--method", method, "--max-steps", "3", "--batch-size", "2", "--dtype", "float32"]
                            + (Self.flags[method] ?? []) + extra)
    }

    func json(_ r: CommandResult) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
    }

    func testEveryMethodTrainsAndEveryCommandTakesItsAdapter() throws {
        for method in Self.flags.keys.sorted() {
            let out = tmp.path(method)
            let r = try train(method, ["--save-every", "2"], output: out)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("trainable parameters"), r.stderr)
            let info = try PeftCommand.run(["info", "--model", model, "--adapter", out, "--json"])
            XCTAssertEqual(info.status, 0, info.stderr)
            XCTAssertEqual(try json(info)["method"] as? String, method)
            XCTAssertGreaterThan(try json(info)["trainable_parameters"] as? Int ?? 0, 0)
            let eval = try PeftCommand.run(["eval", "--model", model, "--adapter", out, "--data", tmp.path("train.jsonl"), "--json"])
            XCTAssertEqual(eval.status, 0, eval.stderr)
            XCTAssertEqual(try json(eval)["examples"] as? Int, 4)
            let gen = ["generate", "--prompt", "hi", "--max-new-tokens", "5", "--temperature", "0", "--dtype", "float32", "--json"]
            let withAdapter = try PeftCommand.run(gen + ["--model", model, "--adapter", out])
            XCTAssertEqual(withAdapter.status, 0, withAdapter.stderr)
            let evalGen = try PeftCommand.run(["eval", "--model", model, "--adapter", out, "--data", tmp.path("train.jsonl"),
                                               "--generate", "--output-dir", tmp.path("\(method)-gen"), "--max-new-tokens", "3", "--json"])
            XCTAssertEqual(evalGen.status, 0, evalGen.stderr)
            let merged = tmp.path("\(method)-merged")
            let merge = try PeftCommand.run(["merge", "--model", model, "--adapter", out, "--output", merged])
            if ["dora", "ia3"].contains(method) {
                XCTAssertEqual(merge.status, 0, merge.stderr)
                // The merged model greedy-generates what the adapter does.
                let fromMerged = try PeftCommand.run(gen + ["--model", merged])
                XCTAssertEqual(try json(fromMerged)["token_ids"] as? [Int], try json(withAdapter)["token_ids"] as? [Int], method)
            } else {
                XCTAssertNotEqual(merge.status, 0)
                XCTAssertTrue(merge.stderr.contains("to fold") && merge.stderr.contains("nothing was written"), merge.stderr)
                XCTAssertFalse(FileManager.default.fileExists(atPath: merged), "nothing written")
            }
            let resumed = try train(method, ["--resume", tmp.path("\(method)/checkpoint-2")], output: tmp.path("\(method)-resumed"))
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
        }
    }

    func testInterruptedPromptTrainingSavesACheckpoint() throws {
        let out = tmp.path("int")
        let r = try PeftCommand.run(["train", "--model", model, "--data", tmp.path("train.jsonl"), "--output", out,
                                     "--method", "ptuning", "--num-virtual-tokens", "4", "--max-steps", "100000", "--batch-size", "1"],
                                    interruptWhen: { $0.contains("train ") })
        XCTAssertEqual(r.status, 130, r.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path("int/adapter_model.safetensors")))
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("checkpoint-") }
        XCTAssertEqual(checkpoints.count, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(checkpoints[0])/trainable_state.safetensors"))
    }

    func expectFailure(_ r: CommandResult, _ fragments: [String], line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, line: line)
        for f in fragments { XCTAssertTrue(r.stderr.contains(f), "stderr lacks '\(f)': \(r.stderr)", line: line) }
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.signaled, line: line)
    }

    /// A result that is not a number is an error with a non-zero exit, as text and as --json (which prints nothing
    /// rather than leave an empty success): a prefix adapter whose weights are all NaN.
    func testNonFiniteLossIsAnErrorNotSilence() throws {
        let bad = tmp.url.appendingPathComponent("nan-prefix")
        try FileManager.default.copyItem(at: fixtureURL("methods/tiny-qwen2-prefix/adapter"), to: bad)
        let file = bad.appendingPathComponent("adapter_model.safetensors")
        var data = try Data(contentsOf: file)
        let header = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let nan = withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Array($0) }
        for i in stride(from: 8 + header, to: data.count - 3, by: 4) { data.replaceSubrange(i..<(i + 4), with: nan) }
        try data.write(to: file)
        for extra in [[], ["--json"]] {
            let r = try PeftCommand.run(["eval", "--model", model, "--adapter", bad.path, "--data", tmp.path("train.jsonl")] + extra)
            expectFailure(r, ["the evaluation loss (nan) is not a finite number"])
            XCTAssertFalse(r.stdout.contains("loss"), r.stdout)
        }
    }

    func testBadMethodInputsAreClearErrorsAndWriteNothing() throws {
        let out = tmp.path("never")
        expectFailure(try train("prompt", ["--lora-r", "4"], output: out), ["--lora-r belongs to --method lora/dora, not prompt"])
        expectFailure(try train("lora", ["--num-virtual-tokens", "4"], output: out), ["--num-virtual-tokens belongs to --method prompt/ptuning/prefix"])
        expectFailure(try train("ia3", ["--prefix-projection"], output: out), ["--prefix-projection belongs to --method prefix"])
        expectFailure(try train("dora", ["--feedforward-modules", "down_proj"], output: out), ["--feedforward-modules belongs to --method ia3"])
        expectFailure(try train("lora", ["--adapter-config", "houlsby"], output: out), ["--adapter-config belongs to --method adapter"])
        expectFailure(try train("adapter", ["--adapter-config", "lora"], output: out), ["unknown --adapter-config 'lora'"])
        expectFailure(try train("adapter", ["--non-linearity", "tanh"], output: out), ["unknown --non-linearity 'tanh'"])
        expectFailure(try PeftCommand.run(["train", "--model", model, "--data", tmp.path("train.jsonl"), "--output", out,
                                           "--method", "prompt", "--num-virtual-tokens", "0"]), ["--num-virtual-tokens must be within"])
        expectFailure(try PeftCommand.run(["train", "--model", model, "--data", tmp.path("train.jsonl"), "--output", out,
                                           "--method", "prefix", "--num-virtual-tokens", "256"]), ["leave no room in the model's context of 256"])
        expectFailure(try train("ia3", ["--feedforward-modules", "up_proj"], output: out), ["'up_proj' is not one of the target modules"])
        expectFailure(try train("prompt", ["--prompt-init", "text"], output: out), ["--prompt-init text needs --prompt-init-text"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        // Adapters of an unknown type, or made for another model.
        let loha = tmp.url.appendingPathComponent("loha")
        try FileManager.default.createDirectory(at: loha, withIntermediateDirectories: true)
        try Data(#"{"peft_type": "LOHA", "r": 8}"#.utf8).write(to: loha.appendingPathComponent("adapter_config.json"))
        try Data().write(to: loha.appendingPathComponent("adapter_model.safetensors"))
        let gen = ["generate", "--prompt", "hi", "--max-new-tokens", "2"]
        expectFailure(try PeftCommand.run(gen + ["--model", model, "--adapter", loha.path]), ["peft_type LOHA is not supported"])
        let prefix = fixtureURL("methods/tiny-qwen2-prefix/adapter").path
        expectFailure(try PeftCommand.run(gen + ["--model", modelFixture("tiny-qwen3").path, "--adapter", prefix]),
                      ["does not fit this model", "token_dim is 32, this model needs 64"])
        expectFailure(try PeftCommand.run(["merge", "--model", model, "--adapter", prefix, "--output", out]),
                      ["has no weights to fold"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}

extension MethodCommandTests {
    func testFullAndFreezeWriteAModelThatEveryCommandLoads() throws {
        for (method, extra) in [("full", ["--optim", "adafactor"]), ("freeze", ["--freeze-trainable-layers", "1", "--freeze-extra-modules", "norm"])] {
            let out = tmp.path(method)
            let r = try PeftCommand.run(["train", "--model", model, "--data", tmp.path("train.jsonl"), "--output", out,
                                         "--method", method, "--max-steps", "3", "--batch-size", "2", "--save-every", "2",
                                         "--lr", "1e-3"] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("model in"), r.stderr)
            for file in ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json", "checkpoint-2/trainable_state.safetensors"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(file)"), "\(method) \(file)")
            }
            let gen = try PeftCommand.run(["generate", "--model", out, "--prompt", "hi", "--max-new-tokens", "3", "--json"])
            XCTAssertEqual(gen.status, 0, gen.stderr)
            let eval = try PeftCommand.run(["eval", "--model", out, "--data", tmp.path("train.jsonl"), "--json"])
            XCTAssertEqual(eval.status, 0, eval.stderr)
            // Resume, and a second run into the same folder (it holds our own model): both allowed.
            let resumed = try PeftCommand.run(["train", "--model", model, "--data", tmp.path("train.jsonl"), "--output", out,
                                               "--method", method, "--max-steps", "3", "--batch-size", "2", "--lr", "1e-3",
                                               "--resume", "\(out)/checkpoint-2"] + extra)
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            // A checkpoint of a full run is not an adapter.
            expectFailure(try PeftCommand.run(["generate", "--model", model, "--adapter", "\(out)/checkpoint-2", "--prompt", "hi"]),
                          ["checkpoint, not an adapter"])
        }
    }

    func testBadFullAndFreezeInputsOverwriteNothing() throws {
        func train(_ args: [String], output: String) throws -> CommandResult {
            try PeftCommand.run(["train", "--model", model, "--data", tmp.path("train.jsonl"), "--output", output,
                                 "--max-steps", "1"] + args)
        }
        let out = tmp.path("none")
        expectFailure(try train(["--method", "lora", "--freeze-trainable-layers", "1"], output: out),
                      ["--freeze-trainable-layers belongs to --method freeze, not lora"])
        expectFailure(try train(["--method", "freeze", "--freeze-trainable-layers", "3"], output: out),
                      ["outside the model's 2 layers"])
        expectFailure(try train(["--method", "freeze", "--freeze-trainable-modules", "attention"], output: out),
                      ["unknown module 'attention'"])
        expectFailure(try train(["--method", "full", "--optim", "sgd"], output: out), ["--optim must be one of: adamw, adafactor"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        // An output folder that holds another model is never overwritten.
        let other = try tmp.copyModel("tiny-qwen3", as: "other-model")
        let before = try Data(contentsOf: other.appendingPathComponent("model.safetensors"))
        expectFailure(try train(["--method", "full"], output: other.path), ["already holds another model"])
        XCTAssertEqual(try Data(contentsOf: other.appendingPathComponent("model.safetensors")), before)
    }
}

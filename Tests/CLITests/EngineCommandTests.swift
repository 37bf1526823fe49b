import Foundation
import ModelIO
import TestSupport
import Tokenizer
import XCTest

/// The `generate`, `tokenize`, `info` contracts and the bad-input answers, through the real executable.
final class EngineCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2").path

    override func setUpWithError() throws { tmp = try TemporaryDirectory("cli") }
    override func tearDown() { tmp.cleanup() }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    func testGenerateJSONContractAndDeterminism() throws {
        let args = ["generate", "--model", model, "--prompt", "你好", "--max-new-tokens", "12", "--dtype", "float32", "--json"]
        let greedy = try PeftCommand.run(args + ["--temperature", "0"])
        XCTAssertEqual(greedy.status, 0, greedy.stderr)
        let g = try json(greedy.stdout)
        for key in ["text", "token_ids", "prompt_tokens", "prefill_tokens_per_second", "decode_tokens_per_second"] {
            XCTAssertNotNil(g[key], key)
        }
        XCTAssertEqual((g["token_ids"] as? [Int])?.count, 12)
        // The prompt is ChatML with the template's default system prompt.
        let tok = try Tokenizer.load(directory: modelFixture("tiny-qwen2"))
        let prompt = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
        XCTAssertEqual(g["prompt_tokens"] as? Int, tok.encode(prompt).count)
        // Sampling: same seed, same tokens; another seed, other tokens.
        let sample = args + ["--temperature", "1.0", "--top-k", "50"]
        let a = try json(PeftCommand.run(sample + ["--seed", "5"]).stdout)["token_ids"] as? [Int]
        let b = try json(PeftCommand.run(sample + ["--seed", "5"]).stdout)["token_ids"] as? [Int]
        let c = try json(PeftCommand.run(sample + ["--seed", "6"]).stdout)["token_ids"] as? [Int]
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        // Plain output prints only the text.
        let plain = try PeftCommand.run(Array(args.dropLast()) + ["--temperature", "0"])
        XCTAssertEqual(plain.stdout, (g["text"] as? String ?? "") + "\n")
    }

    func testTokenizeTextAndFile() throws {
        let tok = try Tokenizer.load(directory: modelFixture("tiny-qwen2"))
        let text = "推荐用药：<|im_end|> hello 123"
        let r = try PeftCommand.run(["tokenize", "--model", model, "--text", text])
        XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines),
                       tok.encode(text).map(String.init).joined(separator: " "))
        XCTAssertTrue(tok.encode(text).contains(302), "special token recognised")
        let file = tmp.path("in.jsonl")
        try Data("{\"text\": \"a\"}\n\n{\"text\": \"你好\"}\n".utf8).write(to: URL(fileURLWithPath: file))
        let lines = try PeftCommand.run(["tokenize", "--model", model, "--file", file]).stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(try json(String(lines[1]))["ids"] as? [Int], tok.encode("你好").map(Int.init))
        try Data("{\"txt\": \"a\"}\n".utf8).write(to: URL(fileURLWithPath: file))
        let bad = try PeftCommand.run(["tokenize", "--model", model, "--file", file])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("record 1, field 'text'"), bad.stderr)
    }

    func testInfo() throws {
        let r = try PeftCommand.run(["info", "--model", model, "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try json(r.stdout)
        XCTAssertEqual(o["architecture"] as? String, "qwen2")
        XCTAssertEqual(o["template"] as? String, "chatml")
        XCTAssertEqual(o["kv_heads"] as? Int, 2)
        let text = try PeftCommand.run(["info", "--model", modelFixture("tiny-qwen3").path])
        XCTAssertTrue(text.stdout.contains("q/k norm"), text.stdout)
        // The GGUF size estimate counts a mixture's experts as quantized matrices (not f32 vectors): within the
        // metadata's few kilobytes of the file `peft quantize` writes, dense and sparse alike.
        for name in ["tiny-qwen2", "tiny-qwen3-moe"] {
            let out = temporaryURL("size").appendingPathExtension("gguf")
            defer { try? FileManager.default.removeItem(at: out) }
            let q = try PeftCommand.run(["quantize", "--model", modelFixture(name).path, "--type", "q8_0", "--output", out.path])
            XCTAssertEqual(q.status, 0, q.stderr)
            let info = try json(try PeftCommand.run(["info", "--model", modelFixture(name).path, "--json"]).stdout)
            let estimate = try XCTUnwrap((info["gguf_bytes"] as? [String: Int])?["q8_0"])
            let actual = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: out.path)[.size] as? Int)
            XCTAssertLessThan(abs(actual - estimate), 12_000, "\(name): estimate \(estimate), file \(actual)")
        }
    }

    func expectFailure(_ args: [String], _ fragments: [String], line: UInt = #line) throws {
        let r = try PeftCommand.run(args)
        XCTAssertNotEqual(r.status, 0, "expected failure: \(args)", line: line)
        for f in fragments { XCTAssertTrue(r.stderr.contains(f), "stderr lacks '\(f)': \(r.stderr)", line: line) }
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.signaled, r.stderr, line: line)
    }

    /// PEFT_CPU forces a lower kernel tier (scalar exists everywhere) and `peft info` reports it; a name that is no
    /// tier stops every command with a clear error.
    func testCPUTierIsReportedAndPEFTCPUIsChecked() throws {
        let model = modelFixture("tiny-qwen2").path
        let r = try PeftCommand.run(["info", "--model", model, "--json"], environment: ["PEFT_CPU": "scalar"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let cpu = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])?["cpu"] as? [String: Any])
        XCTAssertEqual(cpu["tier"] as? String, "scalar")
        XCTAssertNotNil(cpu["best_tier"] as? String)
        let text = try PeftCommand.run(["info", "--model", model], environment: ["PEFT_CPU": "scalar"])
        XCTAssertTrue(text.stdout.contains("cpu            scalar"), text.stdout)
        let bad = try PeftCommand.run(["info", "--model", model], environment: ["PEFT_CPU": "sse9"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("PEFT_CPU=sse9 is not a CPU tier (one of scalar, avx2, avx512, neon)"), bad.stderr)
        XCTAssertEqual(bad.stdout, "")
    }

    func testBadModelInputsAreClearErrors() throws {
        let gen = { (dir: String) in ["generate", "--model", dir, "--prompt", "hi", "--max-new-tokens", "2"] }
        try expectFailure(gen(tmp.path("missing")), ["model directory not found", "missing"])
        // Truncated weights.
        let truncated = try tmp.copyModel("tiny-qwen2", as: "truncated")
        let weights = truncated.appendingPathComponent("model.safetensors")
        let full = try Data(contentsOf: weights)
        try full.prefix(full.count / 3).write(to: weights)
        try expectFailure(gen(truncated.path), ["model.safetensors", "point past"])
        // Missing weights file.
        try FileManager.default.removeItem(at: weights)
        try expectFailure(gen(truncated.path), ["model weights"])
        // A header whose offsets point past the file (file intact, header edited).
        let edited = try tmp.copyModel("tiny-qwen2", as: "edited")
        let url = edited.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: url)
        let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
        let fileEnd = bytes.count - 8 - headerLength
        // Move the largest end offset far beyond the data section, same header length.
        if let r = header.range(of: ",\(fileEnd)]") {
            let bigger = String(fileEnd + 4)
            header.replaceSubrange(r, with: ",\(bigger)]")
            header = String(header.dropLast(bigger.count - String(fileEnd).count))
        }
        bytes.replaceSubrange(8..<(8 + headerLength), with: Data(header.utf8))
        try bytes.write(to: url)
        try expectFailure(gen(edited.path), ["model.safetensors", "data_offsets"])
        // Config with a missing field, and an unknown architecture.
        let config = try tmp.copyModel("tiny-qwen2", as: "config")
        let configURL = config.appendingPathComponent("config.json")
        var obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
        obj.removeValue(forKey: "hidden_size")
        try JSONSerialization.data(withJSONObject: obj).write(to: configURL)
        try expectFailure(gen(config.path), ["config.json", "missing field 'hidden_size'"])
        obj["hidden_size"] = 64
        obj["model_type"] = "gpt_neox"
        try JSONSerialization.data(withJSONObject: obj).write(to: configURL)
        try expectFailure(gen(config.path), ["model_type 'gpt_neox' is not supported", "qwen2"])
        obj["model_type"] = "qwen2"
        obj["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0]
        try JSONSerialization.data(withJSONObject: obj).write(to: configURL)
        try expectFailure(gen(config.path), ["rope scaling type 'yarn' is not supported"])
    }

    func testPromptLongerThanContext() throws {
        // The fixture's context is 256 positions.
        let long = String(repeating: "hello world ", count: 200)
        try expectFailure(["generate", "--model", model, "--prompt", long], ["longer than the model's context of 256"])
    }

    func testBadFlagValues() throws {
        try expectFailure(["generate", "--model", model, "--prompt", "x", "--top-p", "1.5"], ["--top-p"])
        try expectFailure(["generate", "--model", model, "--prompt", "x", "--template", "alpaca"], ["unknown template 'alpaca'"])
        try expectFailure(["tokenize", "--model", model], ["exactly one of --text or --file"])
    }

    func testChatKeepsHistoryAndResets() throws {
        let r = try PeftCommand.run(["chat", "--model", model, "--max-new-tokens", "3", "--temperature", "0", "--dtype", "float32"],
                                    stdin: "你好\n再说一遍\n/reset\n你好\n/exit\n")
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("(history cleared)"), r.stderr)
        // Greedy: the first answer and the answer after /reset (same single-turn prompt) are identical.
        let answers = r.stdout.components(separatedBy: "> ").map { $0.trimmingCharacters(in: .newlines) }.filter { !$0.isEmpty }
        XCTAssertEqual(answers.count, 3, r.stdout)
        XCTAssertEqual(answers.first, answers.last)
    }
}

/// Inputs found by review that once crashed or silently misbehaved.
final class HardenedInputTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2").path

    override func setUpWithError() throws { tmp = try TemporaryDirectory("hardened") }
    override func tearDown() { tmp.cleanup() }

    func failure(_ args: [String], _ fragment: String, line: UInt = #line) throws {
        let r = try PeftCommand.run(args)
        XCTAssertNotEqual(r.status, 0, line: line)
        XCTAssertTrue(r.stderr.contains(fragment), "stderr lacks '\(fragment)': \(r.stderr)", line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.signaled, "crashed: \(r.stderr)", line: line)
    }

    func testGenerationFlagsAtTheirLimits() throws {
        // An n-gram size longer than the prompt so far used to trap.
        let r = try PeftCommand.run(["generate", "--model", model, "--prompt", "hi", "--template", "none",
                                     "--no-repeat-ngram-size", "6", "--temperature", "0", "--max-new-tokens", "8"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let huge = try PeftCommand.run(["generate", "--model", model, "--prompt", "hi", "--max-new-tokens",
                                        "9223372036854775807", "--temperature", "0", "--json"])
        XCTAssertEqual(huge.status, 0, huge.stderr)
    }

    func testMalformedHeaderNumbers() throws {
        let dir = try tmp.copyModel("tiny-qwen2", as: "m")
        try Data(repeating: 0xFF, count: 64).write(to: dir.appendingPathComponent("model.safetensors"))
        try failure(["info", "--model", dir.path], "header length")
        var len = UInt64(80).littleEndian
        let header = #"{"w":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,8]}}"#.padding(toLength: 80, withPad: " ", startingAt: 0)
        try (Data(bytes: &len, count: 8) + Data(header.utf8) + Data(count: 8)).write(to: dir.appendingPathComponent("model.safetensors"))
        try failure(["info", "--model", dir.path], "more bytes than fit")
    }

    func testMergeNeverReplacesAForeignDirectory() throws {
        let out = tmp.url.appendingPathComponent("busy")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: out.appendingPathComponent("notes.txt"))
        let adapter = fixtureURL("adapters/tiny-qwen2-rslora-qv").path
        try failure(["merge", "--model", model, "--adapter", adapter, "--output", out.path], "not an earlier merge")
        XCTAssertEqual(try String(contentsOf: out.appendingPathComponent("notes.txt"), encoding: .utf8), "keep me")
        // An earlier merge may be replaced.
        let merged = tmp.path("merged")
        XCTAssertEqual(try PeftCommand.run(["merge", "--model", model, "--adapter", adapter, "--output", merged]).status, 0)
        XCTAssertEqual(try PeftCommand.run(["merge", "--model", model, "--adapter", adapter, "--output", merged]).status, 0)
        try failure(["merge", "--model", model, "--adapter", adapter, "--output", tmp.url.path], "not an earlier merge")
    }

    func testTrainingFlagValuesOutOfRange() throws {
        let data = tmp.path("d.jsonl")
        try Data("{\"instruction\": \"a\", \"output\": \"b\"}\n".utf8).write(to: URL(fileURLWithPath: data))
        let base = ["train", "--model", model, "--data", data, "--output", tmp.path("o")]
        try failure(base + ["--epochs", "nan"], "--epochs")
        try failure(base + ["--warmup-ratio", "nan"], "--warmup-ratio")
        try failure(base + ["--lora-alpha", "inf"], "--lora-alpha")
        try failure(base + ["--batch-size", "9223372036854775807"], "--batch-size")
        try failure(base + ["--max-steps", "10000000000"], "--max-steps")
        try failure(base + ["--epochs", "1e30"], "--epochs")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("o")), "nothing written on bad flags")
    }

    func testEvalAndDemoFlagValuesOutOfRange() throws {
        let data = tmp.path("d.jsonl")
        try Data("{\"instruction\": \"a\", \"output\": \"b\"}\n".utf8).write(to: URL(fileURLWithPath: data))
        try failure(["eval", "--model", model, "--data", data, "--batch-size", "0"], "--batch-size")
        try failure(["eval", "--model", model, "--data", data, "--max-length=-1"], "--max-length")
        try failure(["demo", "--output", tmp.path("demo"), "--questions=-1"], "--questions")
        try failure(["demo", "--output", tmp.path("demo"), "--lora-r=-1"], "--lora-r")
    }

    func testEvalGenerateChecksPromptsBeforeGenerating() throws {
        // A record whose prompt does not fit the 256-token context: refused up front, nothing half-written.
        let data = tmp.path("long.jsonl")
        let long = String(repeating: "hello world ", count: 200)
        try Data("{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"\(long)\", \"output\": \"b\"}\n".utf8)
            .write(to: URL(fileURLWithPath: data))
        try failure(["eval", "--model", model, "--data", data, "--generate", "--output-dir", tmp.path("ev")],
                    "record 2: its prompt is")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("ev")))
    }
}

/// `peft template`: the model's own template rendered as transformers renders it, and clear errors.
final class TemplateCommandTests: XCTestCase {
    func testRendersTheModelsTemplate() throws {
        let tmp = try TemporaryDirectory("cli-template")
        defer { tmp.cleanup() }
        try Data(#"{"messages": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "您好！"}]}"#.utf8)
            .write(to: tmp.url.appendingPathComponent("m.json"))
        let r = try PeftCommand.run(["template", "--model", modelFixture("tiny-qwen2").path, "--messages", tmp.path("m.json")])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual(r.stdout, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n您好！<|im_end|>\n")
        let g = try PeftCommand.run(["template", "--model", modelFixture("tiny-qwen2").path, "--messages", tmp.path("m.json"),
                                     "--add-generation-prompt", "--json"])
        XCTAssertTrue(g.stdout.contains(#"<|im_start|>assistant\n""#), g.stdout)
        try Data(#"[{"content": "no role"}]"#.utf8).write(to: tmp.url.appendingPathComponent("bad.json"))
        let bad = try PeftCommand.run(["template", "--model", modelFixture("tiny-qwen2").path, "--messages", tmp.path("bad.json")])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("message 1"), bad.stderr)
        try Data("[{".utf8).write(to: tmp.url.appendingPathComponent("broken.json"))
        let broken = try PeftCommand.run(["template", "--model", modelFixture("tiny-qwen2").path, "--messages", tmp.path("broken.json")])
        XCTAssertNotEqual(broken.status, 0)
        XCTAssertTrue(broken.stderr.contains("broken.json"), broken.stderr)
    }
}

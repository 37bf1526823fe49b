import Foundation
import ModelIO
import TestSupport
import XCTest

/// `peft prune` through the executable: the report, the folder it writes, recovery (LoRA + merge keeps every zero),
/// quantizing the result, layer removal, and the bad-input answers.
final class PruneCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2-prune").path

    override func setUpWithError() throws {
        tmp = try TemporaryDirectory("cli-prune")
        let lines = [("你好", "你好！很高兴见到你。"), ("2+2?", "4"), ("Name a colour.", "Blue, like the sky."),
                     ("Count to five.", "1 2 3 4 5")]
            .map { "{\"instruction\": \"\($0.0)\", \"input\": \"\", \"output\": \"\($0.1)\"}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("calib.jsonl"))
    }

    override func tearDown() { tmp.cleanup() }

    func json(_ text: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], text)
    }

    /// name -> values of every projection weight in a model folder.
    func projections(_ dir: String) throws -> [String: [Float]] {
        let d = try ModelDirectory(url: URL(fileURLWithPath: dir))
        var out: [String: [Float]] = [:]
        for name in d.tensorNames where name.contains("_proj.weight") {
            let b = try d.tensor(name).floatBuffer()
            out[name] = Array(UnsafeBufferPointer(start: b.pointer, count: b.count))
        }
        return out
    }

    func testWandaTwoOfFourThenLoRAMergeKeepsEveryZero() throws {
        let pruned = tmp.path("pruned")
        let r = try PeftCommand.run(["prune", "--model", model, "--data", tmp.path("calib.jsonl"), "--output", pruned,
                                     "--method", "wanda", "--pattern", "2:4", "--nsamples", "3", "--seqlen", "32", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let report = try json(r.stdout)
        XCTAssertEqual(report["method"] as? String, "wanda")
        XCTAssertEqual(report["pattern"] as? String, "2:4")
        XCTAssertEqual(report["nsamples"] as? Int, 3)
        XCTAssertEqual(report["overall_sparsity"] as? Double ?? 0, 0.5, accuracy: 1e-12)
        XCTAssertEqual((report["matrices"] as? [[String: Any]])?.count, 28)
        XCTAssertNotNil(report["loss_before"] as? Double)
        XCTAssertNotNil(report["loss_after"] as? Double)
        XCTAssertTrue(FileManager.default.fileExists(atPath: pruned + "/prune_report.json"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: pruned + "/tokenizer.json"))
        // Every group of 4 inputs holds exactly 2 zeros.
        let before = try projections(pruned)
        XCTAssertEqual(before.count, 28)
        for (name, w) in before {
            for g in stride(from: 0, to: w.count, by: 4) {
                XCTAssertEqual(w[g..<(g + 4)].filter { $0 == 0 }.count, 2, name)
            }
        }
        let info = try json(PeftCommand.run(["info", "--model", pruned, "--json"]).stdout)
        let sparsity = try XCTUnwrap(info["sparsity"] as? [String: Any])
        XCTAssertEqual(sparsity["projections"] as? Double ?? 0, 0.5, accuracy: 1e-12)
        XCTAssertEqual(sparsity["sparse_matrices"] as? Int, 28)

        // Recovery: LoRA on every projection, merged: the zeros stay, the rest moved.
        let adapter = tmp.path("adapter")
        let t = try PeftCommand.run(["train", "--model", pruned, "--data", tmp.path("calib.jsonl"), "--output", adapter,
                                     "--target-modules", "all-linear", "--max-steps", "3", "--batch-size", "2",
                                     "--lr", "0.01", "--dtype", "float32"])
        XCTAssertEqual(t.status, 0, t.stderr)
        let merged = tmp.path("merged")
        let m = try PeftCommand.run(["merge", "--model", pruned, "--adapter", adapter, "--output", merged])
        XCTAssertEqual(m.status, 0, m.stderr)
        XCTAssertTrue(m.stderr.contains("kept the zeros of 28 pruned tensors"), m.stderr)
        let after = try projections(merged)
        var moved = 0
        for (name, w) in before {
            let v = try XCTUnwrap(after[name])
            for i in w.indices {
                if w[i] == 0 { XCTAssertEqual(v[i], 0, name) } else if v[i] != w[i] { moved += 1 }
            }
        }
        XCTAssertGreaterThan(moved, 1000)
        let mi = try json(PeftCommand.run(["info", "--model", merged, "--json"]).stdout)
        XCTAssertEqual((mi["sparsity"] as? [String: Any])?["projections"] as? Double ?? 0, 0.5, accuracy: 1e-12)
        // The pruned model quantizes like any other.
        let q = try PeftCommand.run(["quantize", "--model", pruned, "--type", "q8_0", "--output", tmp.path("p.gguf")])
        XCTAssertEqual(q.status, 0, q.stderr)
    }

    /// A mixture of experts: every expert's projections are pruned too (the router is not), the samples stop at the
    /// model's context, and the result generates and counts as sparse.
    func testMixtureOfExpertsPrunesEveryExpert() throws {
        let out = tmp.path("moe")
        let r = try PeftCommand.run(["prune", "--model", modelFixture("tiny-qwen2-moe").path, "--data", tmp.path("calib.jsonl"),
                                     "--output", out, "--method", "wanda", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stderr.contains("cut at 64 tokens"), r.stderr)
        let report = try json(r.stdout)
        let names = try XCTUnwrap(report["matrices"] as? [[String: Any]]).compactMap { $0["name"] as? String }
        XCTAssertEqual(names.count, 26)
        for e in 0..<4 { XCTAssertTrue(names.contains("model.layers.0.mlp.experts.\(e).down_proj.weight"), "\(e)") }
        XCTAssertTrue(names.contains("model.layers.0.mlp.shared_expert.up_proj.weight"))
        XCTAssertFalse(names.contains("model.layers.0.mlp.gate.weight"))
        XCTAssertEqual(report["overall_sparsity"] as? Double ?? 0, 0.5, accuracy: 1e-12)
        let g = try PeftCommand.run(["generate", "--model", out, "--prompt", "hi", "--max-new-tokens", "3", "--json"])
        XCTAssertEqual(g.status, 0, g.stderr)
        let info = try json(PeftCommand.run(["info", "--model", out, "--json"]).stdout)
        XCTAssertEqual((info["sparsity"] as? [String: Any])?["sparse_matrices"] as? Int, 26)
    }

    func testLayerRemovalWritesASmallerModel() throws {
        for (flag, key) in [("--remove-layers", "block_influence"), ("--remove-block", "angular_distance")] {
            let out = tmp.path("smaller\(flag)")
            let r = try PeftCommand.run(["prune", "--model", model, "--data", tmp.path("calib.jsonl"), "--output", out,
                                         "--method", "layers", flag, "2", "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let report = try json(r.stdout)
            let layers = try XCTUnwrap(report["layers"] as? [String: Any])
            XCTAssertEqual((layers["removed"] as? [Int])?.count, 2)
            XCTAssertEqual(layers["criterion"] as? String, key)
            XCTAssertEqual((layers["block_influence"] as? [Double])?.count, 4)
            XCTAssertEqual(report["layer_count_after"] as? Int, 2)
            let config = try json(String(decoding: Data(contentsOf: URL(fileURLWithPath: out + "/config.json")), as: UTF8.self))
            XCTAssertEqual(config["num_hidden_layers"] as? Int, 2)
            XCTAssertEqual((config["layer_types"] as? [String])?.count, 2)
            let g = try PeftCommand.run(["generate", "--model", out, "--prompt", "hi", "--max-new-tokens", "3", "--json"])
            XCTAssertEqual(g.status, 0, g.stderr)
            let q = try PeftCommand.run(["quantize", "--model", out, "--type", "q8_0", "--output", out + ".gguf"])
            XCTAssertEqual(q.status, 0, q.stderr)
        }
    }

    func testBadPruneInput() throws {
        func fails(_ extra: [String], _ fragment: String, line: UInt = #line) throws {
            let r = try PeftCommand.run(["prune", "--model", model, "--data", tmp.path("calib.jsonl"), "--output", tmp.path("bad")] + extra)
            XCTAssertNotEqual(r.status, 0, line: line)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("bad")), line: line)
        }
        try fails(["--method", "wanda", "--pattern", "4:2"], "N:M")
        try fails(["--method", "magnitude", "--sparsity", "1.5"], "--sparsity")
        try fails(["--method", "wanda", "--pattern", "2:4", "--sparsity", "0.7"], "contradicts")
        try fails(["--method", "layers"], "--remove-layers")
        try fails(["--method", "layers", "--remove-layers", "4"], "at least one must stay")
        try fails(["--method", "wanda", "--remove-block", "2"], "--method layers only")
        try fails(["--method", "pruneall"], "pruneall")
        // Baichuan 13B's ALiBi depends on its 40 layers: removing any is refused before the output exists.
        let b = try PeftCommand.run(["prune", "--model", modelFixture("tiny-baichuan2-13b").path, "--data", tmp.path("calib.jsonl"),
                                     "--output", tmp.path("bad"), "--method", "layers", "--remove-layers", "1", "--nsamples", "2"])
        XCTAssertNotEqual(b.status, 0)
        XCTAssertTrue(b.stderr.contains("ALiBi positions only at its 40 layers"), b.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("bad")))
        try Data("{\"instruction\": \"hi\", \"output\": \"x\"}\n{\"instruction\": 3}\n".utf8).write(to: tmp.url.appendingPathComponent("broken.jsonl"))
        let r = try PeftCommand.run(["prune", "--model", model, "--data", tmp.path("broken.jsonl"), "--output", tmp.path("bad"), "--method", "wanda"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("broken.jsonl") && r.stderr.contains("2"), r.stderr)
        // An existing folder that is not an earlier prune is never replaced.
        try FileManager.default.createDirectory(atPath: tmp.path("keep"), withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: tmp.path("keep/notes.txt")))
        let k = try PeftCommand.run(["prune", "--model", model, "--data", tmp.path("calib.jsonl"), "--output", tmp.path("keep"), "--method", "magnitude"])
        XCTAssertNotEqual(k.status, 0)
        XCTAssertTrue(k.stderr.contains("not an earlier prune"), k.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.path("keep/notes.txt")))
    }
}

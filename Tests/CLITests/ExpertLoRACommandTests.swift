import Foundation
import ModelIO
import TestSupport
import XCTest

/// `peft train --target-parameters`: LoRA on a mixture's stacked experts from the command line, written as PEFT writes
/// it (ExpertLoRAGoldenTests holds the numbers against PEFT), and what it refuses.
final class ExpertLoRACommandTests: XCTestCase {
    func testTrainsTheExpertsAndWritesPEFTsLayout() throws {
        let dir = try TemporaryDirectory("expert-lora")
        defer { dir.cleanup() }
        let data = dir.path("d.jsonl")
        try Data((0..<12).map { #"{"instruction": "q\#($0) ab", "output": "answer \#($0) xy"}"# }.joined(separator: "\n").utf8)
            .write(to: URL(fileURLWithPath: data))
        let model = modelFixture("tiny-qwen3-moe").path
        let common = ["train", "--model", model, "--data", data, "--max-length", "60", "--template", "chatml", "--dtype", "float32"]
        let experts = ["--target-parameters", "mlp.experts.gate_up_proj,mlp.experts.down_proj,mlp.gate.weight", "--lr", "1e-2", "--max-steps", "8", "--save-every", "4"]
        let r = try PeftCommand.run(common + experts + ["--output", dir.path("out")])
        XCTAssertEqual(r.status, 0, r.stderr)
        // Resumed from step 4: the same adapter, byte for byte (the experts' matrices and their AdamW moments restored).
        let resumed = try PeftCommand.run(common + experts + ["--output", dir.path("resumed"), "--resume", dir.path("out/checkpoint-4")])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir.path("out/adapter_model.safetensors"))),
                       try Data(contentsOf: URL(fileURLWithPath: dir.path("resumed/adapter_model.safetensors"))))
        XCTAssertTrue(r.stderr.contains("6 stacked expert parameters"), r.stderr)
        let config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.path("out/adapter_config.json")))) as? [String: Any])
        XCTAssertEqual(config["target_parameters"] as? [String], ["mlp.experts.down_proj", "mlp.experts.gate_up_proj", "mlp.gate.weight"])
        XCTAssertEqual(config["lora_dropout"] as? Double, 0, "no dropout on parameters, as PEFT requires")
        let file = try SafetensorsFile(path: dir.path("out/adapter_model.safetensors"))
        XCTAssertEqual(file.tensors["base_model.model.model.layers.1.mlp.experts.base_layer.lora_A.weight"]?.shape, [32, 64], "gate_up: [r*E, hidden]")
        XCTAssertEqual(file.tensors["base_model.model.model.layers.1.mlp.experts.lora_B.weight"]?.shape, [64, 32], "down: [hidden, r*E]")
        XCTAssertEqual(file.tensors["base_model.model.model.layers.1.mlp.gate.lora_B.weight"]?.shape, [4, 8], "router: [E, r]")
        // The experts' B moved away from zero: they trained.
        let b = try XCTUnwrap(file.tensors["base_model.model.model.layers.0.mlp.experts.lora_B.weight"]).floats()
        XCTAssertGreaterThan(b.map(abs).max() ?? 0, 0)
        // The experts alone (--target-modules none).
        let alone = try PeftCommand.run(common + ["--max-steps", "2", "--output", dir.path("alone"), "--target-modules", "none",
                                                  "--target-parameters", "mlp.experts.down_proj"])
        XCTAssertEqual(alone.status, 0, alone.stderr)
        XCTAssertEqual(Set(try SafetensorsFile(path: dir.path("alone/adapter_model.safetensors")).tensors.keys),
                       ["base_model.model.model.layers.0.mlp.experts.lora_A.weight", "base_model.model.model.layers.0.mlp.experts.lora_B.weight",
                        "base_model.model.model.layers.1.mlp.experts.lora_A.weight", "base_model.model.model.layers.1.mlp.experts.lora_B.weight"])
        // Refused: dropout, a parameter other than the experts' and the router's, a dense model.
        let dropout = try PeftCommand.run(common + ["--max-steps", "1", "--output", dir.path("x"), "--lora-dropout", "0.1",
                                                    "--target-parameters", "mlp.experts.gate_up_proj"])
        XCTAssertNotEqual(dropout.status, 0)
        XCTAssertTrue(dropout.stderr.contains("no dropout"), dropout.stderr)
        let router = try PeftCommand.run(common + ["--max-steps", "1", "--output", dir.path("y"), "--target-parameters", "mlp.shared_expert_gate.weight"])
        XCTAssertNotEqual(router.status, 0)
        XCTAssertTrue(router.stderr.contains("'mlp.shared_expert_gate.weight' is not supported"), router.stderr)
        let dense = try PeftCommand.run(["train", "--model", modelFixture("tiny-qwen2").path, "--data", data, "--max-length", "60",
                                         "--max-steps", "1", "--output", dir.path("z"), "--target-parameters", "mlp.experts.down_proj"])
        XCTAssertNotEqual(dense.status, 0)
        XCTAssertTrue(dense.stderr.contains("mixture-of-experts"), dense.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path("x")) || FileManager.default.fileExists(atPath: dir.path("z")))
    }
}

import Adapters
import Foundation
import Kernels
import ModelIO
import TestSupport
import Transformer
import XCTest

/// LoRA side-car behaviour that needs no reference: finite-difference gradients (with dropout on),
/// initialisation, target matching, save/load round trips and mismatch reports.
final class LoRAAdapterTests: XCTestCase {
    func tinyModel(_ name: String = "tiny-qwen2") throws -> TransformerModel {
        try TransformerModel.load(directory: modelFixture(name), dtype: .float32)
    }

    func testFiniteDifferenceGradientsWithDropout() throws {
        for name in ["tiny-qwen2", "tiny-qwen3"] {
            let m = try tinyModel(name)
            let lora = try LoRAAdapter(config: LoRAConfig(r: 2, alpha: 4, dropout: 0.3, targetModules: .allLinear),
                                       model: m.config)
            lora.initialize(seed: 5)
            // Non-zero B so gradients reach A.
            var rng = SeededGenerator(seed: 6)
            for s in lora.orderedSites {
                for i in 0..<(s.outFeatures * s.rank) { lora.parameters[s.bOffset + i] = rng.nextNormal() * 0.3 }
            }
            m.adapter = lora
            let batch = PackedBatch(sequences: [[3, 9, 27, 81, 243, 5, 7], [11, 13, 17, 19]])
            let labels: [Int32] = [9, 27, 81, 243, 5, 7, -100, 13, -100, 19, -100]
            let buffers = ActivationBuffers(config: m.config, capacity: batch.rowCount, longest: batch.longest,
                                            policy: .keepAll)
            let context = PassContext(training: true, randomKey: 99)
            lora.zeroGradients()
            _ = m.forwardBackward(batch, labels: labels, gradScale: 1, buffers: buffers, context: context)
            let analytic = lora.gradients.array
            // Probe a few entries of A and B in the first and last sites.
            let probes = [lora.orderedSites.first!, lora.orderedSites.last!].flatMap { s in
                [s.aOffset, s.aOffset + 3, s.bOffset, s.bOffset + 5]
            }
            let base = lora.parameters.array
            let fd = finiteDifferenceGradient(base, indices: probes, step: 1e-2) { values in
                for (i, v) in values.enumerated() { lora.parameters[i] = v }
                defer { for (i, v) in base.enumerated() { lora.parameters[i] = v } }
                let b2 = ActivationBuffers(config: m.config, capacity: batch.rowCount, longest: batch.longest,
                                           policy: .keepAll)
                lora.zeroGradients()
                return m.forwardBackward(batch, labels: labels, gradScale: 1, buffers: b2, context: context).lossSum
            }
            // Central differences with step 1e-2 on a loss summed over 7 rows: agreement to ~1e-2 relative.
            assertClose(probes.map { analytic[$0] }, fd, atol: 2e-3, rtol: 2e-2, name)
        }
    }

    func testPEFTInitialisationDistribution() throws {
        let m = try tinyModel()
        let lora = try LoRAAdapter(config: LoRAConfig(r: 8, alpha: 16), model: m.config)
        lora.initialize(seed: 1)
        let s = lora.orderedSites[0]
        let a = Array(UnsafeBufferPointer(start: lora.parameters.pointer + s.aOffset, count: s.rank * s.inFeatures))
        let bound = 1 / Float(s.inFeatures).squareRoot()
        XCTAssertTrue(a.allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(a.map(abs).max()!, 0.9 * bound)
        let b = Array(UnsafeBufferPointer(start: lora.parameters.pointer + s.bOffset, count: s.rank * s.outFeatures))
        XCTAssertTrue(b.allSatisfy { $0 == 0 })
        // B = 0: the adapted model computes exactly the base model.
        let batch = PackedBatch(sequences: [[1, 2, 3, 4]])
        let plain = m.logits(batch)
        m.adapter = lora
        XCTAssertEqual(m.logits(batch), plain)
    }

    func testTargetMatching() throws {
        let m = try tinyModel()
        func sites(_ t: LoRAConfig.Targets, layers: [Int]? = nil) throws -> [String] {
            try TargetModules.sites(for: LoRAConfig(targetModules: t, layersToTransform: layers), model: m.config)
                .map(m.config.layout.moduleName)
        }
        XCTAssertEqual(try sites(.names(["q_proj", "v_proj"])).count, 4)
        XCTAssertEqual(try sites(.allLinear).count, 14)
        XCTAssertEqual(try sites(.names(["model.layers.1.mlp.down_proj"])), ["model.layers.1.mlp.down_proj"])
        XCTAssertEqual(try sites(.regex(#".*\.1\.self_attn\.(q|k)_proj"#)),
                       ["model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj"])
        XCTAssertEqual(try sites(.names(["q_proj"]), layers: [1]), ["model.layers.1.self_attn.q_proj"])
        XCTAssertThrowsError(try LoRAAdapter(config: LoRAConfig(targetModules: .names(["query_key_value"])),
                                             model: m.config)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("query_key_value") && text.contains("q_proj") && text.contains("down_proj"), text)
        }
        XCTAssertEqual(LoRAConfig.targets(fromList: "q_proj, v_proj"), .names(["q_proj", "v_proj"]))
        XCTAssertEqual(LoRAConfig.targets(fromList: "all-linear"), .allLinear)
    }

    func testSaveLoadRoundTripAndConfigFields() throws {
        let m = try tinyModel()
        let config = LoRAConfig(r: 4, alpha: 8, dropout: 0.05, targetModules: .names(["v_proj", "q_proj"]),
                                useRSLoRA: true, rankPattern: ["v_proj": 2])
        let lora = try LoRAAdapter(config: config, model: m.config)
        lora.initialize(seed: 3)
        for i in 0..<lora.parameterCount { lora.parameters[i] += Float(i % 7) * 0.01 }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try lora.save(to: dir, baseModel: "tiny-qwen2")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        XCTAssertEqual(json["peft_type"] as? String, "LORA")
        XCTAssertEqual(json["task_type"] as? String, "CAUSAL_LM")
        XCTAssertEqual(json["target_modules"] as? [String], ["q_proj", "v_proj"])
        XCTAssertEqual(json["lora_alpha"] as? Int, 8)
        XCTAssertEqual(json["use_rslora"] as? Bool, true)
        XCTAssertEqual(json["base_model_name_or_path"] as? String, "tiny-qwen2")
        let file = try SafetensorsFile(path: dir.appendingPathComponent("adapter_model.safetensors").path)
        XCTAssertEqual(file.tensors["base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"]?.shape, [2, 64])
        XCTAssertEqual(file.tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"]?.shape, [64, 4])
        let back = try LoRAAdapter.load(from: dir, model: m.config)
        XCTAssertEqual(back.parameters.array, lora.parameters.array)
        XCTAssertEqual(back.orderedSites.map(\.scaling), lora.orderedSites.map(\.scaling))
    }

    /// target_parameters: the experts' two stacked matrices and the router are read; anything else, dropout or DoRA
    /// there is refused by the config field, not as stray tensors.
    func testTargetParametersAreReadOrRefusedByName() throws {
        func config(_ fields: String) throws -> LoRAConfig {
            try LoRAConfig(json: Data(#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"], \#(fields)}"#.utf8), path: "a/adapter_config.json")
        }
        XCTAssertEqual(try config(#""lora_dropout": 0, "target_parameters": ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"]"#).targetParameters,
                       ["mlp.experts.gate_up_proj", "mlp.experts.down_proj"])
        XCTAssertEqual(try config(#""target_parameters": null"#).targetParameters, [])
        for (fields, expected) in [(#""lora_dropout": 0, "target_parameters": ["mlp.shared_expert_gate.weight"]"#, "'mlp.shared_expert_gate.weight' is not supported"),
                                   (#""lora_dropout": 0.1, "target_parameters": ["mlp.experts.down_proj"]"#, "no dropout"),
                                   (#""lora_dropout": 0, "use_dora": true, "target_parameters": ["mlp.experts.down_proj"]"#, "DoRA")] {
            XCTAssertThrowsError(try config(fields)) { XCTAssertTrue("\($0)".contains(expected), "\($0)") }
        }
    }

    func testMismatchedAdapterListsEveryProblem() throws {
        // A Qwen2 adapter (k/v out = 32) on the Llama fixture (k/v out = 64): every k/v lora_B is wrong.
        let llama = try tinyModel("tiny-llama")
        XCTAssertThrowsError(try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-lora-all"), model: llama.config)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("4 problems"), text)
            XCTAssertTrue(text.contains("layers.0.self_attn.k_proj.lora_B.weight: file has shape [32, 4], this model needs [64, 4]"), text)
            XCTAssertTrue(text.contains("layers.1.self_attn.v_proj.lora_B"), text)
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try LoRAAdapter.load(from: dir, model: llama.config)) { error in
            XCTAssertTrue("\(error)".contains("not a PEFT adapter folder"), "\(error)")
        }
        try Data(#"{"peft_type": "PREFIX_TUNING", "r": 8}"#.utf8).write(to: dir.appendingPathComponent("adapter_config.json"))
        XCTAssertThrowsError(try LoRAAdapter.load(from: dir, model: llama.config)) { error in
            XCTAssertTrue("\(error)".contains("is a prefix tuning (P-tuning v2) adapter, not LoRA"), "\(error)")
        }
        try Data(#"{"peft_type": "LOHA", "r": 8}"#.utf8).write(to: dir.appendingPathComponent("adapter_config.json"))
        XCTAssertThrowsError(try LoRAAdapter.load(from: dir, model: llama.config)) { error in
            XCTAssertTrue("\(error)".contains("peft_type LOHA is not supported"), "\(error)")
        }
    }
}

import Adapters
import Foundation
import Kernels
import ModelIO
import TestSupport
import Transformer
import XCTest

/// PEFT's LoRA on a mixture's stacked experts and router (target_parameters mlp.experts.gate_up_proj,
/// mlp.experts.down_proj and mlp.gate.weight, beside q_proj/v_proj; scripts/make_family_fixtures.py --only-expert-lora) on Qwen3-MoE, Qwen2-MoE and OLMoE: PEFT's
/// adapter file loads here with PEFT's logits, the loss and every gradient (experts' A and B included) equal autograd's
/// with and without checkpointing, the cached decoder agrees, the merge equals transformers' merge_and_unload, and an
/// adapter trained here gives PEFT our logits.
final class ExpertLoRAGoldenTests: XCTestCase {
    struct Golden: Decodable {
        let sequences: [[Int32]]
        let logits: [[Float]]
        let loss: Float
        let lora_grads: [String: [Float]]
        let merged_logits: [[Float]]
        /// PEFT's logits with an adapter our `peft train --target-parameters` wrote (adapters/tiny-<family>-expert-ours).
        let ours_in_peft_logits: [[Float]]
    }

    let names = ["qwen3-moe", "qwen2-moe", "olmoe"]

    func golden(_ name: String) throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/expert-lora-\(name).json")))
    }

    func testPEFTAdapterLogitsLossAndGradients() throws {
        for name in names {
            let g = try golden(name)
            for policy in [ActivationPolicy.keepAll, .checkpointing] {
                let m = try TransformerModel.load(directory: modelFixture("tiny-\(name)"), dtype: .float32)
                let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-\(name)-expert-lora"), model: m.config)
                let experts = try XCTUnwrap(lora.experts, name)
                XCTAssertEqual(experts.blocks.count, 3 * (0..<m.config.layerCount).filter { m.config.isSparse(layer: $0) }.count,
                               "gate_up, down and the router in every sparse layer")
                m.adapter = lora
                assertClose(m.logits(PackedBatch(sequences: g.sequences)), g.logits.flatMap { $0 }, atol: 2e-4, "\(name) logits")
                XCTAssertEqual(FamilyGoldenTests.labelledLoss(m, lora, policy: policy), g.loss, accuracy: 1e-5 * g.loss, "\(name) loss")
                try assertLoRAGradients(lora, equal: g.lora_grads, "\(name) \(policy)")
                for p in experts.namedParameters {
                    let theirs = try XCTUnwrap(g.lora_grads[p.name], p.name)
                    let ours = Array(UnsafeBufferPointer(start: lora.gradients.pointer + p.offset, count: p.count))
                    let scale = theirs.map(abs).max() ?? 1
                    XCTAssertGreaterThan(scale, 0, "\(p.name): the experts' gradient is not zero")
                    assertClose(ours, theirs, atol: 2e-4 * scale, rtol: 1e-3, "\(p.name) \(name) \(policy)")
                }
            }
        }
    }

    /// An adapter trained here (4 steps of `peft train --target-parameters`) computes in PEFT what it computes here.
    func testOurAdapterInPEFT() throws {
        for name in names {
            let g = try golden(name)
            let m = try TransformerModel.load(directory: modelFixture("tiny-\(name)"), dtype: .float32)
            let base = m.logits(PackedBatch(sequences: g.sequences))
            m.adapter = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-\(name)-expert-ours"), model: m.config)
            let ours = m.logits(PackedBatch(sequences: g.sequences))
            assertClose(ours, g.ours_in_peft_logits.flatMap { $0 }, atol: 2e-4, "\(name): ours in PEFT")
            XCTAssertGreaterThan(zip(ours, base).map { abs($0 - $1) }.max() ?? 0, 0.01, "\(name): the trained adapter changes the logits")
        }
    }

    /// The experts' update counts: without it the logits move by far more than the tolerance.
    func testTheExpertUpdateIsSeen() throws {
        let g = try golden("qwen3-moe")
        let m = try TransformerModel.load(directory: modelFixture("tiny-qwen3-moe"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen3-moe-expert-lora"), model: m.config)
        for p in lora.experts!.namedParameters where p.name.contains("lora_B") {
            (lora.parameters.pointer + p.offset).update(repeating: 0, count: p.count)
        }
        m.adapter = lora
        let ours = m.logits(PackedBatch(sequences: g.sequences)), theirs = g.logits.flatMap { $0 }
        XCTAssertGreaterThan(zip(ours, theirs).map { abs($0 - $1) }.max() ?? 0, 0.01)
    }

    func testCachedDecodingAndMergeMatch() throws {
        for name in names {
            let g = try golden(name)
            let m = try TransformerModel.load(directory: modelFixture("tiny-\(name)"), dtype: .float32)
            let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-\(name)-expert-lora"), model: m.config)
            // The decoder: the first sequence's last logits after its prompt in two appends.
            let seq = g.sequences[0], vocab = m.config.vocabSize
            let session = DecodeSession(model: m, capacity: 64, adapter: .some(lora))
            _ = try session.append(Array(seq.prefix(4)))
            let last = try session.append(Array(seq.dropFirst(4)))
            assertClose(last, Array(g.logits[0].suffix(vocab)), atol: 2e-4, "\(name) cached decoding")
            // Merged into the checkpoint's per-expert matrices: transformers' merge_and_unload logits.
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("expert-merge-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            let report = try AdapterMerger.merge(model: modelFixture("tiny-\(name)"), adapter: lora, output: out)
            let sparse = (0..<m.config.layerCount).filter { m.config.isSparse(layer: $0) }.count
            XCTAssertEqual(report.mergedTensors, lora.orderedSites.count + sparse * (3 * m.config.moe!.experts + 1), name)
            let merged = try TransformerModel.load(directory: out, dtype: .float32)
            assertClose(merged.logits(PackedBatch(sequences: g.sequences)), g.merged_logits.flatMap { $0 }, atol: 2e-4, "\(name) merged")
        }
    }

    /// Served together: a step of sessions with the expert adapter, the bare model and another adapter in one batch
    /// gives each the logits it gets alone.
    func testBatchedDecodingWithOtherAdapters() throws {
        let m = try TransformerModel.load(directory: modelFixture("tiny-qwen3-moe"), dtype: .float32)
        let experts = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen3-moe-expert-lora"), model: m.config)
        let attention = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen3-moe-lora"), model: m.config)
        let prompt: [Int32] = [5, 17, 42, 99, 3], next: Int32 = 250
        let adapters: [ModelAdapter?] = [experts, nil, attention, experts]
        var alone: [[Float]] = []
        for a in adapters {
            let s = DecodeSession(model: m, capacity: 32, adapter: .some(a))
            _ = try s.append(prompt)
            alone.append(try s.append([next]))
        }
        let sessions = adapters.map { DecodeSession(model: m, capacity: 32, adapter: .some($0)) }
        for s in sessions { _ = try s.append(prompt) }
        let batch = DecodeBatch(model: m, maxRows: 4)
        let out = try batch.step(sessions, tokens: Array(repeating: next, count: 4))
        let v = m.config.vocabSize
        for (i, expected) in alone.enumerated() {
            assertClose(Array(UnsafeBufferPointer(start: out + i * v, count: v)), expected, atol: 1e-4, "session \(i)")
        }
        XCTAssertGreaterThan(zip(alone[0], alone[1]).map { abs($0 - $1) }.max() ?? 0, 0.01, "the expert update shows")
    }

    /// Saved by us, read back equal, with PEFT's keys.
    func testSaveRoundTrip() throws {
        let m = try TransformerModel.load(directory: modelFixture("tiny-qwen3-moe"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen3-moe-expert-lora"), model: m.config)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("expert-save-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try lora.save(to: out, baseModel: nil)
        let again = try LoRAAdapter.load(from: out, model: m.config)
        XCTAssertEqual(Set(again.config.targetParameters), Set(LoRAConfig.expertParameters + [LoRAConfig.routerParameter]))
        XCTAssertEqual(Array(UnsafeBufferPointer(start: again.parameters.pointer, count: again.parameters.count)),
                       Array(UnsafeBufferPointer(start: lora.parameters.pointer, count: lora.parameters.count)))
        let theirs = try SafetensorsFile(path: fixtureURL("adapters/tiny-qwen3-moe-expert-lora/adapter_model.safetensors").path)
        let ours = try SafetensorsFile(path: out.appendingPathComponent("adapter_model.safetensors").path)
        XCTAssertEqual(Set(ours.tensors.keys), Set(theirs.tensors.keys), "PEFT's keys, nesting included")
        // The config's order does not matter (PEFT nests by the module's parameter order); one parameter alone has no
        // base_layer.
        var config = lora.config
        config.targetParameters.reverse()
        XCTAssertEqual(try LoRAAdapter(config: config, model: m.config).namedParameters.map(\.name), lora.namedParameters.map(\.name))
        config.targetParameters = ["mlp.experts.down_proj"]
        XCTAssertTrue(try LoRAAdapter(config: config, model: m.config).namedParameters.contains { $0.name == "base_model.model.model.layers.0.mlp.experts.lora_A.weight" })
    }
}

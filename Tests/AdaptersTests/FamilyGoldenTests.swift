import Adapters
import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// The families beyond Qwen2/Llama against their reference (scripts/make_family_fixtures.py): Qwen v1 (fused c_attn,
/// w1/w2 MLP, log-n scaling), InternLM2 (interleaved wqkv under GQA), Baichuan2-7B (W_pack, NormHead), Baichuan2-13B
/// (ALiBi positions over 6 heads, no rotary), Phi-3
/// (qkv_proj, gate_up_proj, partial rotary, LongRoPE, sliding window, tied head), InternLM3, Gemma 2/3, GLM, GLM-4-0414,
/// Qwen2-MoE, Qwen3-MoE, OLMoE (q/k norms across all heads) and GLM-4's remote-code layout (ChatGLMModel: query_key_value, dense_h_to_4h, its own names). Each: logits of
/// packed sequences, 16 greedy tokens through the KV cache, the eval loss, and a PEFT LoRA adapter on the fused
/// q/k/v module with its logits, loss and every gradient; then merged into the checkpoint's own layout.
final class FamilyGoldenTests: XCTestCase {
    struct Golden: Decodable {
        let sequences: [[Int32]]
        let logits: [[Float]]
        let greedy_prompt: [Int32]
        let greedy_continuation: [Int32]
        let loss: Float
        let lora_logits: [[Float]]
        let lora_loss: Float
        let lora_grads: [String: [Float]]
        let targets: [String]
        /// Our `peft train` adapter (adapters/tiny-<family>-ours) as PEFT computes it, and our `peft merge` of it as
        /// transformers (or the remote-code restatement, strictly loaded) computes it.
        let ours_in_peft_logits: [[Float]]?
        let ours_merged_logits: [[Float]]?
    }

    static let labelled: (ids: [Int32], labels: [Int32]) = (
        [301, 17, 42, 99, 3, 250, 7, 1, 64, 128, 77, 5],
        [-100, -100, -100, -100, 250, 7, 1, 64, 128, 77, 5, -100])

    /// The mean loss of one training pass over the labelled sequence with `lora` attached (its gradients zeroed first,
    /// then filled).
    static func labelledLoss(_ m: TransformerModel, _ lora: LoRAAdapter, policy: ActivationPolicy) -> Float {
        let batch = PackedBatch(sequences: [labelled.ids])
        let labels = labelled.labels, count = labels.filter { $0 >= 0 }.count
        let buffers = m.makeBuffers(batches: [batch.lengths], policy: policy)
        lora.zeroGradients()
        let (sum, n) = m.forwardBackward(batch, labels: labels, gradScale: 1 / Float(count), buffers: buffers,
                                         context: PassContext(training: true, randomKey: 1))
        return Float(sum) / Float(n)
    }

    let families: [(name: String, architecture: ModelConfig.Architecture)] = [
        ("qwen1", .qwen), ("qwen1-ntk", .qwen), ("internlm2", .internlm2), ("baichuan2", .baichuan), ("baichuan2-13b", .baichuan), ("phi3", .phi3),
        ("internlm3", .internlm3),
        ("gemma2", .gemma2), ("gemma3", .gemma3), ("glm", .glm), ("glm4", .glm4),
        ("qwen2-moe", .qwen2MoE), ("qwen3-moe", .qwen3MoE), ("olmoe", .olmoe), ("chatglm", .glm),
    ]

    func golden(_ family: String) throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/family-\(family).json")))
    }

    func testConfigsReadAsTheirFamilies() throws {
        for (name, arch) in families {
            let c = try ModelConfig(directory: modelFixture("tiny-\(name)"))
            XCTAssertEqual(c.architecture, arch, name)
        }
        // Parameter counts equal the checkpoints' element counts (tied heads once, every norm, experts).
        let counts = ["qwen1": 131776, "internlm2": 123200, "baichuan2": 131392, "phi3": 98624, "internlm3": 147776,
                      "gemma2": 98880, "gemma3": 98944, "glm": 123456, "glm4": 123712, "qwen2-moe": 132992,
                      "qwen3-moe": 123776, "chatglm": 123456, "olmoe": 123904, "baichuan2-13b": 593712, "qwen1-ntk": 131776]
        for (name, count) in counts {
            XCTAssertEqual(try ModelConfig(directory: modelFixture("tiny-\(name)")).parameterCount, count, name)
        }
        XCTAssertEqual(try ModelConfig(directory: modelFixture("tiny-qwen3-moe")).activeParameterCount, 123776 - 384 * 64 - 2 * 2 * 3 * 64 * 32)
        let qwen = try ModelConfig(directory: modelFixture("tiny-qwen1"))
        XCTAssertEqual(qwen.intermediateSize, 128, "Qwen v1's w1/w2 are intermediate_size / 2 wide")
        XCTAssertEqual(qwen.projections, [.qkv, .o, .gate, .up, .down])
        XCTAssertEqual(qwen.layout.moduleName(ProjectionSite(layer: 1, projection: .gate)), "transformer.h.1.mlp.w2")
        XCTAssertEqual(qwen.lognScalingLength, 8)
        let phi = try ModelConfig(directory: modelFixture("tiny-phi3"))
        XCTAssertEqual(phi.projections, [.qkv, .o, .gateUp, .down])
        XCTAssertEqual(phi.rotaryDim, 12)
        XCTAssertEqual(phi.attentionWindow(layer: 1), 8)
        // Baichuan 13B (40 layers): ALiBi, no rotary; 6 heads take the slopes of 4 and every other one of 8. The
        // real 40 heads: 32's slopes from 2^(-1/4), then 64's first, third, ... from 2^(-1/8).
        let b13 = try ModelConfig(directory: modelFixture("tiny-baichuan2-13b"))
        XCTAssertFalse(b13.usesRotary)
        XCTAssertEqual(b13.alibiSlopes, [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125])
        XCTAssertNil(try ModelConfig(directory: modelFixture("tiny-baichuan2")).alibiSlopes)
        let real = ModelConfig.alibiSlopes(heads: 40)
        XCTAssertEqual(real.count, 40)
        for (h, want) in [(0, pow(2, -0.25)), (31, pow(2, -8.0)), (32, pow(2, -0.125)), (33, pow(2, -0.375)), (39, pow(2, -1.875))] {
            XCTAssertEqual(Double(real[h]), want, accuracy: 1e-7, "head \(h)")
        }
        let intern = try ModelConfig(directory: modelFixture("tiny-internlm2"))
        XCTAssertEqual(intern.qkvFusion, .grouped)
        XCTAssertEqual(intern.defaultLoRATargets, ["attention.wqkv"])
        // GLM-4's remote-code layout: GLM under ChatGLM's names, [q | k | v] fused, base 10000 * rope_ratio.
        let chatglm = try ModelConfig(directory: modelFixture("tiny-chatglm"))
        XCTAssertEqual(chatglm.projections, [.qkv, .o, .gateUp, .down])
        XCTAssertEqual(chatglm.qkvFusion, .concatenated)
        XCTAssertEqual(chatglm.kvHeadCount, 2)
        XCTAssertEqual(chatglm.rotaryDim, 8)
        XCTAssertEqual(chatglm.rope.theta, 15000)
        XCTAssertEqual(chatglm.defaultLoRATargets, ["self_attention.query_key_value"])
        XCTAssertEqual(chatglm.layout.name(.lmHead), "transformer.output_layer.weight")
        var odd = try JSONSerialization.jsonObject(with: Data(contentsOf: modelFixture("tiny-chatglm").appendingPathComponent("config.json"))) as! [String: Any]
        odd["rmsnorm"] = false
        XCTAssertThrowsError(try ModelConfig(json: try JSONSerialization.data(withJSONObject: odd), path: "config.json")) {
            XCTAssertTrue("\($0)".contains("rmsnorm = false"), "\($0)")
        }
    }

    func testLogitsGreedyAndLossMatchTheReference() throws {
        for (name, _) in families {
            let g = try golden(name)
            let m = try TransformerModel.load(directory: modelFixture("tiny-\(name)"), dtype: .float32)
            // All sequences packed into one batch: each keeps its own rotary pass and window.
            assertClose(m.logits(PackedBatch(sequences: g.sequences)), g.logits.flatMap { $0 }, atol: 2e-4, "\(name) logits")
            // The cached decoder: the longest sequence's last logits after a prefill in two appends (in chunks of 4
            // rows), then greedy. Qwen v1's dynamic NTK takes its alpha from the first append, as its remote code
            // keeps its first pass's: there the prefill is one append.
            let longest = g.sequences.max { $0.count < $1.count }!
            let session = DecodeSession(model: m, capacity: 64, chunkRows: 4)
            let split = m.config.dynamicNTKLength == nil ? 3 : 0
            if split > 0 { _ = try session.append(Array(longest.prefix(split))) }
            let last = try session.append(Array(longest.dropFirst(split)))
            let expected = try XCTUnwrap(g.logits.first { $0.count == longest.count * m.config.vocabSize })
            assertClose(last, Array(expected.suffix(m.config.vocabSize)), atol: 2e-4, "\(name) cached logits")
            let greedy = DecodeSession(model: m, capacity: 64)
            var logits = try greedy.append(g.greedy_prompt)
            var produced: [Int32] = []
            for _ in 0..<g.greedy_continuation.count {
                let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
                produced.append(next)
                logits = try greedy.append([next])
            }
            XCTAssertEqual(produced, g.greedy_continuation, "\(name) greedy")
            let batch = PackedBatch(sequences: [Self.labelled.ids])
            let buffers = m.makeBuffers(batches: [batch.lengths], policy: .inference)
            let (sum, count) = m.loss(batch, labels: Self.labelled.labels, buffers: buffers)
            XCTAssertEqual(Float(sum) / Float(count), g.loss, accuracy: 1e-5 * g.loss, "\(name) loss")
        }
    }

    func testPEFTLoRAOnTheFusedModuleMatchesAutograd() throws {
        for (name, _) in families {
            let g = try golden(name)
            for policy in [ActivationPolicy.keepAll, .checkpointing] {
                let m = try TransformerModel.load(directory: modelFixture("tiny-\(name)"), dtype: .float32)
                let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-\(name)-lora"), model: m.config)
                XCTAssertEqual(lora.orderedSites.count, m.config.layerCount * g.targets.count, "\(name): \(g.targets) per layer")
                m.adapter = lora
                assertClose(m.logits(PackedBatch(sequences: Array(g.sequences.prefix(2)))), g.lora_logits.flatMap { $0 },
                            atol: 2e-4, "\(name) LoRA logits")
                XCTAssertEqual(Self.labelledLoss(m, lora, policy: policy), g.lora_loss, accuracy: 1e-5 * g.lora_loss, "\(name) LoRA loss")
                try assertLoRAGradients(lora, equal: g.lora_grads, "\(name) \(policy)")
            }
        }
    }

    /// Training a mixture of experts with the router's load-balancing loss (transformers' output_router_logits with
    /// router_aux_loss_coef 0.05; scripts/make_family_fixtures.py --only-moe-aux): the aux loss equals transformers',
    /// and every LoRA gradient on q/v/o equals autograd's of cross-entropy + 0.05 * aux (the aux loss reaches the
    /// attention through the routers' inputs), with and without checkpointing. Without the weight, the gradients
    /// differ: the test sees the aux loss.
    func testRouterLoadBalancingLossMatchesTransformers() throws {
        struct Aux: Decodable { let coefficient: Float; let aux_loss: Float; let ce_loss: Float; let lora_grads: [String: [Float]] }
        for name in ["qwen2-moe", "qwen3-moe", "olmoe"] {
            let g = try JSONDecoder().decode(Aux.self, from: Data(contentsOf: fixtureURL("golden/moe-aux-\(name).json")))
            for (policy, weight) in [(ActivationPolicy.keepAll, g.coefficient), (.checkpointing, g.coefficient), (.keepAll, 0)] {
                let m = try TransformerModel.load(directory: modelFixture("tiny-\(name)"), dtype: .float32)
                let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-\(name)-lora"), model: m.config)
                m.adapter = lora
                let batch = PackedBatch(sequences: [Self.labelled.ids])
                let labels = Self.labelled.labels, count = labels.filter { $0 >= 0 }.count
                let buffers = m.makeBuffers(batches: [batch.lengths], policy: policy)
                lora.zeroGradients()
                var context = PassContext(training: true, randomKey: 1)
                context.routerAuxLossWeight = weight
                let (sum, n) = m.forwardBackward(batch, labels: labels, gradScale: 1 / Float(count), buffers: buffers, context: context)
                XCTAssertEqual(Float(sum) / Float(n), g.ce_loss, accuracy: 1e-5 * g.ce_loss, "\(name) cross-entropy")
                if weight > 0 {
                    XCTAssertEqual(Float(try XCTUnwrap(buffers.routerStatistics?.auxLoss)), g.aux_loss, accuracy: 1e-5 * g.aux_loss, "\(name) aux")
                    try assertLoRAGradients(lora, equal: g.lora_grads, "\(name) \(policy) with the aux loss")
                } else {
                    // Cross-entropy alone: some gradient moves by far more than the tolerance above.
                    var worst: Float = 0
                    for s in lora.orderedSites {
                        for (matrix, offset, size) in [("lora_A", s.aOffset, s.rank * s.inFeatures), ("lora_B", s.bOffset, s.outFeatures * s.rank)] {
                            let theirs = try XCTUnwrap(g.lora_grads[LoRAAdapter.key(s.moduleName, matrix)])
                            let scale = theirs.map(abs).max() ?? 1
                            for i in 0..<size { worst = max(worst, abs(lora.gradients.pointer[offset + i] - theirs[i]) / scale) }
                        }
                    }
                    XCTAssertGreaterThan(worst, 0.01, "\(name): the aux loss should change the gradients")
                }
            }
        }
    }

    func testMergedAdapterKeepsTheFamilyLayout() throws {
        for (name, _) in families {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("family-merge-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            let base = try TransformerModel.load(directory: modelFixture("tiny-\(name)"), dtype: .float32)
            let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-\(name)-lora"), model: base.config)
            let report = try AdapterMerger.merge(model: modelFixture("tiny-\(name)"), adapter: lora, output: out)
            XCTAssertEqual(report.mergedTensors, lora.orderedSites.count, name)
            let merged = try TransformerModel.load(directory: out, dtype: .float32)
            let batch = PackedBatch(sequences: [[1, 5, 9, 200, 33, 7]])
            base.adapter = lora
            assertClose(merged.logits(batch), base.logits(batch), atol: 2e-4, "\(name) merged vs side-car")
        }
    }

    /// Full fine-tuning writes the family's own checkpoint: Gemma's norms go back to w (we hold 1 + w).
    func testFullFineTuningWritesTheCheckpointItRead() throws {
        for name in ["gemma2", "glm4", "qwen1"] {
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("family-full-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            let source = modelFixture("tiny-\(name)")
            let m = try TransformerModel.load(directory: source, dtype: .float32)
            let batch = PackedBatch(sequences: [[1, 5, 9, 200, 33, 7]])
            let before = m.logits(batch)
            let full = try BaseFineTuning(model: m, baseDirectory: source, freeze: nil)
            m.adapter = full
            try full.writeOutput(to: out, baseModel: name)
            let reloaded = try TransformerModel.load(directory: out, dtype: .float32)
            assertClose(reloaded.logits(batch), before, atol: 1e-5, "\(name) full round trip")
        }
    }

    /// Gemma 3 configs as published (before transformers 5): global rotary with linear scaling, local base
    /// `rope_local_base_freq`, one global layer in `sliding_window_pattern`.
    func testGemma3HubConfig() throws {
        let json = """
        {"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 128,
         "num_hidden_layers": 12, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256, "vocab_size": 262208,
         "hidden_activation": "gelu_pytorch_tanh", "query_pre_attn_scalar": 256, "rope_theta": 1000000.0,
         "rope_local_base_freq": 10000.0, "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024,
         "sliding_window_pattern": 6, "final_logit_softcapping": null, "attn_logit_softcapping": null,
         "max_position_embeddings": 131072, "rms_norm_eps": 1e-06}
        """
        let c = try ModelConfig(json: Data(json.utf8), path: "config.json")
        XCTAssertEqual(c.architecture, .gemma3)
        XCTAssertEqual((0..<12).map { c.attentionWindow(layer: $0) != nil }, (0..<12).map { ($0 + 1) % 6 != 0 })
        XCTAssertEqual(c.rope(layer: 5), RoPEConfig(theta: 1e6, scaling: .linear(factor: 8)))
        XCTAssertEqual(c.rope(layer: 0), RoPEConfig(theta: 10000))
        XCTAssertTrue(c.tieWordEmbeddings && c.qkNorm && c.sandwichNorms)
        XCTAssertEqual(c.attentionScale, 1 / 16)
        XCTAssertNil(c.attentionSoftcap)
    }

    /// Our adapters load in PEFT and our merges in transformers with the same logits we compute.
    func testOurAdaptersAndMergesLoadInTheReference() throws {
        var checked = 0
        for (name, _) in families {
            let g = try golden(name)
            guard let peftLogits = g.ours_in_peft_logits, let mergedLogits = g.ours_merged_logits else { continue }
            let base = try TransformerModel.load(directory: modelFixture("tiny-\(name)"), dtype: .float32)
            let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-\(name)-ours"), model: base.config)
            base.adapter = lora
            let batch = PackedBatch(sequences: Array(g.sequences.prefix(2)))
            assertClose(base.logits(batch), peftLogits.flatMap { $0 }, atol: 2e-4, "\(name): our adapter in PEFT")
            let out = FileManager.default.temporaryDirectory.appendingPathComponent("family-ours-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: out) }
            _ = try AdapterMerger.merge(model: modelFixture("tiny-\(name)"), adapter: lora, output: out)
            let merged = try TransformerModel.load(directory: out, dtype: .float32)
            assertClose(merged.logits(batch), mergedLogits.flatMap { $0 }, atol: 2e-4, "\(name): our merge in transformers")
            checked += 1
        }
        XCTAssertEqual(checked, 14)
    }
}

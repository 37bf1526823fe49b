import Foundation
import Kernels
import ModelIO
import TestSupport

/// A Qwen2 folder written from a golden's `shape` (hidden, intermediate, layers, heads, kv_heads, vocab; untied head,
/// q/k/v biases) with weights a script rebuilds exactly: `weights(name, shape, index)` for each tensor in the
/// order the scripts write them, stored as `dtype`, and tiny-qwen2's tokenizer. The caller removes `dir`.
func writeHashedQwen2(shape s: [String: Int], dtype: DType, to dir: URL,
                      weights: (_ name: String, _ shape: [Int], _ index: Int) -> [Float]) throws {
    let (c, inter, layers, heads, kvHeads, vocab) = (s["hidden"]!, s["intermediate"]!, s["layers"]!, s["heads"]!, s["kv_heads"]!, s["vocab"]!)
    let kv = kvHeads * (c / heads)
    var shapes: [(String, [Int])] = [("model.embed_tokens.weight", [vocab, c])]
    for l in 0..<layers {
        let p = "model.layers.\(l)"
        shapes += [("\(p).input_layernorm.weight", [c]), ("\(p).post_attention_layernorm.weight", [c]),
                   ("\(p).self_attn.q_proj.weight", [c, c]), ("\(p).self_attn.q_proj.bias", [c]),
                   ("\(p).self_attn.k_proj.weight", [kv, c]), ("\(p).self_attn.k_proj.bias", [kv]),
                   ("\(p).self_attn.v_proj.weight", [kv, c]), ("\(p).self_attn.v_proj.bias", [kv]),
                   ("\(p).self_attn.o_proj.weight", [c, c]), ("\(p).mlp.gate_proj.weight", [inter, c]),
                   ("\(p).mlp.up_proj.weight", [inter, c]), ("\(p).mlp.down_proj.weight", [c, inter])]
    }
    shapes += [("model.norm.weight", [c]), ("lm_head.weight", [vocab, c])]
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    var writer = SafetensorsWriter()
    for (index, (name, shape)) in shapes.enumerated() {
        writer.add(name, dtype: dtype, shape: shape, floats: weights(name, shape, index))
    }
    try writer.write(to: dir.appendingPathComponent("model.safetensors"))
    let config: [String: Any] = [
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": c, "intermediate_size": inter,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kvHeads,
        "vocab_size": vocab, "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "tie_word_embeddings": false, "hidden_act": "silu", "torch_dtype": dtype == .float16 ? "float16" : "float32"]
    try JSONSerialization.data(withJSONObject: config).write(to: dir.appendingPathComponent("config.json"))
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        try FileManager.default.copyItem(at: modelFixture("tiny-qwen2").appendingPathComponent(f), to: dir.appendingPathComponent(f))
    }
}

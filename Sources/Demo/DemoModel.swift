import Foundation
import Kernels
import ModelIO

/// The built-in demo model: a tiny Qwen2-architecture model (4 layers, hidden 256, ~3.7M parameters) with
/// seeded random weights and a 1.5k-token byte-level BPE tokenizer trained on the demo's training split.
/// It knows no language until it is trained: it shows the workflow end to end in minutes, not answer quality.
///
/// ```swift
/// try DemoModel.write(to: URL(fileURLWithPath: "peft-demo/base-model"))
/// ```
public enum DemoModel {
    public static let seed: UInt64 = 20_241_129
    public static let hiddenSize = 256
    public static let intermediateSize = 768
    public static let layerCount = 4
    public static let headCount = 4
    public static let kvHeadCount = 2
    public static let maxPositions = 1024

    static var headDim: Int { hiddenSize / headCount }

    private static let tokenizerObject =
        (try? JSONSerialization.jsonObject(with: Data(DemoAssets.tokenizerJSON.utf8))) as? [String: Any] ?? [:]

    /// Ids of the tokenizer's added tokens by content (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`).
    static func specialID(_ content: String) -> Int {
        let added = tokenizerObject["added_tokens"] as? [[String: Any]] ?? []
        return added.first { $0["content"] as? String == content }.flatMap { ($0["id"] as? NSNumber)?.intValue } ?? 0
    }

    /// Tokenizer size rounded up to a multiple of 64 (as Qwen pads its vocabulary).
    public static var vocabSize: Int {
        let vocab = (tokenizerObject["model"] as? [String: Any])?["vocab"] as? [String: Any]
        let added = (tokenizerObject["added_tokens"] as? [[String: Any]])?.compactMap { ($0["id"] as? NSNumber)?.intValue } ?? []
        let size = max(vocab?.count ?? 0, (added.max() ?? 0) + 1)
        return (size + 63) / 64 * 64
    }

    /// Every weight tensor: name and shape, in Hugging Face naming.
    static func tensors(vocab: Int) -> [(String, [Int])] {
        let c = hiddenSize, i = intermediateSize, kv = kvHeadCount * headDim
        var out: [(String, [Int])] = [("model.embed_tokens.weight", [vocab, c]), ("model.norm.weight", [c])]
        for l in 0..<layerCount {
            let p = "model.layers.\(l)"
            out += [("\(p).input_layernorm.weight", [c]), ("\(p).post_attention_layernorm.weight", [c]),
                    ("\(p).self_attn.q_proj.weight", [c, c]), ("\(p).self_attn.q_proj.bias", [c]),
                    ("\(p).self_attn.k_proj.weight", [kv, c]), ("\(p).self_attn.k_proj.bias", [kv]),
                    ("\(p).self_attn.v_proj.weight", [kv, c]), ("\(p).self_attn.v_proj.bias", [kv]),
                    ("\(p).self_attn.o_proj.weight", [c, c]),
                    ("\(p).mlp.gate_proj.weight", [i, c]), ("\(p).mlp.up_proj.weight", [i, c]),
                    ("\(p).mlp.down_proj.weight", [c, i])]
        }
        return out
    }

    public static var parameterCount: Int { tensors(vocab: vocabSize).reduce(0) { $0 + $1.1.reduce(1, *) } }

    /// Writes a complete Hugging Face model directory (transformers loads it too). Same seed, same bytes.
    public static func write(to url: URL) throws {
        let vocab = vocabSize
        try AtomicFile.writeDirectory(url) { dir in
            var rng = SeededGenerator(seed: seed)
            var writer = SafetensorsWriter()
            for (name, shape) in tensors(vocab: vocab) {
                let count = shape.reduce(1, *)
                let values: [Float]
                if name.hasSuffix("norm.weight") {
                    values = [Float](repeating: 1, count: count)
                } else if name.hasSuffix(".bias") {
                    values = [Float](repeating: 0, count: count)
                } else {
                    // N(0, 1/fan_in): activations keep unit scale through every projection; embedding rows have
                    // norm ~1, so tied logits can reach ~sqrt(hidden) and the loss can approach 0 once trained.
                    let std = 1 / Float(shape[1]).squareRoot()
                    values = (0..<count).map { _ in rng.nextNormal() * std }
                }
                writer.add(name, dtype: .float32, shape: shape, floats: values)
            }
            try writer.write(to: dir.appendingPathComponent("model.safetensors"))
            try json(config(vocab: vocab)).write(to: dir.appendingPathComponent("config.json"))
            let (end, imEnd) = (specialID("<|endoftext|>"), specialID("<|im_end|>"))
            try json(["bos_token_id": end, "eos_token_id": [imEnd, end], "do_sample": false, "max_new_tokens": 128,
                      "transformers_version": "5.24.0"]).write(to: dir.appendingPathComponent("generation_config.json"))
            try Data(DemoAssets.tokenizerJSON.utf8).write(to: dir.appendingPathComponent("tokenizer.json"))
            try Data(DemoAssets.tokenizerConfigJSON.utf8).write(to: dir.appendingPathComponent("tokenizer_config.json"))
            try Data(readme.utf8).write(to: dir.appendingPathComponent("README.md"))
        }
    }

    static func config(vocab: Int) -> [String: Any] {
        [
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": hiddenSize,
            "intermediate_size": intermediateSize, "num_hidden_layers": layerCount, "num_attention_heads": headCount,
            "num_key_value_heads": kvHeadCount, "hidden_act": "silu", "max_position_embeddings": maxPositions,
            "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0, "tie_word_embeddings": true, "vocab_size": vocab,
            "bos_token_id": specialID("<|endoftext|>"), "eos_token_id": specialID("<|im_end|>"),
            "torch_dtype": "float32", "use_sliding_window": false,
            "attention_dropout": 0.0, "initializer_range": 0.02, "use_cache": true,
        ]
    }

    static func json(_ object: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }

    static let readme = """
    # swift-peft built-in demo model

    A tiny Qwen2-architecture model (4 layers, hidden 256, about 3.7M parameters) written by `peft demo` from a
    fixed seed, with random weights: it has learned nothing before fine-tuning. The tokenizer is a small byte-level
    BPE trained on the demo's training split. Use it to see the workflow end to end in a few minutes; use a real
    checkpoint (for example Qwen1.5-1.8B-Chat: `peft demo --model DIR`) to see a real model's answers improve.
    """
}

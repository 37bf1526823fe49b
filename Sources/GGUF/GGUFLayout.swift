import Foundation
import Transformer

/// How llama.cpp lays out each architecture we read and write: its GGUF architecture name (the metadata key prefix),
/// and whether the attention query/key rows are reordered for its rotary embedding (its pre-tokenizers by name are
/// `GGUFPreTokenizer`).
enum GGUFLayout {
    /// The GGUF architecture of a Hugging Face model, as llama.cpp's converter picks it: Qwen2 and Qwen3 keep theirs;
    /// Llama, Mistral and InternLM3 are `llama`; GLM (`GlmForCausalLM`) is `chatglm`.
    static func architecture(of config: ModelConfig) -> String {
        switch config.architecture {
        case .qwen2: "qwen2"
        case .qwen3: "qwen3"
        case .llama, .mistral, .internlm3: "llama"
        case .qwen: "qwen"
        case .qwen2MoE: "qwen2moe"
        case .qwen3MoE: "qwen3moe"
        case .olmoe: "olmoe"
        case .gemma2: "gemma2"
        case .gemma3: "gemma3"
        case .phi3: "phi3"
        case .internlm2: "internlm2"
        case .baichuan: "baichuan"
        case .glm: "chatglm"
        case .glm4: "glm4"
        }
    }

    /// Every GGUF architecture we read and write.
    static let supportedNames = ["qwen2", "qwen3", "llama", "qwen", "qwen2moe", "qwen3moe", "olmoe", "gemma2", "gemma3",
                                 "phi3", "internlm2", "baichuan", "chatglm", "glm4"]

    /// The Hugging Face architecture a GGUF architecture loads as, or nil when we do not support it.
    static func architecture(gguf name: String) -> ModelConfig.Architecture? {
        switch name {
        case "qwen2": .qwen2
        case "qwen3": .qwen3
        case "llama": .llama
        case "qwen": .qwen
        case "qwen2moe": .qwen2MoE
        case "qwen3moe": .qwen3MoE
        case "olmoe": .olmoe
        case "gemma2": .gemma2
        case "gemma3": .gemma3
        case "phi3": .phi3
        case "internlm2": .internlm2
        case "baichuan": .baichuan
        case "chatglm": .glm
        case "glm4": .glm4
        default: nil
        }
    }

    /// llama.cpp's tensor names of the projections (`blk.N.<name>.weight`).
    static let projectionNames: [Projection: String] = [
        .q: "attn_q", .k: "attn_k", .v: "attn_v", .qkv: "attn_qkv", .o: "attn_output",
        .gate: "ffn_gate", .up: "ffn_up", .gateUp: "ffn_up", .down: "ffn_down",
    ]

    /// llama.cpp's Gemma attention scale: 1/sqrt(head size), or 1/sqrt(hidden / heads) for the 27B models (46 layers
    /// of Gemma 2, 62 of Gemma 3); it does not read query_pre_attn_scalar.
    static func gemmaAttentionScale(architecture: ModelConfig.Architecture, layers: Int, hidden: Int, heads: Int,
                                    headDim: Int) -> Float {
        let is27B = (architecture == .gemma2 && layers == 46) || (architecture == .gemma3 && layers == 62)
        return 1 / Float(is27B ? hidden / heads : headDim).squareRoot()
    }

    /// llama.cpp's `feed_forward_length` for a config: Qwen v1 counts w1 and w2 together.
    static func feedForwardLength(_ c: ModelConfig) -> Int { c.architecture == .qwen ? 2 * c.intermediateSize : c.intermediateSize }

    /// llama.cpp's `llama`, `internlm2` and `baichuan` rotate adjacent pairs (x[2i], x[2i+1]) where the Hugging Face
    /// models rotate halves (x[i], x[i + d/2]); its converter reorders the rows of q_proj and k_proj (and their biases)
    /// per head. Qwen, Phi-3 and Gemma run the half rotation in llama.cpp too, and GLM rotates pairs in both, so they
    /// keep their rows.
    static func permutesQueryKey(gguf name: String) -> Bool { ["llama", "internlm2", "baichuan"].contains(name) }

    /// Architectures whose fused q/k/v (InternLM2's `wqkv`, Baichuan's `W_pack`) llama.cpp's converter writes as
    /// separate attn_q, attn_k and attn_v (reordered for its rotation); Qwen v1 and Phi-3 keep attn_qkv.
    static func splitsQKV(gguf name: String) -> Bool { ["internlm2", "baichuan"].contains(name) }

    /// GGUF row i holds Hugging Face row `hfRow(i)` for a [heads * headDim, cols] projection.
    static func hfRow(ofGGUFRow i: Int, headDim: Int) -> Int {
        let h = i / headDim, j = i % headDim, half = headDim / 2
        return h * headDim + (j % 2) * half + j / 2
    }

    /// The inverse: Hugging Face row r is GGUF row `ggufRow(ofHFRow: r)`.
    static func ggufRow(ofHFRow r: Int, headDim: Int) -> Int {
        let h = r / headDim, j = r % headDim, half = headDim / 2
        return h * headDim + 2 * (j % half) + j / half
    }

    /// llama.cpp's per-dimension RoPE frequency divisors (`rope_freqs.weight`) for Llama 3.1's scaling, computed as
    /// its converter does.
    static func llama3FrequencyFactors(headDim: Int, theta: Double, factor: Double, low: Double, high: Double,
                                       original: Int) -> [Float] {
        let lowWavelen = Double(original) / low, highWavelen = Double(original) / high
        return stride(from: 0, to: headDim, by: 2).map { i in
            let freq = 1 / pow(theta, Double(i) / Double(headDim))
            let wavelen = 2 * Double.pi / freq
            if wavelen < highWavelen { return 1 }
            if wavelen > lowWavelen { return Float(factor) }
            let smooth = (Double(original) / wavelen - low) / (high - low)
            return Float(1 / ((1 - smooth) / factor + smooth))
        }
    }
}

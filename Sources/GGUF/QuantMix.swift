import ModelIO
import Transformer

/// The block format of every tensor in a GGUF file of a given `--type`, chosen as llama.cpp's `llama_model_quantize`
/// chooses it without an importance matrix (`llama_tensor_get_type` in src/llama-quant.cpp), for the architectures
/// `peft quantize` writes (llama, qwen2, qwen3; dense, no experts):
///
/// - only 2-D tensors whose names end in `weight` and are not norms are converted; the rest (norms, biases,
///   `rope_freqs`) stay f32;
/// - f32, f16 and bf16 give every such matrix that type; a quantized type is the default of its mixture;
/// - the LM head (`output.weight`, or `token_embd.weight` when the embedding is tied) gets q6_k, unless the mixture's
///   type is q8_0 or its rows are not whole blocks of it (then q8_0); an untied embedding keeps the default;
/// - attn_v: q2_k gives q4_k with 4 or more query heads per KV head, else q3_k; q3_k_m q5_k in layers 0 and 1, q4_k
///   after; q3_k_l q5_k; iq4_nl / iq4_xs q5_k with 4 or more query heads per KV head; q4_k_m / q5_k_m q6_k in the
///   layers `usesMoreBits` picks; q4_k_s q5_k in layers 0 to 3; then, in llama.cpp's "70B" models (80 layers: Qwen2,
///   or Llama with fewer KV heads than heads), q5_k wherever that left q3_k or q4_k;
/// - ffn_down (layer i of n): q2_k gives q3_k; q3_k_m q5_k for i < n/16, q4_k after; q3_k_l q5_k; q4_k_m / q5_k_m q6_k
///   in the layers `usesMoreBits` picks; iq4_nl / iq4_xs q5_k for i < n/8; q4_k_s q5_k for i < n/8;
/// - attn_output: q2_k gives q3_k, q3_k_m q4_k, q3_k_l q5_k; attn_q, attn_k, ffn_gate and ffn_up keep the default;
/// - `q4_k` is every matrix q4_k with none of these rules (llama.cpp's `--pure` Q4_K_S);
/// - last, a row (the innermost dimension) that is not a whole number of blocks: iq4_xs becomes iq4_nl, q2_k and q3_k
///   q4_0, q4_k q5_0, q5_k q5_1, q6_k q8_0; where even that (or a 32-weight type) does not divide the row, f16.
public enum QuantMix {
    /// What the choice depends on beyond the tensor itself.
    public struct Model: Sendable, Equatable {
        /// The GGUF architecture: llama, qwen2 or qwen3.
        public var architecture: String
        public var layerCount: Int
        public var headCount: Int
        public var kvHeadCount: Int
        /// The file has no `output.weight`: the embedding is the LM head too.
        public var tiedEmbeddings: Bool

        public init(architecture: String, layerCount: Int, headCount: Int, kvHeadCount: Int, tiedEmbeddings: Bool) {
            self.architecture = architecture
            self.layerCount = layerCount
            self.headCount = headCount
            self.kvHeadCount = kvHeadCount
            self.tiedEmbeddings = tiedEmbeddings
        }

        public init(config: ModelConfig) {
            self.init(architecture: GGUFLayout.architecture(of: config), layerCount: config.layerCount,
                      headCount: config.headCount, kvHeadCount: config.kvHeadCount, tiedEmbeddings: config.tieWordEmbeddings)
        }

        /// Query heads per KV head (llama.cpp's `n_gqa`, an integer quotient).
        var queryGroups: Int { kvHeadCount > 0 ? headCount / kvHeadCount : 0 }

        /// llama.cpp's LLM_TYPE_70B: 80 layers of Qwen2, or of Llama with grouped-query attention.
        var is70B: Bool {
            layerCount == 80 && (architecture == "qwen2" || (architecture == "llama" && headCount != kvHeadCount))
        }
    }

    /// One tensor's format.
    public struct Choice: Sendable, Equatable {
        /// What the mixture asks for.
        public var wanted: GGMLType
        /// What is stored: `wanted`, or its stand-in where a row is not a whole number of its blocks.
        public var type: GGMLType
        public var isFallback: Bool { type != wanted }
    }

    /// The format of tensor `name` with `shape` (outermost first: [rows, columns], or [n]) in a file of `fileType`.
    public static func choose(tensor name: String, shape: [Int], fileType: GGUFExporter.OutputType, model: Model) -> Choice {
        guard shape.count >= 2, name.hasSuffix("weight"), !name.contains("_norm.weight") else {
            return Choice(wanted: .f32, type: .f32)
        }
        let base = fileType.defaultType
        guard base.block.size > 1 else { return Choice(wanted: base, type: base) }
        let wanted = fileType == .q4_k ? base : mixtureType(name, columns: shape[shape.count - 1], fileType: fileType, model: model)
        return Choice(wanted: wanted, type: fitting(wanted, columns: shape[shape.count - 1]))
    }

    /// `type` if a row of `columns` is whole blocks of it, else llama.cpp's stand-in, else f16.
    public static func fitting(_ type: GGMLType, columns: Int) -> GGMLType {
        if columns % type.block.size == 0 { return type }
        let standIn: GGMLType? = switch type {
        case .iq4_xs: .iq4_nl
        case .q2_k, .q3_k: .q4_0
        case .q4_k: .q5_0
        case .q5_k: .q5_1
        case .q6_k: .q8_0
        default: nil
        }
        if let standIn, columns % standIn.block.size == 0 { return standIn }
        return .f16
    }

    /// The first and last eighth of the layers and every third layer between: where Q4_K_M and Q5_K_M spend q6_k.
    public static func usesMoreBits(layer i: Int, of n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }

    private enum Role { case head, embedding, value, key, query, attentionOutput, down, gate, up, other }

    private static func role(of name: String, tied: Bool) -> Role {
        if name == "output.weight" { return .head }
        if name == "token_embd.weight" { return tied ? .head : .embedding }
        if name.contains("attn_v.weight") { return .value }
        if name.contains("attn_k.weight") { return .key }
        if name.contains("attn_q.weight") { return .query }
        if name.contains("attn_output.weight") { return .attentionOutput }
        if name.contains("ffn_up") { return .up }
        if name.contains("ffn_gate") { return .gate }
        if name.contains("ffn_down") { return .down }
        return .other
    }

    /// The layer of `blk.<i>.…` (llama.cpp counts attn_v and ffn_down tensors in layer order, one per layer).
    private static func layer(of name: String) -> Int {
        let parts = name.split(separator: ".")
        guard parts.count > 2, parts[0] == "blk", let i = Int(parts[1]) else { return 0 }
        return i
    }

    private static func mixtureType(_ name: String, columns: Int, fileType t: GGUFExporter.OutputType, model m: Model) -> GGMLType {
        let base = t.defaultType
        let n = m.layerCount
        switch role(of: name, tied: m.tiedEmbeddings) {
        case .head:
            if columns % base.block.size != 0 { return .q8_0 }
            return base == .q8_0 ? .q8_0 : .q6_k
        case .value:
            let i = layer(of: name)
            var v = base
            switch t {
            case .q2_k: v = m.queryGroups >= 4 ? .q4_k : .q3_k
            case .q3_k_m: v = i < 2 ? .q5_k : .q4_k
            case .q3_k_l: v = .q5_k
            case .iq4_nl, .iq4_xs: if m.queryGroups >= 4 { v = .q5_k }
            case .q4_k_m, .q5_k_m: if usesMoreBits(layer: i, of: n) { v = .q6_k }
            case .q4_k_s: if i < 4 { v = .q5_k }
            default: break
            }
            if m.is70B, v == .q3_k || v == .q4_k { v = .q5_k }
            return v
        case .down:
            let i = layer(of: name)
            switch t {
            case .q2_k: return .q3_k
            case .q3_k_m: return i < n / 16 ? .q5_k : .q4_k
            case .q3_k_l: return .q5_k
            case .q4_k_m, .q5_k_m: return usesMoreBits(layer: i, of: n) ? .q6_k : base
            case .iq4_nl, .iq4_xs, .q4_k_s: return i < n / 8 ? .q5_k : base
            default: return base
            }
        case .attentionOutput:
            switch t {
            case .q2_k: return .q3_k
            case .q3_k_m: return .q4_k
            case .q3_k_l: return .q5_k
            default: return base
            }
        case .embedding, .key, .query, .gate, .up, .other:
            return base
        }
    }
}

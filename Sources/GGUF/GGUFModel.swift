import Foundation
import Kernels
import ModelIO
import Tokenizer
import Transformer

/// A Qwen2-family model read from one GGUF file (as `peft quantize` or llama.cpp's converter writes them): the
/// config from the `qwen2.*` metadata, block-quantized matrices used straight from the memory mapping, f32/f16
/// vectors copied, and the tokenizer rebuilt from the GGUF vocabulary and merges.
///
/// ```swift
/// let gguf = try GGUFModel(path: "qwen2.5-0.5b-q4_0.gguf")
/// let model = try gguf.transformer(dtype: .bfloat16)
/// let tokenizer = try gguf.tokenizer()
/// ```
public final class GGUFModel: @unchecked Sendable {
    public let file: GGUFFile
    public private(set) var config: ModelConfig
    /// The GGUF architecture name (`qwen2`, `qwen3`, `llama`).
    public let arch: String

    public init(path: String) throws {
        file = try GGUFFile(path: path)
        let m = file.metadata
        func int(_ key: String) throws -> Int {
            guard let v = m[key]?.integer else { throw ModelIOError.malformed(path: path, reason: "metadata \(key) is missing") }
            return v
        }
        let name = m["general.architecture"]?.string ?? "?"
        guard let architecture = GGUFLayout.architecture(gguf: name) else {
            throw ModelIOError.malformed(path: path, reason: "GGUF architecture '\(name)' is not supported (\(GGUFLayout.supportedNames.joined(separator: ", ")))")
        }
        arch = name
        guard let embedding = file.tensors["token_embd.weight"], embedding.dims.count == 2 else {
            throw ModelIOError.malformed(path: path, reason: "token_embd.weight is missing")
        }
        let eos = m["tokenizer.ggml.eos_token_id"]?.integer
        let hidden = try int("\(name).embedding_length"), heads = try int("\(name).attention.head_count")
        let headDim = m["\(name).attention.key_length"]?.integer ?? hidden / max(1, heads)
        let rotaryDim = m["\(name).rope.dimension_count"]?.integer ?? headDim
        guard heads > 0, headDim > 0, headDim % 2 == 0, rotaryDim >= 2, rotaryDim <= headDim, rotaryDim % 2 == 0 else {
            throw ModelIOError.malformed(path: path, reason: "attention head count \(heads), head size \(headDim) and rotated dimensions \(rotaryDim) are not usable")
        }
        if architecture == .baichuan, ![32, 40].contains(try int("\(name).block_count")) {
            throw ModelIOError.malformed(path: path, reason: "llama.cpp runs a baichuan of \(try int("\(name).block_count")) layers without positions (rotary for 32 layers, ALiBi for 40), which is not supported; 32-layer (7B) and 40-layer (13B) files are")
        }
        /// A rope factor tensor's values, when it holds `count` f32.
        func factors(_ t: GGUFFile.TensorInfo, count: Int) throws -> [Float] {
            guard t.elementCount == count, t.type == .f32 else {
                throw ModelIOError.malformed(path: path, reason: "\(t.name) holds \(t.elementCount) \(t.type) values; expected \(count) f32")
            }
            let p = t.data.assumingMemoryBound(to: Float.self)
            return (0..<count).map { p[$0] }
        }
        var rope = RoPEConfig(theta: m["\(name).rope.freq_base"]?.number ?? 10000)
        if let freqs = file.tensors["rope_freqs.weight"] {
            rope.scaling = .frequencyFactors(try factors(freqs, count: headDim / 2))
        } else if m["\(name).rope.scaling.type"]?.string == "linear", let f = m["\(name).rope.scaling.factor"]?.number {
            rope.scaling = .linear(factor: f)
        } else if let long = file.tensors["rope_factors_long.weight"], let short = file.tensors["rope_factors_short.weight"] {
            // Phi-3's LongRoPE: short factors up to the original context, long ones past it (as transformers).
            let original = try m["\(name).rope.scaling.original_context_length"]?.integer ?? int("\(name).context_length")
            rope.scaling = .longrope(short: try factors(short, count: rotaryDim / 2), long: try factors(long, count: rotaryDim / 2),
                                     originalMaxPositions: original,
                                     attentionFactor: Float(m["\(name).rope.scaling.attn_factor"]?.number ?? 1))
        }
        config = ModelConfig(
            architecture: architecture, hiddenSize: hidden,
            intermediateSize: try int("\(name).feed_forward_length") / (architecture == .qwen ? 2 : 1),
            layerCount: try int("\(name).block_count"),
            headCount: heads, kvHeadCount: m["\(name).attention.head_count_kv"]?.integer ?? heads, headDim: headDim,
            vocabSize: embedding.dims[1], maxPositionEmbeddings: (try? int("\(name).context_length")) ?? 32768,
            rmsNormEps: Float(m["\(name).attention.layer_norm_rms_epsilon"]?.number ?? 1e-6),
            rope: rope, rotaryDim: rotaryDim,
            tieWordEmbeddings: file.tensors["output.weight"] == nil,
            qkvBias: file.tensors["blk.0.attn_q.bias"] != nil || file.tensors["blk.0.attn_qkv.bias"] != nil,
            qkNorm: file.tensors["blk.0.attn_q_norm.weight"] != nil,
            bosTokenID: m["tokenizer.ggml.bos_token_id"]?.integer, eosTokenIDs: eos.map { [$0] } ?? [])
        // Before anything is sized by the layer count; again at the end, with the mixture.
        try config.checkSizes(path: path)
        // The file's own tensors say what is fused: attn_qkv ([q | k | v]: Qwen v1, Phi-3, llama.cpp's ChatGLM) and an
        // ffn_up of both halves with no ffn_gate (Phi-3, GLM). InternLM2's and Baichuan's q/k/v come split (and their
        // Baichuan NormHead rows normalised), so they read as Llama-named models.
        config.qkvFusion = file.tensors["blk.0.attn_qkv.weight"] != nil ? .concatenated : nil
        config.fusedGateUp = file.tensors["blk.0.ffn_gate.weight"] == nil && file.tensors["blk.0.ffn_up.weight"] != nil
            && file.tensors["blk.0.ffn_gate_exps.weight"] == nil
        if architecture == .internlm2 || architecture == .baichuan {
            config.layout = .llama
            config.normHead = false
        }
        config.alibiSlopes = ModelConfig.alibi(architecture: architecture, layers: config.layerCount, heads: heads)
        // The window and which layers use it: the file's per-layer flags, else Gemma's period (every layer otherwise).
        if let w = m["\(name).attention.sliding_window"]?.integer, w > 0 {
            config.slidingWindow = w
            if case .array(_, let flags)? = m["\(name).attention.sliding_window_pattern"], flags.count == config.layerCount {
                config.slidingLayers = flags.map { $0 == .bool(true) }
            } else if architecture == .gemma2 || architecture == .gemma3 {
                let n = m["\(name).attention.sliding_window_pattern"]?.integer ?? (architecture == .gemma2 ? 2 : 6)
                config.slidingLayers = (0..<config.layerCount).map { ($0 + 1) % max(1, n) != 0 }
            }
        }
        if architecture == .gemma2 || architecture == .gemma3 {
            // The file holds the norms' scales (1 + w) already; the rest as llama.cpp reads it.
            config.attentionScale = GGUFLayout.gemmaAttentionScale(architecture: architecture, layers: config.layerCount,
                                                                   hidden: hidden, heads: heads, headDim: headDim)
            config.attentionSoftcap = architecture == .gemma2
                ? (m["\(name).attn_logit_softcapping"]?.number).flatMap { $0 > 0 ? Float($0) : nil } : nil
            config.finalSoftcap = (m["\(name).final_logit_softcapping"]?.number).flatMap { $0 > 0 ? Float($0) : nil }
            // Gemma 3's local layers: llama.cpp's base 10000 unless the file says otherwise.
            if architecture == .gemma3, config.slidingWindow != nil {
                config.localRope = RoPEConfig(theta: m["\(name).rope.freq_base_swa"]?.number ?? 10000)
            }
        }
        config.qkNormAcrossHeads = architecture == .olmoe
        if architecture == .qwen2MoE || architecture == .qwen3MoE || architecture == .olmoe {
            let experts = try int("\(name).expert_count"), used = try int("\(name).expert_used_count")
            config.moe = ModelConfig.MoE(
                experts: experts, topK: used, intermediateSize: try int("\(name).expert_feed_forward_length"),
                sharedIntermediateSize: m["\(name).expert_shared_feed_forward_length"]?.integer,
                normalizeTopK: architecture == .qwen3MoE, sparseLayers: Array(repeating: true, count: config.layerCount))
        }
        try config.checkSizes(path: path)
    }

    /// The model, its matrices in the file's format (f16 matrices converted to `dtype`).
    public func transformer(dtype: DType) throws -> TransformerModel {
        let c = config
        /// `expert`: matrix e of a stacked [experts, rows, cols] tensor.
        func matrix(_ name: String, rows: Int, cols: Int, expert: Int? = nil, of experts: Int = 0) throws -> WeightMatrix {
            guard let t = file.tensors[name] else { throw ModelIOError.missingTensor(name: name, searched: file.path) }
            let expected = expert == nil ? [cols, rows] : [cols, rows, experts]
            guard t.dims == expected else { throw ModelIOError.shapeMismatch(tensor: name, expected: expected.reversed(), found: t.dims.reversed()) }
            let first = (expert ?? 0) * rows
            let raw = t.data.assumingMemoryBound(to: UInt8.self)
            // The file's blocks regrouped for the products (bit for bit), then the mapped pages dropped.
            // llama.cpp's pair-rotation row order back to Hugging Face's for Llama's query and key projections.
            let permuted = GGUFLayout.permutesQueryKey(gguf: arch) && (name.hasSuffix("attn_q.weight") || name.hasSuffix("attn_k.weight"))
            let source: (Int) -> Int = { r in permuted ? GGUFLayout.ggufRow(ofHFRow: r, headDim: c.headDim) : r }
            func quantized(_ q: QuantType) -> WeightMatrix {
                let rowBytes = q.byteCount(rows: 1, cols: cols)
                let m = WeightMatrix.packing(q, rows: rows, cols: cols, bf16Products: dtype == .bfloat16) { r, out in
                    out.update(from: raw + (first + source(r)) * rowBytes, count: rowBytes)
                }
                file.file.release(t.data + first * rowBytes, count: rows * rowBytes)
                return m
            }
            switch t.type {
            case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_nl, .iq4_xs:
                return quantized(QuantType(rawValue: "\(t.type)")!)
            case .f32, .f16, .bf16:
                // Only this matrix's elements are converted (one expert of a stacked tensor).
                let values = FloatBuffer(count: rows * cols)
                let stored: DType = t.type == .f32 ? .float32 : t.type == .f16 ? .float16 : .bfloat16
                Convert.toFloat(t.data + first * cols * stored.byteSize, dtype: stored, into: values.pointer, count: rows * cols)
                if permuted {
                    let copy = FloatBuffer(count: rows * cols)
                    copy.copy(from: values.pointer, count: rows * cols)
                    for r in 0..<rows { (values.pointer + r * cols).update(from: copy.pointer + source(r) * cols, count: cols) }
                }
                if dtype == .float32 { return WeightMatrix(rows: rows, cols: cols, storage: .float32(UnsafePointer(values.pointer)), owner: values) }
                let half = HalfBuffer(count: rows * cols)
                Convert.fromFloat(values.pointer, dtype: .bfloat16, into: half.pointer, count: rows * cols)
                return WeightMatrix(rows: rows, cols: cols, storage: .bfloat16(UnsafePointer(half.pointer)), owner: half)
            }
        }
        func vector(_ name: String, count: Int) throws -> FloatBuffer {
            guard let t = file.tensors[name] else { throw ModelIOError.missingTensor(name: name, searched: file.path) }
            guard t.elementCount == count else { throw ModelIOError.shapeMismatch(tensor: name, expected: [count], found: t.dims) }
            let out = FloatBuffer(count: count)
            t.floats(into: out.pointer)
            return out
        }
        let names = GGUFLayout.projectionNames
        func linear(_ l: Int, _ p: Projection, out: Int, inp: Int) throws -> Linear {
            let base = "blk.\(l).\(names[p]!)"
            var bias = c.hasBias(p) ? try vector(base + ".bias", count: out) : nil
            if let b = bias, GGUFLayout.permutesQueryKey(gguf: arch), p == .q || p == .k {
                let copy = FloatBuffer(count: out)
                for r in 0..<out { copy.pointer[r] = b.pointer[GGUFLayout.ggufRow(ofHFRow: r, headDim: c.headDim)] }
                bias = copy
            }
            return Linear(weight: try matrix(base + ".weight", rows: out, cols: inp), bias: bias)
        }
        let C = c.hiddenSize
        let layers = try (0..<c.layerCount).map { l in
            var linears: [Projection: Linear] = [:]
            for p in c.projections(layer: l) {
                let (inp, out) = c.features(p)
                linears[p] = try linear(l, p, out: out, inp: inp)
            }
            var layer = DecoderLayerWeights(
                inputNorm: try vector("blk.\(l).attn_norm.weight", count: C), linears: linears,
                qNorm: c.qkNorm ? try vector("blk.\(l).attn_q_norm.weight", count: c.qNormWidth) : nil,
                kNorm: c.qkNorm ? try vector("blk.\(l).attn_k_norm.weight", count: c.kNormWidth) : nil,
                postAttentionNorm: try vector("blk.\(l).ffn_norm.weight", count: C),
                attentionOutputNorm: c.sandwichNorms ? try vector("blk.\(l).post_attention_norm.weight", count: C) : nil,
                mlpOutputNorm: c.sandwichNorms ? try vector("blk.\(l).post_ffw_norm.weight", count: C) : nil)
            if let moe = c.moe, c.isSparse(layer: l) {
                let E = moe.experts, I = moe.intermediateSize, b = "blk.\(l)."
                let experts = try (0..<E).map { e in
                    ExpertWeights(gate: Linear(weight: try matrix(b + "ffn_gate_exps.weight", rows: I, cols: C, expert: e, of: E), bias: nil),
                                  up: Linear(weight: try matrix(b + "ffn_up_exps.weight", rows: I, cols: C, expert: e, of: E), bias: nil),
                                  down: Linear(weight: try matrix(b + "ffn_down_exps.weight", rows: C, cols: I, expert: e, of: E), bias: nil))
                }
                let shared = try moe.sharedIntermediateSize.map { S in
                    ExpertWeights(gate: Linear(weight: try matrix(b + "ffn_gate_shexp.weight", rows: S, cols: C), bias: nil),
                                  up: Linear(weight: try matrix(b + "ffn_up_shexp.weight", rows: S, cols: C), bias: nil),
                                  down: Linear(weight: try matrix(b + "ffn_down_shexp.weight", rows: C, cols: S), bias: nil))
                }
                let sharedGate = try shared.map { _ in
                    let v = try vector(b + "ffn_gate_inp_shexp.weight", count: C)
                    return WeightMatrix(rows: 1, cols: C, storage: .float32(UnsafePointer(v.pointer)), owner: v)
                }
                layer.moe = MoEWeights(router: try matrix(b + "ffn_gate_inp.weight", rows: E, cols: C), experts: experts,
                                       shared: shared, sharedGate: sharedGate)
            }
            return layer
        }
        let embedding = try matrix("token_embd.weight", rows: c.vocabSize, cols: C)
        let head = c.tieWordEmbeddings ? embedding : try matrix("output.weight", rows: c.vocabSize, cols: C)
        let weights = ModelWeights(config: c, dtype: dtype, embedding: embedding, layers: layers,
                                   finalNorm: try vector("output_norm.weight", count: C), lmHead: head)
        return TransformerModel(weights: weights)
    }

    /// The tokenizer the file's `tokenizer.ggml.*` metadata describes (see `GGUFTokenizer`).
    public func tokenizer() throws -> Tokenizer {
        try GGUFTokenizer.tokenizer(from: file)
    }
}

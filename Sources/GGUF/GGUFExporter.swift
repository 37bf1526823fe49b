import Adapters
import Foundation
import Kernels
import ModelIO
import Tokenizer
import Transformer

/// Writes a Hugging Face model (optionally with an adapter merged in) as one GGUF file in the layout llama.cpp's
/// converter writes for Qwen2, Qwen3 and Llama (Mistral as `llama`): hyper-parameters under the architecture's name,
/// the byte-level BPE tokenizer (tokens, token types, merges, special ids, pre-tokenizer), the chat template, and
/// the tensors under llama.cpp's names (Llama's query/key rows reordered for its rotation, Llama 3.1's rope scaling
/// as `rope_freqs.weight`), matrices in the chosen block format and vectors in f32.
///
/// ```swift
/// try GGUFExporter.export(model: url, adapter: nil, type: .q8_0, output: URL(fileURLWithPath: "model-q8_0.gguf"))
/// ```
public enum GGUFExporter {
    /// What `--type` accepts: llama.cpp's file types (`llama-quantize`'s names in lower case), each tensor in the format
    /// llama.cpp's `llama_model_quantize` gives it (`QuantMix`), and `q4_k`, every matrix q4_k.
    public enum OutputType: String, CaseIterable, Sendable {
        case f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1
        case q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, iq4_nl, iq4_xs
        /// Every matrix q4_k (where its rows are whole super-blocks), as llama.cpp's `--pure` Q4_K_S.
        case q4_k

        /// The type of the mixture's matrices where no rule says otherwise (`llama_ftype_get_default_type`).
        public var defaultType: GGMLType {
            switch self {
            case .f32: .f32
            case .f16: .f16
            case .bf16: .bf16
            case .q8_0: .q8_0
            case .q4_0: .q4_0
            case .q4_1: .q4_1
            case .q5_0: .q5_0
            case .q5_1: .q5_1
            case .q2_k: .q2_k
            case .q3_k_s, .q3_k_m, .q3_k_l: .q3_k
            case .q4_k_s, .q4_k_m, .q4_k: .q4_k
            case .q5_k_s, .q5_k_m: .q5_k
            case .q6_k: .q6_k
            case .iq4_nl: .iq4_nl
            case .iq4_xs: .iq4_xs
            }
        }

        /// llama.cpp's `general.file_type` (`llama_ftype` in include/llama.h).
        public var fileType: UInt32 {
            switch self {
            case .f32: 0
            case .f16: 1
            case .q4_0: 2
            case .q4_1: 3
            case .q8_0: 7
            case .q5_0: 8
            case .q5_1: 9
            case .q2_k: 10
            case .q3_k_s: 11
            case .q3_k_m: 12
            case .q3_k_l: 13
            case .q4_k_s, .q4_k: 14
            case .q4_k_m: 15
            case .q5_k_s: 16
            case .q5_k_m: 17
            case .q6_k: 18
            case .iq4_nl: 25
            case .iq4_xs: 30
            case .bf16: 32
            }
        }
    }

    public struct Report: Sendable {
        public var tensors: Int
        public var bytes: Int
        public var fallbacks: [String]
        /// What llama.cpp will do differently from the model (a sliding window it does not apply).
        public var notes: [String] = []
    }

    public static func export(model url: URL, adapter: TrainableAdapter?, type: OutputType, output: URL) throws -> Report {
        let directory = try ModelDirectory(url: url)
        let config = try ModelConfig(json: directory.configData, path: url.appendingPathComponent("config.json").path)
        let arch = GGUFLayout.architecture(of: config)
        var notes: [String] = []
        if config.architecture == .gemma2 || config.architecture == .gemma3 {
            let theirs = GGUFLayout.gemmaAttentionScale(architecture: config.architecture, layers: config.layerCount,
                                                        hidden: config.hiddenSize, heads: config.headCount, headDim: config.headDim)
            guard abs(theirs - config.attentionScale) <= 1e-6 * theirs, config.architecture == .gemma2 || config.attentionSoftcap == nil else {
                throw ModelIOError.malformed(path: url.path, reason: "llama.cpp's \(arch) scales attention by \(theirs) (it does not read query_pre_attn_scalar\(config.architecture == .gemma3 ? " nor soft-cap Gemma 3's attention" : "")); this model uses \(config.attentionScale)\(config.attentionSoftcap.map { " and an attention soft-cap of \($0)" } ?? ""), so GGUF export would change its answers")
            }
        } else if let w = config.slidingWindow, w < config.maxPositionEmbeddings {
            // As llama.cpp's converter: the window travels in the metadata (we read it back), llama.cpp's \(arch) ignores it.
            notes.append("this model attends within a sliding window of \(w) tokens; the file records it, but llama.cpp's \(arch) architecture attends to the whole context, so its answers differ from this model's once a conversation passes \(w) tokens")
        }
        if let n = config.dynamicNTKLength ?? config.lognScalingLength {
            let what = [config.dynamicNTKLength.map { _ in "raises its rotary base (dynamic NTK)" },
                        config.lognScalingLength.map { _ in "scales its queries by log-n" }].compactMap { $0 }
            notes.append("past \(n) tokens this model \(what.joined(separator: " and ")); llama.cpp's \(arch) does neither, so its answers differ from this model's once a conversation passes \(n) tokens")
        }
        if config.architecture == .baichuan, ![32, 40].contains(config.layerCount) {
            throw ModelIOError.malformed(path: url.path, reason: "llama.cpp's baichuan applies rotary positions only to 32-layer (7B) models and ALiBi to 40-layer ones; this model has \(config.layerCount) layers, so GGUF export would change its answers")
        }
        if GGUFLayout.permutesQueryKey(gguf: arch), config.rotaryDim != config.headDim {
            throw ModelIOError.malformed(path: url.path, reason: "llama.cpp's \(arch) rotates whole heads; this model rotates \(config.rotaryDim) of \(config.headDim) dimensions, so GGUF export would change its answers")
        }
        if let a = adapter, let why = a.method.mergeRefusal {
            throw AdapterError.unsupported(path: output.path, reason: "GGUF export merges the adapter first, and " + why)
        }
        if config.architecture == .olmoe, config.kvHeadCount != config.headCount {
            throw ModelIOError.malformed(path: url.path, reason: "llama.cpp's olmoe norms the keys over all \(config.hiddenSize) features, so it runs only models whose key/value heads equal their \(config.headCount) query heads; this one has \(config.kvHeadCount)")
        }
        if let moe = config.moe {
            // llama.cpp's qwen2moe / qwen3moe / olmoe: every layer sparse, probabilities renormalised only in qwen3moe.
            guard moe.sparseLayers.allSatisfy({ $0 }), moe.normalizeTopK == (config.architecture == .qwen3MoE) else {
                throw ModelIOError.malformed(path: url.path, reason: "llama.cpp's \(arch) has every layer sparse and \(config.architecture == .qwen3MoE ? "renormalises" : "does not renormalise") the chosen experts' weights; this model differs (mlp_only_layers / norm_topk_prob), so GGUF export would change its answers")
            }
        }
        var writer = GGUFWriter()
        writer.metadata = try metadata(config: config, directory: directory, name: url.lastPathComponent, type: type)
        // (GGUF name, HF names (several: experts stacked), shape [rows, cols] or [n]); 3-D expert tensors keep their
        // GGML dims in `stacked`.
        let names = config.layout
        var plan: [(String, [String], [Int])] = [("token_embd.weight", [names.embedding], [config.vocabSize, config.hiddenSize])]
        var stacked: [String: [Int]] = [:]
        // Tensors cut from a fused q/k/v: GGUF name -> (part, rows of the fused tensor).
        var parts: [String: [Int]] = [:]
        let splits = GGUFLayout.splitsQKV(gguf: arch)
        let ggufNames = GGUFLayout.projectionNames
        for l in 0..<config.layerCount {
            plan.append(("blk.\(l).attn_norm.weight", [names.name(.inputNorm(l))], [config.hiddenSize]))
            if config.sandwichNorms {
                plan.append(("blk.\(l).post_attention_norm.weight", [names.name(.attentionOutputNorm(l))], [config.hiddenSize]))
                plan.append(("blk.\(l).post_ffw_norm.weight", [names.name(.mlpOutputNorm(l))], [config.hiddenSize]))
            }
            for p in config.projections(layer: l) {
                let name = names.moduleName(ProjectionSite(layer: l, projection: p))
                let shape = try directory.tensor(name + ".weight").shape
                guard shape.count == 2 else { throw ModelIOError.shapeMismatch(tensor: name + ".weight", expected: [0, 0], found: shape) }
                let (out, inp) = (shape[0], shape[1])
                if p == .qkv, splits {
                    guard out == config.qDim + 2 * config.kvDim else {
                        throw ModelIOError.shapeMismatch(tensor: name + ".weight", expected: [config.qDim + 2 * config.kvDim, inp], found: shape)
                    }
                    for (part, gguf) in ["attn_q", "attn_k", "attn_v"].enumerated() {
                        let rows = config.fusedQKVRows(part: part)
                        plan.append(("blk.\(l).\(gguf).weight", [name + ".weight"], [rows.count, inp]))
                        parts["blk.\(l).\(gguf).weight"] = rows
                        if config.hasBias(p) {
                            plan.append(("blk.\(l).\(gguf).bias", [name + ".bias"], [rows.count]))
                            parts["blk.\(l).\(gguf).bias"] = rows
                        }
                    }
                    continue
                }
                plan.append(("blk.\(l).\(ggufNames[p]!).weight", [name + ".weight"], [out, inp]))
                if config.hasBias(p) { plan.append(("blk.\(l).\(ggufNames[p]!).bias", [name + ".bias"], [out])) }
            }
            if config.qkNorm {
                plan.append(("blk.\(l).attn_q_norm.weight", [names.name(.qNorm(l))], [config.qNormWidth]))
                plan.append(("blk.\(l).attn_k_norm.weight", [names.name(.kNorm(l))], [config.kNormWidth]))
            }
            plan.append(("blk.\(l).ffn_norm.weight", [names.name(.postAttentionNorm(l))], [config.hiddenSize]))
            if let moe = config.moe, config.isSparse(layer: l) {
                let C = config.hiddenSize, I = moe.intermediateSize, E = moe.experts
                plan.append(("blk.\(l).ffn_gate_inp.weight", [names.router(layer: l)], [E, C]))
                for (gguf, p, rows, cols) in [("ffn_gate_exps", Projection.gate, I, C), ("ffn_up_exps", .up, I, C),
                                              ("ffn_down_exps", .down, C, I)] {
                    let name = "blk.\(l).\(gguf).weight"
                    plan.append((name, (0..<E).map { names.expert(layer: l, $0, p) }, [E * rows, cols]))
                    stacked[name] = [cols, rows, E]
                }
                if let S = moe.sharedIntermediateSize {
                    plan.append(("blk.\(l).ffn_gate_inp_shexp.weight", [names.sharedExpertGate(layer: l)], [C]))
                    plan.append(("blk.\(l).ffn_gate_shexp.weight", [names.sharedExpert(layer: l, .gate)], [S, C]))
                    plan.append(("blk.\(l).ffn_up_shexp.weight", [names.sharedExpert(layer: l, .up)], [S, C]))
                    plan.append(("blk.\(l).ffn_down_shexp.weight", [names.sharedExpert(layer: l, .down)], [C, S]))
                }
            }
        }
        plan.append(("output_norm.weight", [names.finalNorm], [config.hiddenSize]))
        if !config.tieWordEmbeddings { plan.append(("output.weight", [names.lmHead], [config.vocabSize, config.hiddenSize])) }
        // Llama 3.1's rope scaling travels as per-frequency factors, computed rather than read.
        var ropeFactors: [Float]?
        if case let .llama3(factor, low, high, original) = config.rope.scaling {
            ropeFactors = GGUFLayout.llama3FrequencyFactors(headDim: config.headDim, theta: config.rope.theta, factor: factor,
                                                            low: low, high: high, original: original)
            plan.append(("rope_freqs.weight", [], [config.headDim / 2]))
        }
        // Phi-3's LongRoPE: both factor lists, as its converter writes them.
        var extra: [String: [Float]] = [:]
        if case let .longrope(short, long, _, _) = config.rope.scaling {
            extra["rope_factors_long.weight"] = long
            extra["rope_factors_short.weight"] = short
            plan.append(("rope_factors_long.weight", [], [long.count]))
            plan.append(("rope_factors_short.weight", [], [short.count]))
        }
        if let factors = ropeFactors { extra["rope_freqs.weight"] = factors }

        var fallbacks: [String] = []
        let mix = QuantMix.Model(config: config)
        for (gguf, _, shape) in plan {
            // Routers and rope factors stay f32, as llama.cpp's quantizer keeps them.
            if gguf.contains("ffn_gate_inp") || extra[gguf] != nil {
                writer.tensors.append(.init(name: gguf, dims: shape.reversed(), type: .f32))
                continue
            }
            let choice = QuantMix.choose(tensor: gguf, shape: shape, fileType: type, model: mix)
            if choice.isFallback { fallbacks.append("\(gguf) (\(shape[1]) columns) as \(choice.type) instead of \(choice.wanted)") }
            // GGML order: the innermost dimension first.
            writer.tensors.append(.init(name: gguf, dims: stacked[gguf] ?? shape.reversed(), type: choice.type))
        }
        let hfNames = Dictionary(uniqueKeysWithValues: plan.map { ($0.0, $0.1) })
        let permuted = GGUFLayout.permutesQueryKey(gguf: arch)
        var bytes = 0
        /// A checkpoint tensor as f32, with the adapter merged in.
        func source(_ name: String) throws -> (view: TensorView, values: FloatBuffer) {
            let view = try directory.tensor(name)
            let values = try view.floatBuffer()
            if let a = adapter { _ = a.merge(tensor: view.name, values: values.pointer, shape: view.shape) }
            return (view, values)
        }
        try writer.write(to: output) { tensor, out in
            let values: FloatBuffer
            if let factors = extra[tensor.name] {
                values = FloatBuffer(count: factors.count)
                factors.withUnsafeBufferPointer { values.copy(from: $0.baseAddress!, count: factors.count) }
            } else if let rows = parts[tensor.name] {
                // One part of a fused q/k/v, cut after the adapter is merged into the whole.
                let (view, fused) = try source(hfNames[tensor.name]![0])
                let cols = tensor.dims.count == 2 ? tensor.dims[0] : 1
                guard view.elementCount == (config.qDim + 2 * config.kvDim) * cols else {
                    throw ModelIOError.shapeMismatch(tensor: view.name, expected: [config.qDim + 2 * config.kvDim, cols], found: view.shape)
                }
                values = FloatBuffer(count: tensor.elementCount)
                for (r, source) in rows.enumerated() {
                    (values.pointer + r * cols).update(from: fused.pointer + source * cols, count: cols)
                }
            } else {
                // One source tensor, or the experts' matrices stacked in expert order.
                values = FloatBuffer(count: tensor.elementCount)
                var at = 0
                for name in hfNames[tensor.name]! {
                    let (view, part) = try source(name)
                    guard at + view.elementCount <= tensor.elementCount else {
                        throw ModelIOError.shapeMismatch(tensor: view.name, expected: tensor.dims.reversed(), found: view.shape)
                    }
                    (values.pointer + at).update(from: part.pointer, count: view.elementCount)
                    at += view.elementCount
                }
                guard at == tensor.elementCount else {
                    throw ModelIOError.shapeMismatch(tensor: hfNames[tensor.name]!.first ?? tensor.name, expected: tensor.dims.reversed(), found: [at])
                }
                // Gemma's checkpoints store norm weights as w - 1; llama.cpp's files hold the scale itself.
                if config.normOffset != 0, tensor.name.hasSuffix("norm.weight") {
                    for i in 0..<tensor.elementCount { values.pointer[i] += config.normOffset }
                }
                // Baichuan2's NormHead: the model multiplies by unit-length rows; llama.cpp reads them as stored.
                if config.normHead, tensor.name == "output.weight" {
                    Ops.normalizeRows(values.pointer, rows: tensor.dims[1], cols: tensor.dims[0])
                }
            }
            if permuted, tensor.name.hasSuffix("attn_q.weight") || tensor.name.hasSuffix("attn_k.weight")
                || tensor.name.hasSuffix("attn_q.bias") || tensor.name.hasSuffix("attn_k.bias") {
                Self.permuteRows(values, rows: tensor.dims.count == 2 ? tensor.dims[1] : tensor.dims[0],
                                 cols: tensor.dims.count == 2 ? tensor.dims[0] : 1, headDim: config.headDim)
            }
            try withExtendedLifetime(values) {
                let n = tensor.elementCount
                switch tensor.type {
                case .f32: out.baseAddress!.copyMemory(from: values.pointer, byteCount: n * 4)
                case .f16: Convert.fromFloat(values.pointer, dtype: .float16, into: out.baseAddress!, count: n)
                case .bf16: Convert.fromFloat(values.pointer, dtype: .bfloat16, into: out.baseAddress!, count: n)
                case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_nl, .iq4_xs:
                    guard let q = QuantType(rawValue: "\(tensor.type)") else {
                        throw ModelIOError.malformed(path: output.path, reason: "no quantizer for \(tensor.type) (tensor \(tensor.name))")
                    }
                    // Row ranges on every core (the k-quants' scale searches are the slow part of an export).
                    let cols = tensor.dims[0], rowBytes = q.byteCount(rows: 1, cols: cols)
                    let dst = out.baseAddress!.assumingMemoryBound(to: UInt8.self), src = values.pointer
                    Parallel.forRanges(n / cols, minChunk: 16) { rs in
                        q.quantizeForFile(src + rs.lowerBound * cols, count: rs.count * cols, into: dst + rs.lowerBound * rowBytes)
                    }
                }
            }
            bytes += tensor.byteCount
        }
        return Report(tensors: plan.count, bytes: bytes, fallbacks: fallbacks, notes: notes)
    }

    /// Reorders the rows of a query/key projection from Hugging Face's half rotation to llama.cpp's pair rotation.
    static func permuteRows(_ values: FloatBuffer, rows: Int, cols: Int, headDim: Int) {
        let copy = FloatBuffer(count: rows * cols)
        copy.copy(from: values.pointer, count: rows * cols)
        for i in 0..<rows {
            (values.pointer + i * cols).update(from: copy.pointer + GGUFLayout.hfRow(ofGGUFRow: i, headDim: headDim) * cols, count: cols)
        }
    }

    /// llama.cpp's metadata for the model: hyper-parameters under its architecture name, tokenizer and chat template.
    static func metadata(config c: ModelConfig, directory: ModelDirectory, name: String, type: OutputType) throws
        -> [(key: String, value: GGUFValue)] {
        let a = GGUFLayout.architecture(of: c)
        var m: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(a)), ("general.name", .string(name)),
            ("general.file_type", .uint32(type.fileType)), ("general.quantization_version", .uint32(2)),
            ("\(a).block_count", .uint32(UInt32(c.layerCount))),
            // As llama.cpp's converter: max_position_embeddings (llama.cpp has no Qwen v1 log-n scaling, which only
            // acts past seq_length; equal to it in Qwen-1.8B/7B v1.1).
            ("\(a).context_length", .uint32(UInt32(c.maxPositionEmbeddings))),
            ("\(a).embedding_length", .uint32(UInt32(c.hiddenSize))),
            ("\(a).feed_forward_length", .uint32(UInt32(GGUFLayout.feedForwardLength(c)))),
            ("\(a).attention.head_count", .uint32(UInt32(c.headCount))),
            ("\(a).attention.head_count_kv", .uint32(UInt32(c.kvHeadCount))),
            ("\(a).rope.freq_base", .float32(Float(c.rope.theta))),
            ("\(a).attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps)),
        ]
        if c.headDim * c.headCount != c.hiddenSize || c.architecture == .qwen3 || c.architecture == .gemma2 || c.architecture == .gemma3 {
            m.append(("\(a).attention.key_length", .uint32(UInt32(c.headDim))))
            m.append(("\(a).attention.value_length", .uint32(UInt32(c.headDim))))
        }
        if a == "llama" { m.append(("llama.vocab_size", .uint32(UInt32(c.vocabSize)))) }
        // The rotated dimensions of each head (partial rotary: Phi-4-mini, GLM), where the converter writes them.
        if ["llama", "phi3", "baichuan", "internlm2", "chatglm", "glm4"].contains(a) || c.rotaryDim != c.headDim {
            m.append(("\(a).rope.dimension_count", .uint32(UInt32(c.rotaryDim))))
        }
        if let w = c.slidingWindow {
            m.append(("\(a).attention.sliding_window", .uint32(UInt32(w))))
            m.append(("\(a).attention.sliding_window_pattern",
                      .array(elementType: GGUFValue.boolID, (0..<c.layerCount).map { .bool(c.attentionWindow(layer: $0) != nil) })))
        } else if a == "phi3" {
            m.append(("phi3.attention.sliding_window", .uint32(0)))
        }
        if case let .longrope(_, _, original, attentionFactor) = c.rope.scaling {
            m.append(("\(a).rope.scaling.original_context_length", .uint32(UInt32(original))))
            m.append(("\(a).rope.scaling.attn_factor", .float32(attentionFactor)))
        } else if a == "phi3" {
            m.append(("phi3.rope.scaling.original_context_length", .uint32(UInt32(c.maxPositionEmbeddings))))
        }
        if let local = c.localRope { m.append(("\(a).rope.freq_base_swa", .float32(Float(local.theta)))) }
        if let cap = c.attentionSoftcap { m.append(("\(a).attn_logit_softcapping", .float32(cap))) }
        if let cap = c.finalSoftcap { m.append(("\(a).final_logit_softcapping", .float32(cap))) }
        if let moe = c.moe {
            m.append(("\(a).expert_count", .uint32(UInt32(moe.experts))))
            m.append(("\(a).expert_used_count", .uint32(UInt32(moe.topK))))
            m.append(("\(a).expert_feed_forward_length", .uint32(UInt32(moe.intermediateSize))))
            if let s = moe.sharedIntermediateSize { m.append(("\(a).expert_shared_feed_forward_length", .uint32(UInt32(s)))) }
        }
        if case .linear(let factor) = c.rope.scaling {
            m.append(("\(a).rope.scaling.type", .string("linear")))
            m.append(("\(a).rope.scaling.factor", .float32(Float(factor))))
        }
        m += try tokenizerMetadata(directory: directory, config: c)
        return m
    }

    /// The vocabulary as llama.cpp's converter writes it: SentencePiece models (a `tokenizer.model`, or a tokenizer.json
    /// with byte fallback and no byte-level step) as its `llama` tokenizer model, byte-level BPE as `gpt2`.
    static func tokenizerMetadata(directory: ModelDirectory, config c: ModelConfig) throws -> [(key: String, value: GGUFValue)] {
        let root = try directory.jsonObject("tokenizer.json")
        let hasModelFile = FileManager.default.fileExists(atPath: directory.url.appendingPathComponent("tokenizer.model").path)
        let ranksURL = directory.url.appendingPathComponent("qwen.tiktoken")
        if root == nil, !hasModelFile, let ranks = FileManager.default.contents(atPath: ranksURL.path) {
            return try tiktokenMetadata(ranks: ranks, path: ranksURL.path, vocabSize: c.vocabSize,
                                        tokenizerConfig: try directory.jsonObject("tokenizer_config.json") ?? [:])
        }
        let (out, specialIDs): ([(key: String, value: GGUFValue)], [String: Int])
        if let root, !Self.isSentencePieceStyle(root) {
            (out, specialIDs) = try byteLevelMetadata(root: root, directory: directory, config: c)
        } else if root != nil || hasModelFile {
            (out, specialIDs) = try sentencePieceMetadata(root: root, directory: directory, config: c)
        } else {
            throw ModelIOError.malformed(path: directory.url.path, reason: "GGUF export needs tokenizer.json or tokenizer.model")
        }
        return try out + specialTokenMetadata(directory: directory, root: root, specialIDs: specialIDs, config: c,
                                              sentencePiece: out.first?.value == .string("llama"))
    }

    /// A BPE tokenizer.json that falls back to `<0xAB>` pieces and has no `ByteLevel` step: Llama 2, Mistral v0.1.
    static func isSentencePieceStyle(_ root: [String: Any]) -> Bool {
        guard let model = root["model"] as? [String: Any], (model["byte_fallback"] as? Bool) == true else { return false }
        func byteLevel(_ step: Any?) -> Bool {
            guard let step = step as? [String: Any] else { return false }
            if (step["type"] as? String) == "ByteLevel" { return true }
            return ((step["pretokenizers"] as? [Any]) ?? []).contains(where: byteLevel)
        }
        return !byteLevel(root["pre_tokenizer"])
    }

    /// `llama`: pieces, scores and types from `tokenizer.model` (as the converter's `_set_vocab_sentencepiece`, with
    /// tokenizer_config's added tokens as control or user-defined pieces scored -1000), else from tokenizer.json (its
    /// `_set_vocab_llama_hf`, except that each piece is scored -id instead of a flat -1000, so that merging by score
    /// keeps the vocabulary's BPE order); ids past the vocabulary are `[PAD<i>]`, unused.
    static func sentencePieceMetadata(root: [String: Any]?, directory: ModelDirectory, config c: ModelConfig) throws
        -> ([(key: String, value: GGUFValue)], [String: Int]) {
        let n = c.vocabSize
        var tokens = (0..<n).map { "[PAD\($0)]" }, scores = [Float](repeating: -1000, count: n)
        var types = [Int32](repeating: 5, count: n)
        var specialIDs: [String: Int] = [:]
        var addsDummyPrefix = true
        let modelURL = directory.url.appendingPathComponent("tokenizer.model")
        if let data = FileManager.default.contents(atPath: modelURL.path) {
            let vocabulary = try SentencePieceVocabulary(modelFile: data, file: modelURL.path)
            addsDummyPrefix = vocabulary.addsDummyPrefix
            for (id, piece) in vocabulary.pieces.enumerated() where id < n {
                (tokens[id], scores[id], types[id]) = (piece.text, piece.score, Int32(piece.type.rawValue))
                if piece.type == .control || piece.type == .unknown { specialIDs[piece.text] = id }
            }
        } else if let model = root?["model"] as? [String: Any], let vocab = model["vocab"] as? [String: Any] {
            for (token, value) in vocab {
                guard let id = (value as? NSNumber)?.intValue, id >= 0, id < n else { continue }
                let isByte = token.utf8.count == 6 && token.hasPrefix("<0x") && token.hasSuffix(">")
                (tokens[id], scores[id], types[id]) = (token, -Float(id), isByte ? 6 : 1)
            }
            if let unknown = model["unk_token"] as? String, let id = (vocab[unknown] as? NSNumber)?.intValue, id < n { types[id] = 2 }
            addsDummyPrefix = Self.prependsDummyPrefix(root ?? [:])
        }
        var added: [[String: Any]] = (root?["added_tokens"] as? [[String: Any]]) ?? []
        let tokenizerConfig = try directory.jsonObject("tokenizer_config.json") ?? [:]
        for (key, value) in (tokenizerConfig["added_tokens_decoder"] as? [String: Any]) ?? [:] {
            guard var entry = value as? [String: Any], let id = Int(key) else { continue }
            entry["id"] = id
            added.append(entry)
        }
        for entry in added {
            guard let id = (entry["id"] as? NSNumber)?.intValue ?? entry["id"] as? Int, let content = entry["content"] as? String,
                  id >= 0, id < n else { continue }
            if types[id] == 2 || (types[id] == 3 && tokens[id] == content) { specialIDs[content] = id; continue }
            let special = (entry["special"] as? Bool) ?? false
            (tokens[id], scores[id], types[id]) = (special ? content : content.replacingOccurrences(of: "\u{2581}", with: " "), -1000, special ? 3 : 4)
            if special { specialIDs[content] = id }
        }
        let out: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.pre", .string("default")),
            ("tokenizer.ggml.tokens", .strings(tokens)),
            ("tokenizer.ggml.scores", .array(elementType: GGUFValue.float32ID, scores.map { .float32($0) })),
            ("tokenizer.ggml.token_type", .int32s(types)),
            ("tokenizer.ggml.add_space_prefix", .bool(addsDummyPrefix)),
        ]
        return (out, specialIDs)
    }

    /// Whether a SentencePiece-style tokenizer.json puts "▁" before the text: a `Prepend` normalizer (Llama 2) or a
    /// `Metaspace` pre-tokenizer whose prepend scheme is not `never`.
    static func prependsDummyPrefix(_ root: [String: Any]) -> Bool {
        func steps(_ value: Any?, _ key: String) -> [[String: Any]] {
            guard let step = value as? [String: Any] else { return [] }
            return [step] + ((step[key] as? [Any]) ?? []).flatMap { steps($0, key) }
        }
        if steps(root["normalizer"], "normalizers").contains(where: { ($0["type"] as? String) == "Prepend" }) { return true }
        return steps(root["pre_tokenizer"], "pretokenizers").contains {
            ($0["type"] as? String) == "Metaspace" && ($0["prepend_scheme"] as? String ?? "always") != "never"
                && ($0["add_prefix_space"] as? Bool ?? true)
        }
    }

    /// `gpt2`: the byte-level vocabulary, merges and the pre-tokenizer name (`GGUFPreTokenizer.name`).
    static func byteLevelMetadata(root: [String: Any], directory: ModelDirectory, config c: ModelConfig) throws
        -> ([(key: String, value: GGUFValue)], [String: Int]) {
        let path = directory.url.appendingPathComponent("tokenizer.json").path
        guard let model = root["model"] as? [String: Any], (model["type"] as? String) == "BPE",
              let vocab = model["vocab"] as? [String: Any] else {
            throw ModelIOError.malformed(path: path, reason: "GGUF export needs a BPE tokenizer.json")
        }
        var tokens = [String?](repeating: nil, count: c.vocabSize)
        var types = [Int32](repeating: 1, count: c.vocabSize)   // 1 normal, 3 control, 4 user-defined, 5 unused
        for (token, idValue) in vocab {
            guard let id = (idValue as? NSNumber)?.intValue, id >= 0, id < c.vocabSize else { continue }
            tokens[id] = token
        }
        var specialIDs: [String: Int] = [:]
        for added in (root["added_tokens"] as? [[String: Any]]) ?? [] {
            guard let id = (added["id"] as? NSNumber)?.intValue, let content = added["content"] as? String,
                  id >= 0, id < c.vocabSize else { continue }
            tokens[id] = content
            let special = (added["special"] as? Bool) ?? false
            types[id] = special ? 3 : 4
            specialIDs[content] = id
        }
        for i in 0..<c.vocabSize where tokens[i] == nil {
            tokens[i] = "[PAD\(i)]"
            types[i] = 5
        }
        let merges: [String] = ((model["merges"] as? [Any]) ?? []).compactMap { m in
            if let s = m as? String { return s }
            if let pair = m as? [String], pair.count == 2 { return pair[0] + " " + pair[1] }
            return nil
        }
        // llama.cpp names the pre-tokenizer; its converter recognises it by the ids of a fixed text.
        let checkHash = (try? Tokenizer.load(directory: directory.url)).map {
            GGUFPreTokenizer.checkHash(ids: $0.encode(GGUFPreTokenizer.checkText))
        }
        guard let pre = GGUFPreTokenizer.name(tokenizerJSON: root, checkHash: checkHash) else {
            let regexes = GGUFPreTokenizer.splitRegexes(root["pre_tokenizer"] as? [String: Any]) ?? []
            throw ModelIOError.malformed(path: path, reason: "llama.cpp names no pre-tokenizer that splits with \(regexes.isEmpty ? "no regex" : "the regex " + regexes.joined(separator: " then ")) (check hash \(checkHash ?? "not computed")); it knows \(GGUFPreTokenizer.knownNames.joined(separator: ", "))")
        }
        let out: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .strings(tokens.map { $0 ?? "" })), ("tokenizer.ggml.token_type", .int32s(types)),
            ("tokenizer.ggml.merges", .strings(merges)),
        ]
        return (out, specialIDs)
    }

    /// Qwen v1's `qwen.tiktoken` as llama.cpp's converter writes it: `gpt2` tokens in rank order then its special
    /// tokens (control), one merge per multi-byte token, the `qwen2` pre-tokenizer (the same split), BOS = EOS =
    /// `<|endoftext|>`, and the ChatML format of its remote code.
    static func tiktokenMetadata(ranks: Data, path: String, vocabSize: Int, tokenizerConfig: [String: Any]) throws
        -> [(key: String, value: GGUFValue)] {
        let vocabulary = try Tokenizer.tiktokenVocabulary(ranks: ranks, file: path)
        let all = vocabulary.tokens + vocabulary.specials
        guard all.count <= vocabSize else {
            throw ModelIOError.malformed(path: path, reason: "\(all.count) tokens do not fit the model's vocabulary of \(vocabSize)")
        }
        var tokens = (0..<vocabSize).map { "[PAD\($0)]" }, types = [Int32](repeating: 5, count: vocabSize)
        for (i, t) in all.enumerated() {
            tokens[i] = t
            types[i] = i < vocabulary.tokens.count ? 1 : 3
        }
        let endOfText = UInt32(vocabulary.tokens.count)
        var out: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("qwen2")),
            ("tokenizer.ggml.tokens", .strings(tokens)), ("tokenizer.ggml.token_type", .int32s(types)),
            ("tokenizer.ggml.merges", .strings(vocabulary.merges)),
            ("tokenizer.ggml.bos_token_id", .uint32(endOfText)), ("tokenizer.ggml.eos_token_id", .uint32(endOfText)),
            ("tokenizer.ggml.unknown_token_id", .uint32(endOfText)), ("tokenizer.ggml.add_bos_token", .bool(false)),
        ]
        out.append(("tokenizer.chat_template", .string(tokenizerConfig["chat_template"] as? String ?? Tokenizer.qwenV1ChatTemplate)))
        return out
    }

    /// Special token ids, add_bos / add_eos and the chat template, from tokenizer_config.json (and the post-processor).
    static func specialTokenMetadata(directory: ModelDirectory, root: [String: Any]?, specialIDs: [String: Int],
                                     config c: ModelConfig, sentencePiece: Bool) throws -> [(key: String, value: GGUFValue)] {
        var out: [(key: String, value: GGUFValue)] = []
        let tokenizerConfig = try directory.jsonObject("tokenizer_config.json") ?? [:]
        func tokenID(_ key: String) -> Int? {
            let content = (tokenizerConfig[key] as? String) ?? ((tokenizerConfig[key] as? [String: Any])?["content"] as? String)
            return content.flatMap { specialIDs[$0] }
        }
        let defaults: [String: Int] = sentencePiece ? ["<s>": 1, "</s>": 2, "<unk>": 0] : [:]
        let fallback = defaults.filter { specialIDs[$0.key] == $0.value }
        let eos = tokenID("eos_token") ?? c.eosTokenIDs.first ?? fallback["</s>"]
        if let eos { out.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        if let pad = tokenID("pad_token") { out.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(pad)))) }
        if sentencePiece, let unk = tokenID("unk_token") ?? fallback["<unk>"] {
            out.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unk))))
        }
        if let bos = tokenID("bos_token") ?? specialIDs[sentencePiece ? "<s>" : "<|endoftext|>"] ?? c.bosTokenID {
            out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos))))
        }
        // Llama 3 starts every sequence with BOS (its post-processor adds it); Qwen never does.
        var addsBOS = tokenizerConfig["add_bos_token"] as? Bool ?? sentencePiece
        if tokenizerConfig["add_bos_token"] == nil, let post = root?["post_processor"] as? [String: Any] {
            let processors = (post["processors"] as? [[String: Any]]) ?? [post]
            addsBOS = processors.contains { p in
                (p["type"] as? String) == "TemplateProcessing" && ((p["single"] as? [[String: Any]])?.first?["SpecialToken"] != nil)
            }
        }
        out.append(("tokenizer.ggml.add_bos_token", .bool(addsBOS)))
        if sentencePiece { out.append(("tokenizer.ggml.add_eos_token", .bool(tokenizerConfig["add_eos_token"] as? Bool ?? false))) }
        var template = tokenizerConfig["chat_template"] as? String
        if let data = FileManager.default.contents(atPath: directory.url.appendingPathComponent("chat_template.jinja").path) {
            template = String(decoding: data, as: UTF8.self)
        }
        if let template { out.append(("tokenizer.chat_template", .string(template))) }
        return out
    }
}

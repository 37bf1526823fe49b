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
    public let config: ModelConfig

    public init(path: String) throws {
        file = try GGUFFile(path: path)
        let m = file.metadata
        func int(_ key: String) throws -> Int {
            guard let v = m[key]?.integer else { throw ModelIOError.malformed(path: path, reason: "metadata \(key) is missing") }
            return v
        }
        let arch = m["general.architecture"]?.string ?? "?"
        guard arch == "qwen2" else {
            throw ModelIOError.malformed(path: path, reason: "GGUF architecture '\(arch)' is not supported (qwen2 in this release)")
        }
        guard let embedding = file.tensors["token_embd.weight"], embedding.dims.count == 2 else {
            throw ModelIOError.malformed(path: path, reason: "token_embd.weight is missing")
        }
        let eos = m["tokenizer.ggml.eos_token_id"]?.integer
        config = ModelConfig(
            architecture: .qwen2, hiddenSize: try int("qwen2.embedding_length"),
            intermediateSize: try int("qwen2.feed_forward_length"), layerCount: try int("qwen2.block_count"),
            headCount: try int("qwen2.attention.head_count"), kvHeadCount: try int("qwen2.attention.head_count_kv"),
            vocabSize: embedding.dims[1], maxPositionEmbeddings: (try? int("qwen2.context_length")) ?? 32768,
            rmsNormEps: Float(m["qwen2.attention.layer_norm_rms_epsilon"]?.number ?? 1e-6),
            rope: RoPEConfig(theta: m["qwen2.rope.freq_base"]?.number ?? 10000),
            tieWordEmbeddings: file.tensors["output.weight"] == nil,
            qkvBias: file.tensors["blk.0.attn_q.bias"] != nil,
            bosTokenID: m["tokenizer.ggml.bos_token_id"]?.integer, eosTokenIDs: eos.map { [$0] } ?? [])
    }

    /// The model, its matrices in the file's format (f16 matrices converted to `dtype`).
    public func transformer(dtype: DType) throws -> TransformerModel {
        let c = config
        func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
            guard let t = file.tensors[name] else { throw ModelIOError.missingTensor(name: name, searched: file.path) }
            guard t.dims == [cols, rows] else { throw ModelIOError.shapeMismatch(tensor: name, expected: [rows, cols], found: t.dims.reversed()) }
            let raw = t.data.assumingMemoryBound(to: UInt8.self)
            // The file's blocks regrouped for the products (bit for bit), then the mapped pages dropped.
            func quantized(_ q: QuantType) -> WeightMatrix {
                let rowBytes = q.byteCount(rows: 1, cols: cols)
                let m = WeightMatrix.packing(q, rows: rows, cols: cols, bf16Products: dtype == .bfloat16) { r, out in
                    out.update(from: raw + r * rowBytes, count: rowBytes)
                }
                file.file.release(t.data, count: rows * rowBytes)
                return m
            }
            switch t.type {
            case .q8_0: return quantized(.q8_0)
            case .q4_0: return quantized(.q4_0)
            case .q4_k: return quantized(.q4_k)
            case .f32, .f16, .bf16:
                let values = try vector(name, count: rows * cols)
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
            switch t.type {
            case .f32: Convert.toFloat(t.data, dtype: .float32, into: out.pointer, count: count)
            case .f16: Convert.toFloat(t.data, dtype: .float16, into: out.pointer, count: count)
            case .bf16: Convert.toFloat(t.data, dtype: .bfloat16, into: out.pointer, count: count)
            case .q8_0, .q4_0, .q4_k:
                let q = QuantType(rawValue: "\(t.type)")!
                q.dequantize(t.data.assumingMemoryBound(to: UInt8.self), count: count, into: out.pointer)
            }
            return out
        }
        let names: [Projection: String] = [.q: "attn_q", .k: "attn_k", .v: "attn_v", .o: "attn_output",
                                           .gate: "ffn_gate", .up: "ffn_up", .down: "ffn_down"]
        func linear(_ l: Int, _ p: Projection, out: Int, inp: Int) throws -> Linear {
            let base = "blk.\(l).\(names[p]!)"
            return Linear(weight: try matrix(base + ".weight", rows: out, cols: inp),
                          bias: c.hasBias(p) ? try vector(base + ".bias", count: out) : nil)
        }
        let C = c.hiddenSize, I = c.intermediateSize
        let layers = try (0..<c.layerCount).map { l in
            DecoderLayerWeights(
                inputNorm: try vector("blk.\(l).attn_norm.weight", count: C),
                q: try linear(l, .q, out: c.qDim, inp: C), k: try linear(l, .k, out: c.kvDim, inp: C),
                v: try linear(l, .v, out: c.kvDim, inp: C), o: try linear(l, .o, out: C, inp: c.qDim),
                qNorm: nil, kNorm: nil, postAttentionNorm: try vector("blk.\(l).ffn_norm.weight", count: C),
                gate: try linear(l, .gate, out: I, inp: C), up: try linear(l, .up, out: I, inp: C),
                down: try linear(l, .down, out: C, inp: I))
        }
        let embedding = try matrix("token_embd.weight", rows: c.vocabSize, cols: C)
        let head = c.tieWordEmbeddings ? embedding : try matrix("output.weight", rows: c.vocabSize, cols: C)
        let weights = ModelWeights(config: c, dtype: dtype, embedding: embedding, layers: layers,
                                   finalNorm: try vector("output_norm.weight", count: C), lmHead: head)
        return TransformerModel(weights: weights)
    }

    /// The tokenizer: the GGUF tokens and merges as a byte-level BPE tokenizer.json with Qwen2's pre-tokenizer,
    /// control tokens as special added tokens, and the chat template and end-of-turn token from the metadata.
    public func tokenizer() throws -> Tokenizer {
        let m = file.metadata
        guard m["tokenizer.ggml.model"]?.string == "gpt2", let tokens = m["tokenizer.ggml.tokens"]?.array?.compactMap(\.string) else {
            throw ModelIOError.malformed(path: file.path, reason: "the GGUF tokenizer is not a byte-level BPE (tokenizer.ggml.model gpt2)")
        }
        let types = m["tokenizer.ggml.token_type"]?.array?.compactMap(\.integer) ?? []
        let merges = m["tokenizer.ggml.merges"]?.array?.compactMap(\.string) ?? []
        var vocab: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (id, token) in tokens.enumerated() {
            let type = id < types.count ? types[id] : 1
            if type == 3 || type == 4 {
                added.append(["id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": false, "special": type == 3])
            }
            if type != 5 { vocab[token] = id }
        }
        let pattern = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
        let json: [String: Any] = [
            "version": "1.0", "added_tokens": added, "normalizer": ["type": "NFC"],
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": [
                ["type": "Split", "pattern": ["Regex": pattern], "behavior": "Isolated", "invert": false],
                ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false]]],
            "decoder": ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false],
            "model": ["type": "BPE", "vocab": vocab, "merges": merges, "dropout": NSNull(), "unk_token": NSNull(),
                      "fuse_unk": false, "byte_fallback": false, "ignore_merges": false],
        ]
        let data = try JSONSerialization.data(withJSONObject: json)
        var config = TokenizerConfig()
        config.chatTemplate = m["tokenizer.chat_template"]?.string
        if let eos = m["tokenizer.ggml.eos_token_id"]?.integer, eos < tokens.count { config.eosToken = tokens[eos] }
        if let pad = m["tokenizer.ggml.padding_token_id"]?.integer, pad < tokens.count { config.padToken = tokens[pad] }
        config.addBosToken = m["tokenizer.ggml.add_bos_token"].map { $0.integer == 1 }
        return try Tokenizer(tokenizerJSON: data, config: config)
    }
}

import Adapters
import Foundation
import Kernels
import ModelIO
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
    /// What `--type` accepts.
    public enum OutputType: String, CaseIterable, Sendable {
        /// `q4_k_m` is llama.cpp's Q4_K_M mixture: q4_k, with q6_k for the LM head and for the value and down
        /// projections of the layers `usesMoreBits` picks.
        case q8_0, q4_0, q4_k, q4_k_m, q6_k, f16, bf16

        var matrixType: GGMLType {
            switch self {
            case .q8_0: .q8_0
            case .q4_0: .q4_0
            case .q4_k, .q4_k_m: .q4_k
            case .q6_k: .q6_k
            case .f16: .f16
            case .bf16: .bf16
            }
        }

        /// llama.cpp's `general.file_type` (llama_ftype).
        var fileType: UInt32 {
            switch self {
            case .f16: 1
            case .q4_0: 2
            case .q8_0: 7
            case .q4_k: 14
            case .q4_k_m: 15
            case .q6_k: 18
            case .bf16: 32
            }
        }

        var quantType: QuantType? {
            switch self {
            case .q8_0: .q8_0
            case .q4_0: .q4_0
            case .q4_k, .q4_k_m: .q4_k
            case .q6_k: .q6_k
            default: nil
            }
        }

        /// The format of one matrix: Q4_K_M gives q6_k to the LM head (the embedding when tied) and to attn_v and
        /// ffn_down in the first and last eighth of the layers and every third layer between, as llama.cpp does.
        func matrixType(for name: String, layerCount n: Int, tied: Bool) -> GGMLType {
            guard self == .q4_k_m else { return matrixType }
            if name == "output.weight" || (tied && name == "token_embd.weight") { return .q6_k }
            let parts = name.split(separator: ".")
            if parts.count == 4, parts[0] == "blk", let i = Int(parts[1]), parts[2] == "attn_v" || parts[2] == "ffn_down",
               Self.usesMoreBits(layer: i, of: n) {
                return .q6_k
            }
            return .q4_k
        }

        static func usesMoreBits(layer i: Int, of n: Int) -> Bool { i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2 }
    }

    public struct Report: Sendable {
        public var tensors: Int
        public var bytes: Int
        public var fallbacks: [String]
    }

    public static func export(model url: URL, adapter: TrainableAdapter?, type: OutputType, output: URL) throws -> Report {
        let directory = try ModelDirectory(url: url)
        let config = try ModelConfig(json: directory.configData, path: url.appendingPathComponent("config.json").path)
        if let w = config.slidingWindow, w < config.maxPositionEmbeddings {
            throw ModelIOError.malformed(path: url.path, reason: "this model attends within a sliding window of \(w) tokens, which llama.cpp's \(GGUFLayout.architecture(of: config)) architecture does not do; GGUF export would change its answers")
        }
        if let a = adapter, let why = a.method.mergeRefusal {
            throw AdapterError.unsupported(path: output.path, reason: "GGUF export merges the adapter first, and " + why)
        }
        let arch = GGUFLayout.architecture(of: config)
        var writer = GGUFWriter()
        writer.metadata = try metadata(config: config, directory: directory, name: url.lastPathComponent, type: type)
        // (GGUF name, HF name, shape [rows, cols] or [n]).
        var plan: [(String, String, [Int])] = [("token_embd.weight", WeightNames.embedding, [config.vocabSize, config.hiddenSize])]
        let ggufNames: [Projection: String] = [.q: "attn_q", .k: "attn_k", .v: "attn_v", .o: "attn_output",
                                               .gate: "ffn_gate", .up: "ffn_up", .down: "ffn_down"]
        for l in 0..<config.layerCount {
            plan.append(("blk.\(l).attn_norm.weight", WeightNames.inputNorm(l), [config.hiddenSize]))
            for p in Projection.allCases {
                let name = WeightNames.projection(layer: l, p)
                let shape = try directory.tensor(name + ".weight").shape
                guard shape.count == 2 else { throw ModelIOError.shapeMismatch(tensor: name + ".weight", expected: [0, 0], found: shape) }
                let (out, inp) = (shape[0], shape[1])
                plan.append(("blk.\(l).\(ggufNames[p]!).weight", name + ".weight", [out, inp]))
                if config.hasBias(p) { plan.append(("blk.\(l).\(ggufNames[p]!).bias", name + ".bias", [out])) }
            }
            if config.qkNorm {
                plan.append(("blk.\(l).attn_q_norm.weight", WeightNames.qNorm(l), [config.headDim]))
                plan.append(("blk.\(l).attn_k_norm.weight", WeightNames.kNorm(l), [config.headDim]))
            }
            plan.append(("blk.\(l).ffn_norm.weight", WeightNames.postAttentionNorm(l), [config.hiddenSize]))
        }
        plan.append(("output_norm.weight", WeightNames.finalNorm, [config.hiddenSize]))
        if !config.tieWordEmbeddings { plan.append(("output.weight", WeightNames.lmHead, [config.vocabSize, config.hiddenSize])) }
        // Llama 3.1's rope scaling travels as per-frequency factors, computed rather than read.
        var ropeFactors: [Float]?
        if case let .llama3(factor, low, high, original) = config.rope.scaling {
            ropeFactors = GGUFLayout.llama3FrequencyFactors(headDim: config.headDim, theta: config.rope.theta, factor: factor,
                                                            low: low, high: high, original: original)
            plan.append(("rope_freqs.weight", "", [config.headDim / 2]))
        }

        var fallbacks: [String] = []
        var types: [String: GGMLType] = [:]
        for (gguf, _, shape) in plan {
            var t: GGMLType = shape.count == 1 ? .f32
                : type.matrixType(for: gguf, layerCount: config.layerCount, tied: config.tieWordEmbeddings)
            // Rows that are not whole blocks: llama.cpp's fallback (q5_0 for q4_k, q8_0 for q6_k), else f16.
            if let q = QuantType(rawValue: "\(t)"), shape.count == 2, shape[1] % q.blockSize != 0 {
                t = q.format(forColumns: shape[1]).flatMap { GGMLType(rawValue: UInt32($0.ggmlType)) } ?? .f16
                fallbacks.append("\(gguf) (\(shape[1]) columns) as \(t)")
            }
            types[gguf] = t
            // GGML order: the innermost dimension first.
            writer.tensors.append(.init(name: gguf, dims: shape.reversed(), type: t))
        }
        let hfName = Dictionary(uniqueKeysWithValues: plan.map { ($0.0, $0.1) })
        let permuted = GGUFLayout.permutesQueryKey(gguf: arch)
        var bytes = 0
        try writer.write(to: output) { tensor, out in
            let values: FloatBuffer
            if tensor.name == "rope_freqs.weight", let factors = ropeFactors {
                values = FloatBuffer(count: factors.count)
                factors.withUnsafeBufferPointer { values.copy(from: $0.baseAddress!, count: factors.count) }
            } else {
                let view = try directory.tensor(hfName[tensor.name]!)
                values = try view.floatBuffer()
                guard view.elementCount == tensor.elementCount else {
                    throw ModelIOError.shapeMismatch(tensor: view.name, expected: tensor.dims.reversed(), found: view.shape)
                }
                if let a = adapter { _ = a.merge(tensor: view.name, values: values.pointer, shape: view.shape) }
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
                case .q8_0, .q4_0, .q5_0, .q4_k, .q6_k:
                    guard let q = QuantType(rawValue: "\(tensor.type)") else { throw ModelIOError.malformed(path: output.path, reason: "no quantizer for \(tensor.type)") }
                    q.quantize(values.pointer, count: n, into: out.baseAddress!.assumingMemoryBound(to: UInt8.self))
                default:
                    throw ModelIOError.malformed(path: output.path, reason: "no writer for \(tensor.type) tensors")
                }
            }
            bytes += tensor.byteCount
        }
        return Report(tensors: plan.count, bytes: bytes, fallbacks: fallbacks)
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
            ("\(a).context_length", .uint32(UInt32(c.maxPositionEmbeddings))),
            ("\(a).embedding_length", .uint32(UInt32(c.hiddenSize))),
            ("\(a).feed_forward_length", .uint32(UInt32(c.intermediateSize))),
            ("\(a).attention.head_count", .uint32(UInt32(c.headCount))),
            ("\(a).attention.head_count_kv", .uint32(UInt32(c.kvHeadCount))),
            ("\(a).rope.freq_base", .float32(Float(c.rope.theta))),
            ("\(a).attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps)),
        ]
        if c.headDim * c.headCount != c.hiddenSize || c.architecture == .qwen3 {
            m.append(("\(a).attention.key_length", .uint32(UInt32(c.headDim))))
            m.append(("\(a).attention.value_length", .uint32(UInt32(c.headDim))))
        }
        if a == "llama" {
            m.append(("llama.vocab_size", .uint32(UInt32(c.vocabSize))))
            m.append(("llama.rope.dimension_count", .uint32(UInt32(c.headDim))))
        }
        if case .linear(let factor) = c.rope.scaling {
            m.append(("\(a).rope.scaling.type", .string("linear")))
            m.append(("\(a).rope.scaling.factor", .float32(Float(factor))))
        }
        m += try tokenizerMetadata(directory: directory, config: c)
        return m
    }

    /// The byte-level BPE vocabulary of tokenizer.json as llama.cpp's `gpt2` tokenizer model.
    static func tokenizerMetadata(directory: ModelDirectory, config c: ModelConfig) throws -> [(key: String, value: GGUFValue)] {
        let path = directory.url.appendingPathComponent("tokenizer.json").path
        guard let root = try directory.jsonObject("tokenizer.json"), let model = root["model"] as? [String: Any],
              (model["type"] as? String) == "BPE", let vocab = model["vocab"] as? [String: Any] else {
            throw ModelIOError.malformed(path: path, reason: "GGUF export needs a byte-level BPE tokenizer.json")
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
        // The pre-tokenizer: llama.cpp knows byte-level BPE splitting regexes by name.
        let pretokenizer = root["pre_tokenizer"] as? [String: Any]
        let steps = (pretokenizer?["pretokenizers"] as? [[String: Any]]) ?? (pretokenizer.map { [$0] } ?? [])
        let regex = steps.compactMap { ($0["pattern"] as? [String: Any])?["Regex"] as? String }.first
        guard let regex, let pre = GGUFLayout.preTokenizers.first(where: { $0.pattern == regex })?.name else {
            throw ModelIOError.malformed(path: path, reason: "GGUF export knows the pre-tokenizers of Qwen2/Qwen3 and Llama 3 (byte-level BPE); this tokenizer.json splits with \(regex.map { "the regex \($0)" } ?? "no regex")")
        }
        var out: [(key: String, value: GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string(pre)),
            ("tokenizer.ggml.tokens", .strings(tokens.map { $0 ?? "" })), ("tokenizer.ggml.token_type", .int32s(types)),
            ("tokenizer.ggml.merges", .strings(merges)),
        ]
        let tokenizerConfig = try directory.jsonObject("tokenizer_config.json") ?? [:]
        func tokenID(_ key: String) -> Int? {
            let content = (tokenizerConfig[key] as? String) ?? ((tokenizerConfig[key] as? [String: Any])?["content"] as? String)
            return content.flatMap { specialIDs[$0] }
        }
        let eos = tokenID("eos_token") ?? c.eosTokenIDs.first
        if let eos { out.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        if let pad = tokenID("pad_token") { out.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(pad)))) }
        if let bos = tokenID("bos_token") ?? specialIDs["<|endoftext|>"] ?? c.bosTokenID {
            out.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos))))
        }
        // Llama 3 starts every sequence with BOS (its post-processor adds it); Qwen never does.
        var addsBOS = tokenizerConfig["add_bos_token"] as? Bool ?? false
        if tokenizerConfig["add_bos_token"] == nil, let post = root["post_processor"] as? [String: Any] {
            let processors = (post["processors"] as? [[String: Any]]) ?? [post]
            addsBOS = processors.contains { p in
                (p["type"] as? String) == "TemplateProcessing" && ((p["single"] as? [[String: Any]])?.first?["SpecialToken"] != nil)
            }
        }
        out.append(("tokenizer.ggml.add_bos_token", .bool(addsBOS)))
        var template = tokenizerConfig["chat_template"] as? String
        if let data = FileManager.default.contents(atPath: directory.url.appendingPathComponent("chat_template.jinja").path) {
            template = String(decoding: data, as: UTF8.self)
        }
        if let template { out.append(("tokenizer.chat_template", .string(template))) }
        return out
    }
}

import Adapters
import GGUF
import ArgumentParser
import Compression
import Foundation
import Kernels
import ModelIO
import Tokenizer
import Transformer

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Architecture, parameter count, dtypes, memory needed, tokenizer and chat template of a model; with --adapter, the adapter's method, trainable parameters and target model.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOption: AdapterOption
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let url = modelOptions.url
        if url.pathExtension.lowercased() == "gguf" { try describeGGUF(url); return }
        let directory = try ModelDirectory(url: url)
        let config = try ModelConfig(json: directory.configData, path: url.appendingPathComponent("config.json").path)
        if let adapterURL = adapterOption.url {
            try describeAdapter(adapterURL, model: config)
            return
        }
        var dtypes: [String: Int] = [:]
        for name in directory.tensorNames { dtypes[try directory.tensor(name).dtypeName, default: 0] += 1 }
        let params = config.parameterCount
        let tokenizer = try? Tokenizer.load(directory: url)
        let template = tokenizer.map { ChatTemplate.detect(from: $0.config).rawValue }
        var memory: [String: Int] = [
            "float32": params * 4, "bfloat16": params * 2,
            // KV cache per token: layers x 2 x kv_dim x 4 bytes.
            "kv_cache_per_token": config.layerCount * 2 * config.kvDim * 4,
        ]
        var gguf: [String: Int] = [:]
        for q in Self.quantizedSizes(config) {
            memory[q.name] = q.memory
            gguf[q.name] = q.disk
        }
        let sparsity = try Self.sparsity(directory, config: config)
        if json {
            try Terminal.json([
                "sparsity": ["projections": sparsity.share, "sparse_matrices": sparsity.sparse, "matrices": sparsity.matrices],
                "architecture": config.architecture.rawValue, "parameters": params, "layers": config.layerCount,
                "hidden_size": config.hiddenSize, "intermediate_size": config.intermediateSize,
                "attention_heads": config.headCount, "kv_heads": config.kvHeadCount, "head_dim": config.headDim,
                "vocab_size": config.vocabSize, "context": config.maxPositionEmbeddings,
                "tie_word_embeddings": config.tieWordEmbeddings, "rope_theta": config.rope.theta,
                "active_parameters": config.activeParameterCount,
                "experts": config.moe.map { ["count": $0.experts, "per_token": $0.topK, "shared": $0.sharedIntermediateSize != nil] as [String: Any] } ?? NSNull(),
                "stored_dtypes": dtypes, "weight_bytes": directory.weightBytes, "memory_bytes": memory, "gguf_bytes": gguf,
                "tokenizer": tokenizer.map { ["vocab_size": $0.vocabularySize] as [String: Any] } ?? NSNull(),
                "template": template ?? NSNull(), "cpu": Self.cpuJSON,
            ])
            return
        }
        Terminal.out("""
        architecture   \(config.architecture.rawValue) (\(config.layerCount) layers, hidden \(config.hiddenSize), intermediate \(config.intermediateSize))
        attention      \(config.headCount) heads, \(config.kvHeadCount) key/value heads, head dim \(config.headDim), rope theta \(config.rope.theta)\(config.qkNorm ? ", q/k norm" : "")\(config.qkvBias ? ", q/k/v bias" : "")
        parameters     \(params.formatted()) (\(String(format: "%.2f", Double(params) / 1e9))B)\(config.tieWordEmbeddings ? ", tied embeddings" : ""); \(config.activeParameterCount.formatted()) multiplied per decoded token\(config.moe.map { " (\($0.topK) of \($0.experts) experts)" } ?? "")
        vocabulary     \(config.vocabSize), context \(config.maxPositionEmbeddings) tokens
        stored dtypes  \(dtypes.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", ")), \(Terminal.bytes(directory.weightBytes)) on disk
        memory         weights \(Terminal.bytes(params * 2)) in bfloat16, \(Terminal.bytes(params * 4)) in float32; KV cache \(Terminal.bytes(memory["kv_cache_per_token"]!)) per token
        quantized      \(Self.quantizedSizes(config).map { "\($0.name) \(String(format: "%.2f", 8 * Double($0.disk) / Double(params))) bits per weight, \(Terminal.bytes($0.disk)) as GGUF, \(Terminal.bytes($0.memory)) in memory" }.joined(separator: "\n               "))
        sparsity       \(String(format: "%.1f%%", 100 * sparsity.share)) of the projections' weights are zero (\(sparsity.sparse) of \(sparsity.matrices) matrices pruned)
        tokenizer      \(tokenizer.map { "\($0.vocabularySize) tokens" } ?? "not found (tokenizer.json or qwen.tiktoken)")
        chat template  \(template ?? "n/a")
        cpu            \(Self.cpuLine)
        """)
    }

    /// The share of exact zeros over every stored projection matrix of the decoder layers (the experts' too), and
    /// how many matrices hold at least 10% zeros (pruned ones; merges keep their zeros).
    static func sparsity(_ directory: ModelDirectory, config: ModelConfig) throws -> (share: Double, sparse: Int, matrices: Int) {
        var zeros = 0, total = 0, sparse = 0, matrices = 0
        do {
            for name in PrunableMatrix.checkpointNames(config: config) {
                guard directory.contains(name) else { continue }
                let values = try directory.tensor(name).floatBuffer()
                var z = 0
                for i in 0..<values.count where values.pointer[i] == 0 { z += 1 }
                zeros += z
                total += values.count
                matrices += 1
                if Double(z) >= AdapterMerger.sparseZeroShare * Double(values.count) { sparse += 1 }
            }
        }
        return (total > 0 ? Double(zeros) / Double(total) : 0, sparse, matrices)
    }

    /// Method, settings, trainable parameters and the model an adapter was made for (after checking it fits `model`).
    func describeAdapter(_ adapterURL: URL, model config: ModelConfig) throws {
        let adapter = try AdapterFiles.load(from: adapterURL, model: config)
        let object = try AdapterFiles.readConfig(adapterURL)
        let target = (object["base_model_name_or_path"] as? String) ?? "not recorded"
        let share = 100 * Double(adapter.parameterCount) / Double(config.parameterCount)
        let fileBytes = (try? FileManager.default.attributesOfItem(atPath: adapterURL.appendingPathComponent(AdapterFiles.weightsFileName).path)[.size] as? Int) ?? 0
        if json {
            try Terminal.json(["method": adapter.method.rawValue, "peft_type": adapter.method.peftType,
                           "summary": adapter.summary, "trainable_parameters": adapter.parameterCount,
                           "share_of_model": share, "base_model": target, "mergeable": adapter.method.canMerge,
                           "virtual_tokens": adapter.leadingRows, "file_bytes": fileBytes])
            return
        }
        Terminal.out("""
        method         \(adapter.method.rawValue) (\(adapter.method.peftType)): \(adapter.summary)
        trainable      \(adapter.parameterCount.formatted()) parameters (\(String(format: "%.4f", share))% of \(config.parameterCount.formatted())), \(Terminal.bytes(fileBytes)) on disk
        made for       \(target)
        merge          \(adapter.method.canMerge ? "can be folded into the weights (peft merge)" : "nothing to fold: applied at run time with --adapter")
        """)
    }

    /// A GGUF file: its architecture, sizes and the formats of its tensors.
    func describeGGUF(_ url: URL) throws {
        let gguf = try GGUFModel(path: url.path)
        let c = gguf.config
        var types: [String: Int] = [:]
        for t in gguf.file.tensors.values { types["\(t.type)", default: 0] += 1 }
        let bytes = gguf.file.tensors.values.reduce(0) { $0 + $1.byteCount }
        let bits = 8 * Double(bytes) / Double(c.parameterCount)
        if json {
            try Terminal.json(["architecture": c.architecture.rawValue, "parameters": c.parameterCount, "layers": c.layerCount,
                           "hidden_size": c.hiddenSize, "vocab_size": c.vocabSize, "tensor_types": types,
                           "weight_bytes": bytes, "bits_per_weight": bits, "file": "gguf", "cpu": Self.cpuJSON])
            return
        }
        Terminal.out("""
        architecture   \(c.architecture.rawValue) (\(c.layerCount) layers, hidden \(c.hiddenSize), intermediate \(c.intermediateSize)), GGUF file
        parameters     \(c.parameterCount.formatted()), vocabulary \(c.vocabSize), context \(c.maxPositionEmbeddings)
        tensors        \(types.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", ")): \(Terminal.bytes(bytes)), \(String(format: "%.2f", bits)) bits per weight
        cpu            \(Self.cpuLine)
        """)
    }

    /// The kernels' CPU tier, what the CPU has, and the GEMM back end.
    static var cpuLine: String { "\(CPU.summary) kernels, \(Gemm.backendDescription) GEMM, \(ProcessInfo.processInfo.activeProcessorCount) cores" }
    static var cpuJSON: [String: Any] {
        ["tier": CPU.active.rawValue, "best_tier": CPU.best.rawValue, "features": CPU.features,
         "gemm": Gemm.backendDescription, "cores": ProcessInfo.processInfo.activeProcessorCount]
    }

    /// Weight bytes with the matrices in each block format, as a GGUF file (`peft quantize`) and in memory
    /// (`--quantize`: groups of 8 rows, q6_k's levels a byte each), vectors in f32; k-quant rows that are not whole
    /// super-blocks counted in llama.cpp's fallback format, as they are stored.
    static func quantizedSizes(_ c: ModelConfig) -> [(name: String, disk: Int, memory: Int)] {
        var shapes: [(rows: Int, cols: Int)] = [(c.vocabSize, c.hiddenSize)]
        if !c.tieWordEmbeddings { shapes.append((c.vocabSize, c.hiddenSize)) }
        func mlp(_ width: Int) -> [(rows: Int, cols: Int)] {
            [(width, c.hiddenSize), (width, c.hiddenSize), (c.hiddenSize, width)]
        }
        for l in 0..<c.layerCount {
            shapes += [(c.qDim, c.hiddenSize), (c.kvDim, c.hiddenSize), (c.kvDim, c.hiddenSize), (c.hiddenSize, c.qDim)]
            // A sparse layer's experts (and shared expert) are quantized; its router and shared gate stay f32, as
            // llama.cpp keeps them (counted with the vectors below).
            if let moe = c.moe, c.isSparse(layer: l) {
                for _ in 0..<moe.experts { shapes += mlp(moe.intermediateSize) }
                if let s = moe.sharedIntermediateSize { shapes += mlp(s) }
            } else {
                shapes += mlp(c.intermediateSize)
            }
        }
        let matrixParams = shapes.reduce(0) { $0 + $1.rows * $1.cols }
        let vectors = (c.parameterCount - matrixParams) * 4
        return QuantType.allCases.map { q in
            var disk = vectors, memory = vectors
            for s in shapes {
                let format = q.format(forColumns: s.cols) ?? .q8_0
                disk += format.byteCount(rows: s.rows, cols: s.cols)
                memory += format.packedByteCount(rows: s.rows, cols: s.cols)
            }
            return (q.rawValue, disk, memory)
        }
    }
}

import Foundation
import Kernels
import ModelIO

/// A frozen linear layer: weight `[out, in]` and optional bias `[out]` (always f32).
public struct Linear: @unchecked Sendable {
    public let weight: WeightMatrix
    public let bias: FloatBuffer?

    public var inFeatures: Int { weight.cols }
    public var outFeatures: Int { weight.rows }

    public init(weight: WeightMatrix, bias: FloatBuffer?) {
        self.weight = weight
        self.bias = bias
    }
}

/// Weights of one decoder layer. Norm weights are f32; projections are stored in the compute dtype.
public struct DecoderLayerWeights: @unchecked Sendable {
    public var inputNorm: FloatBuffer          // [C]
    public var q, k, v, o: Linear              // [qDim, C], [kvDim, C], [kvDim, C], [C, qDim]
    public var qNorm: FloatBuffer?             // [headDim] (Qwen3)
    public var kNorm: FloatBuffer?             // [headDim] (Qwen3)
    public var postAttentionNorm: FloatBuffer  // [C]
    public var gate, up, down: Linear          // [I, C], [I, C], [C, I]

    public init(inputNorm: FloatBuffer, q: Linear, k: Linear, v: Linear, o: Linear, qNorm: FloatBuffer?,
                kNorm: FloatBuffer?, postAttentionNorm: FloatBuffer, gate: Linear, up: Linear, down: Linear) {
        self.inputNorm = inputNorm
        (self.q, self.k, self.v, self.o) = (q, k, v, o)
        (self.qNorm, self.kNorm) = (qNorm, kNorm)
        self.postAttentionNorm = postAttentionNorm
        (self.gate, self.up, self.down) = (gate, up, down)
    }

    public func linear(_ p: Projection) -> Linear {
        switch p {
        case .q: q
        case .k: k
        case .v: v
        case .o: o
        case .gate: gate
        case .up: up
        case .down: down
        }
    }

    public mutating func setLinear(_ p: Projection, _ value: Linear) {
        switch p {
        case .q: q = value
        case .k: k = value
        case .v: v = value
        case .o: o = value
        case .gate: gate = value
        case .up: up = value
        case .down: down = value
        }
    }
}

/// All weights of a decoder-only model.
public final class ModelWeights: @unchecked Sendable {
    public let config: ModelConfig
    /// Storage dtype of the large matrices (embeddings and projections).
    public let dtype: DType
    public private(set) var embedding: WeightMatrix          // [V, C]
    public private(set) var layers: [DecoderLayerWeights]
    public private(set) var finalNorm: FloatBuffer           // [C]
    public private(set) var lmHead: WeightMatrix             // [V, C]; the embedding itself when tied

    public init(config: ModelConfig, dtype: DType, embedding: WeightMatrix, layers: [DecoderLayerWeights],
                finalNorm: FloatBuffer, lmHead: WeightMatrix) {
        self.config = config
        self.dtype = dtype
        self.embedding = embedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
    }

    /// Bytes held by all weights at their storage dtype (tied head counted once).
    public var byteCount: Int {
        var total = embedding.byteCount + finalNorm.count * 4
        if !config.tieWordEmbeddings { total += lmHead.byteCount }
        for l in layers {
            for p in Projection.allCases {
                let lin = l.linear(p)
                total += lin.weight.byteCount + (lin.bias?.count ?? 0) * 4
            }
            total += (l.inputNorm.count + l.postAttentionNorm.count + (l.qNorm?.count ?? 0) + (l.kNorm?.count ?? 0)) * 4
        }
        return total
    }
}

/// A base tensor's storage: a (possibly bf16) matrix or an f32 vector.
public enum TensorStorage {
    case matrix(WeightMatrix)
    case vector(FloatBuffer)
}

extension ModelWeights {
    /// The storage of `tensor`, nil when the model has no such tensor (a bias it lacks, the LM head when tied).
    public func storage(_ tensor: BaseTensor) -> TensorStorage? {
        switch tensor {
        case .embedding: return .matrix(embedding)
        case .lmHead: return config.tieWordEmbeddings ? nil : .matrix(lmHead)
        case .finalNorm: return .vector(finalNorm)
        case .inputNorm(let l): return .vector(layers[l].inputNorm)
        case .postAttentionNorm(let l): return .vector(layers[l].postAttentionNorm)
        case .qNorm(let l): return layers[l].qNorm.map { .vector($0) }
        case .kNorm(let l): return layers[l].kNorm.map { .vector($0) }
        case .weight(let s): return .matrix(layers[s.layer].linear(s.projection).weight)
        case .bias(let s): return layers[s.layer].linear(s.projection).bias.map { .vector($0) }
        }
    }

    /// Replaces a tensor's storage (full / freeze fine-tuning points trainable tensors into its parameter buffer).
    /// Replacing the embedding of a tied model replaces the LM head with it.
    public func replace(_ tensor: BaseTensor, with storage: TensorStorage) {
        switch (tensor, storage) {
        case (.embedding, .matrix(let m)):
            embedding = m
            if config.tieWordEmbeddings { lmHead = m }
        case (.lmHead, .matrix(let m)): lmHead = m
        case (.finalNorm, .vector(let v)): finalNorm = v
        case (.inputNorm(let l), .vector(let v)): layers[l].inputNorm = v
        case (.postAttentionNorm(let l), .vector(let v)): layers[l].postAttentionNorm = v
        case (.qNorm(let l), .vector(let v)): layers[l].qNorm = v
        case (.kNorm(let l), .vector(let v)): layers[l].kNorm = v
        case (.weight(let s), .matrix(let m)): layers[s.layer].setLinear(s.projection, Linear(weight: m, bias: layers[s.layer].linear(s.projection).bias))
        case (.bias(let s), .vector(let v)): layers[s.layer].setLinear(s.projection, Linear(weight: layers[s.layer].linear(s.projection).weight, bias: v))
        default: preconditionFailure("storage kind does not fit \(tensor)")
        }
    }
}

extension ModelWeights {
    /// Quantizes the frozen matrices (every projection, the embedding and an untied LM head) to `type`; norms and
    /// biases stay f32. A matrix whose rows are not whole k-quant super-blocks gets llama.cpp's fallback (q5_0 for
    /// q4_k, q8_0 for q6_k).
    /// Returns the bytes the matrices take afterwards.
    @discardableResult
    public func quantize(_ type: QuantType) -> Int {
        var bytes = 0
        var tensors: [BaseTensor] = [.embedding]
        if !config.tieWordEmbeddings { tensors.append(.lmHead) }
        for l in 0..<config.layerCount {
            tensors += Projection.allCases.map { .weight(ProjectionSite(layer: l, projection: $0)) }
        }
        for t in tensors {
            guard case .matrix(let m)? = storage(t) else { continue }
            if let format = type.format(forColumns: m.cols), let q = m.quantized(format) {
                replace(t, with: .matrix(q))
                bytes += q.byteCount
            } else {
                bytes += m.byteCount
            }
        }
        return bytes
    }

    /// The block format of the projections (nil when they are f32 or bf16).
    public var quantType: QuantType? { layers.first?.q.weight.quantType }
}

extension ModelWeights {
    /// Loads weights from a Hugging Face directory, storing large matrices as `dtype` (`float32` or `bfloat16`).
    /// Tensors already stored in that dtype are used straight from the memory mapping (no copy).
    public static func load(directory: ModelDirectory, config: ModelConfig, dtype: DType,
                            quantize: QuantType? = nil) throws -> ModelWeights {
        guard dtype != .float16 else { throw TransformerError.input(reason: "compute dtype float16 is not supported; use float32 or bfloat16") }
        let c = config.hiddenSize, i = config.intermediateSize
        let loader = WeightLoader(directory: directory, dtype: dtype, quantize: quantize,
                                  gptq: try GPTQConfig(configData: directory.configData, path: directory.url.appendingPathComponent("config.json").path))
        let embedding = try loader.matrix(WeightNames.embedding, rows: config.vocabSize, cols: c)
        var layers: [DecoderLayerWeights] = []
        for l in 0..<config.layerCount {
            func lin(_ p: Projection, out: Int, inp: Int, bias: Bool) throws -> Linear {
                let name = WeightNames.projection(layer: l, p)
                return Linear(weight: try loader.matrix(name + ".weight", rows: out, cols: inp),
                              bias: bias ? try loader.vector(name + ".bias", count: out) : nil)
            }
            layers.append(DecoderLayerWeights(
                inputNorm: try loader.vector(WeightNames.inputNorm(l), count: c),
                q: try lin(.q, out: config.qDim, inp: c, bias: config.qkvBias),
                k: try lin(.k, out: config.kvDim, inp: c, bias: config.qkvBias),
                v: try lin(.v, out: config.kvDim, inp: c, bias: config.qkvBias),
                o: try lin(.o, out: c, inp: config.qDim, bias: config.outputBias),
                qNorm: config.qkNorm ? try loader.vector(WeightNames.qNorm(l), count: config.headDim) : nil,
                kNorm: config.qkNorm ? try loader.vector(WeightNames.kNorm(l), count: config.headDim) : nil,
                postAttentionNorm: try loader.vector(WeightNames.postAttentionNorm(l), count: c),
                gate: try lin(.gate, out: i, inp: c, bias: config.mlpBias),
                up: try lin(.up, out: i, inp: c, bias: config.mlpBias),
                down: try lin(.down, out: c, inp: i, bias: config.mlpBias)))
        }
        let finalNorm = try loader.vector(WeightNames.finalNorm, count: c)
        let lmHead: WeightMatrix
        if config.tieWordEmbeddings {
            lmHead = embedding
        } else if directory.contains(WeightNames.lmHead) {
            lmHead = try loader.matrix(WeightNames.lmHead, rows: config.vocabSize, cols: c)
        } else {
            throw TransformerError.weights(reason: "\(directory.url.path): '\(WeightNames.lmHead)' is missing and config.json has tie_word_embeddings false")
        }
        let weights = ModelWeights(config: config, dtype: dtype, embedding: embedding, layers: layers,
                                   finalNorm: finalNorm, lmHead: lmHead)
        // Matrices that could not take the format directly (q4_k rows of 896) get its fallback here.
        if let quantize { weights.quantize(quantize) }
        return weights
    }
}

/// Reads tensors by name into the engine's storage, checking shapes.
final class WeightLoader {
    let directory: ModelDirectory
    let dtype: DType
    let quantize: QuantType?
    let gptq: GPTQConfig?
    private var prefaulted = Set<ObjectIdentifier>()

    init(directory: ModelDirectory, dtype: DType, quantize: QuantType? = nil, gptq: GPTQConfig? = nil) {
        self.directory = directory
        self.dtype = dtype
        self.quantize = quantize
        self.gptq = gptq
    }

    /// Touches a mapped file once, the first time a weight is used straight from it.
    private func prefault(_ file: MappedFile) {
        // A quantizing load reads each tensor once and drops it: touching the whole file would undo that.
        guard quantize == nil else { return }
        if prefaulted.insert(ObjectIdentifier(file)).inserted { file.prefault() }
    }

    func vector(_ name: String, count: Int) throws -> FloatBuffer {
        let t = try directory.tensor(name)
        try t.expectShape([count])
        return try t.floatBuffer()
    }

    func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        // GPTQ projections: 4-bit storage as q4_0 blocks, never widened.
        if let gptq, name.hasSuffix(".weight"), !directory.contains(name), directory.contains(String(name.dropLast(7)) + ".qweight") {
            var m = try gptq.matrix(directory, module: String(name.dropLast(7)), rows: rows, cols: cols)
            m.bf16Products = dtype == .bfloat16
            return m
        }
        let t = try directory.tensor(name)
        try t.expectShape([rows, cols])
        let stored = try t.dtype()
        let aligned = Int(bitPattern: t.data) % 4 == 0
        // k-quants need rows of whole 256-blocks; others get llama.cpp's fallback format.
        let format = quantize.flatMap { $0.format(forColumns: cols) }
        if let q = format {
            // Row by row from the mapping into blocks; then the source pages are dropped.
            let m = WeightMatrix.packing(q, rows: rows, cols: cols, bf16Products: dtype == .bfloat16) { r, out in
                var row = [Float](repeating: 0, count: cols)
                row.withUnsafeMutableBufferPointer { rp in
                    Convert.toFloat(t.data + r * cols * stored.byteSize, dtype: stored, into: rp.baseAddress!, count: cols)
                    q.quantize(rp.baseAddress!, count: cols, into: out)
                }
                // Source pages go as soon as their rows are read, so a vocabulary-sized matrix never sits in memory
                // twice (dropped file pages are read again if touched; the data stays correct).
                if (r + 1) % 64 == 0 {
                    t.file.release(t.data + (r - 63) * cols * stored.byteSize, count: 64 * cols * stored.byteSize)
                }
            }
            t.file.release(t.data, count: t.byteCount)
            return m
        }
        switch (dtype, stored) {
        case (.bfloat16, .bfloat16):
            prefault(t.file)
            return WeightMatrix(rows: rows, cols: cols, storage: .bfloat16(t.data.assumingMemoryBound(to: UInt16.self)),
                                owner: t.file)
        case (.float32, .float32) where aligned:
            prefault(t.file)
            return WeightMatrix(rows: rows, cols: cols, storage: .float32(t.data.assumingMemoryBound(to: Float.self)),
                                owner: t.file)
        case (.bfloat16, _):
            let floats = try t.floatBuffer()
            let half = HalfBuffer(count: rows * cols)
            withExtendedLifetime(floats) {
                Convert.fromFloat(floats.pointer, dtype: .bfloat16, into: half.pointer, count: rows * cols)
            }
            return WeightMatrix(rows: rows, cols: cols, storage: .bfloat16(UnsafePointer(half.pointer)), owner: half)
        default:
            let floats = try t.floatBuffer()
            return WeightMatrix(rows: rows, cols: cols, storage: .float32(UnsafePointer(floats.pointer)), owner: floats)
        }
    }
}

/// Hugging Face tensor names: the one place they are spelled.
public enum WeightNames {
    public static let embedding = "model.embed_tokens.weight"
    public static let finalNorm = "model.norm.weight"
    public static let lmHead = "lm_head.weight"
    public static func layerPrefix(_ l: Int) -> String { "model.layers.\(l)" }
    public static func inputNorm(_ l: Int) -> String { "\(layerPrefix(l)).input_layernorm.weight" }
    public static func postAttentionNorm(_ l: Int) -> String { "\(layerPrefix(l)).post_attention_layernorm.weight" }
    public static func qNorm(_ l: Int) -> String { "\(layerPrefix(l)).self_attn.q_norm.weight" }
    public static func kNorm(_ l: Int) -> String { "\(layerPrefix(l)).self_attn.k_norm.weight" }
    /// `model.layers.{l}.self_attn.q_proj` (append `.weight` / `.bias`).
    public static func projection(layer l: Int, _ p: Projection) -> String { "\(layerPrefix(l)).\(p.module).\(p.rawValue)" }
}

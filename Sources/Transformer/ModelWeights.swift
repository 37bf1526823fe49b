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
}

/// All weights of a decoder-only model.
public final class ModelWeights: @unchecked Sendable {
    public let config: ModelConfig
    /// Storage dtype of the large matrices (embeddings and projections).
    public let dtype: DType
    public let embedding: WeightMatrix          // [V, C]
    public let layers: [DecoderLayerWeights]
    public let finalNorm: FloatBuffer           // [C]
    public let lmHead: WeightMatrix             // [V, C]; the embedding itself when tied

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

extension ModelWeights {
    /// Loads weights from a Hugging Face directory, storing large matrices as `dtype` (`float32` or `bfloat16`).
    /// Tensors already stored in that dtype are used straight from the memory mapping (no copy).
    public static func load(directory: ModelDirectory, config: ModelConfig, dtype: DType) throws -> ModelWeights {
        guard dtype != .float16 else { throw TransformerError.input(reason: "compute dtype float16 is not supported; use float32 or bfloat16") }
        let c = config.hiddenSize, i = config.intermediateSize
        let loader = WeightLoader(directory: directory, dtype: dtype)
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
        return ModelWeights(config: config, dtype: dtype, embedding: embedding, layers: layers, finalNorm: finalNorm,
                            lmHead: lmHead)
    }
}

/// Reads tensors by name into the engine's storage, checking shapes.
final class WeightLoader {
    let directory: ModelDirectory
    let dtype: DType
    private var prefaulted = Set<ObjectIdentifier>()

    init(directory: ModelDirectory, dtype: DType) {
        self.directory = directory
        self.dtype = dtype
    }

    /// Touches a mapped file once, the first time a weight is used straight from it.
    private func prefault(_ file: MappedFile) {
        if prefaulted.insert(ObjectIdentifier(file)).inserted { file.prefault() }
    }

    func vector(_ name: String, count: Int) throws -> FloatBuffer {
        let t = try directory.tensor(name)
        try t.expectShape([count])
        return try t.floatBuffer()
    }

    func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        let t = try directory.tensor(name)
        try t.expectShape([rows, cols])
        let stored = try t.dtype()
        let aligned = Int(bitPattern: t.data) % 4 == 0
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

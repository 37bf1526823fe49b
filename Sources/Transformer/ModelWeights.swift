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

/// Weights of one decoder layer. Norm weights are f32; projections are stored in the compute dtype. A family with
/// fused projections has `qkv` / `gateUp` instead of their parts (`ModelConfig.projections`).
public struct DecoderLayerWeights: @unchecked Sendable {
    public var inputNorm: FloatBuffer          // [C]
    public var linears: [Projection: Linear]   // q [qDim, C], k/v [kvDim, C], qkv [qDim + 2 kvDim, C], o [C, qDim], ...
    public var qNorm: FloatBuffer?             // [headDim] (Qwen3)
    public var kNorm: FloatBuffer?             // [headDim] (Qwen3)
    public var postAttentionNorm: FloatBuffer  // [C] the MLP's input norm
    public var attentionOutputNorm: FloatBuffer?  // [C] (sandwich norms)
    public var mlpOutputNorm: FloatBuffer?        // [C] (sandwich norms)
    /// The mixture that replaces gate/up/down in a sparse layer.
    public var moe: MoEWeights?

    public init(inputNorm: FloatBuffer, linears: [Projection: Linear], qNorm: FloatBuffer?, kNorm: FloatBuffer?,
                postAttentionNorm: FloatBuffer, attentionOutputNorm: FloatBuffer? = nil, mlpOutputNorm: FloatBuffer? = nil) {
        self.inputNorm = inputNorm
        self.linears = linears
        (self.qNorm, self.kNorm) = (qNorm, kNorm)
        self.postAttentionNorm = postAttentionNorm
        (self.attentionOutputNorm, self.mlpOutputNorm) = (attentionOutputNorm, mlpOutputNorm)
    }

    public init(inputNorm: FloatBuffer, q: Linear, k: Linear, v: Linear, o: Linear, qNorm: FloatBuffer?,
                kNorm: FloatBuffer?, postAttentionNorm: FloatBuffer, gate: Linear, up: Linear, down: Linear) {
        self.init(inputNorm: inputNorm, linears: [.q: q, .k: k, .v: v, .o: o, .gate: gate, .up: up, .down: down],
                  qNorm: qNorm, kNorm: kNorm, postAttentionNorm: postAttentionNorm)
    }

    /// The projection `p` (which the model's config lists).
    public func linear(_ p: Projection) -> Linear {
        guard let l = linears[p] else { preconditionFailure("this layer has no \(p.rawValue)") }
        return l
    }

    public mutating func setLinear(_ p: Projection, _ value: Linear) { linears[p] = value }
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
            for lin in l.linears.values {
                total += lin.weight.byteCount + (lin.bias?.count ?? 0) * 4
            }
            total += (l.inputNorm.count + l.postAttentionNorm.count + (l.qNorm?.count ?? 0) + (l.kNorm?.count ?? 0)
                      + (l.attentionOutputNorm?.count ?? 0) + (l.mlpOutputNorm?.count ?? 0)) * 4
            total += l.moe?.byteCount ?? 0
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
        case .attentionOutputNorm(let l): return layers[l].attentionOutputNorm.map { .vector($0) }
        case .mlpOutputNorm(let l): return layers[l].mlpOutputNorm.map { .vector($0) }
        case .weight(let s): return .matrix(layers[s.layer].linear(s.projection).weight)
        case .bias(let s): return layers[s.layer].linear(s.projection).bias.map { .vector($0) }
        }
    }

    /// Replaces a tensor's storage (full / freeze fine-tuning points trainable tensors into its parameter buffer).
    /// Replacing the embedding of a tied model replaces the LM head with it.
    /// Replaces layer `l`'s mixture-of-experts weights (pruned experts).
    public func replaceMixture(layer l: Int, with moe: MoEWeights) {
        precondition(layers[l].moe != nil, "layer \(l) has no experts")
        layers[l].moe = moe
    }

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
        case (.attentionOutputNorm(let l), .vector(let v)): layers[l].attentionOutputNorm = v
        case (.mlpOutputNorm(let l), .vector(let v)): layers[l].mlpOutputNorm = v
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
            tensors += config.projections(layer: l).map { .weight(ProjectionSite(layer: l, projection: $0)) }
        }
        func quantized(_ m: WeightMatrix) -> WeightMatrix {
            guard let format = type.format(forColumns: m.cols), let q = m.quantized(format) else { return m }
            return q
        }
        for t in tensors {
            guard case .matrix(let m)? = storage(t) else { continue }
            let q = quantized(m)
            replace(t, with: .matrix(q))
            bytes += q.byteCount
        }
        // Experts (the router and the shared gate are tiny and stay as they are).
        for l in layers.indices {
            guard var moe = layers[l].moe else { continue }
            func each(_ w: ExpertWeights) -> ExpertWeights {
                ExpertWeights(gate: Linear(weight: quantized(w.gate.weight), bias: w.gate.bias),
                              up: Linear(weight: quantized(w.up.weight), bias: w.up.bias),
                              down: Linear(weight: quantized(w.down.weight), bias: w.down.bias))
            }
            moe.experts = moe.experts.map(each)
            moe.shared = moe.shared.map(each)
            layers[l].moe = moe
            bytes += moe.byteCount
        }
        return bytes
    }

    /// The block format of the projections (nil when they are f32 or bf16).
    public var quantType: QuantType? { layers.first?.linear(.o).weight.quantType }
}

extension ModelWeights {
    /// Loads weights from a Hugging Face directory, storing large matrices as `dtype` (`float32` or `bfloat16`).
    /// Tensors already stored in that dtype are used straight from the memory mapping (no copy).
    public static func load(directory: ModelDirectory, config: ModelConfig, dtype: DType,
                            quantize: QuantType? = nil) throws -> ModelWeights {
        guard dtype != .float16 else { throw TransformerError.input(reason: "compute dtype float16 is not supported; use float32 or bfloat16") }
        let c = config.hiddenSize, names = config.layout
        let loader = WeightLoader(directory: directory, dtype: dtype, quantize: quantize,
                                  gptq: try GPTQConfig(configData: directory.configData, path: directory.url.appendingPathComponent("config.json").path))
        let embedding = try loader.matrix(names.embedding, rows: config.vocabSize, cols: c)
        var layers: [DecoderLayerWeights] = []
        for l in 0..<config.layerCount {
            var linears: [Projection: Linear] = [:]
            for p in config.projections(layer: l) {
                let site = ProjectionSite(layer: l, projection: p), (inp, out) = config.features(p)
                linears[p] = Linear(weight: try loader.matrix(names.name(.weight(site)), rows: out, cols: inp),
                                    bias: config.hasBias(p) ? try loader.vector(names.name(.bias(site)), count: out) : nil)
            }
            func norm(_ t: BaseTensor, _ count: Int) throws -> FloatBuffer {
                try loader.vector(names.name(t), count: count, offset: config.normOffset)
            }
            layers.append(DecoderLayerWeights(
                inputNorm: try norm(.inputNorm(l), c), linears: linears,
                qNorm: config.qkNorm ? try norm(.qNorm(l), config.qNormWidth) : nil,
                kNorm: config.qkNorm ? try norm(.kNorm(l), config.kNormWidth) : nil,
                postAttentionNorm: try norm(.postAttentionNorm(l), c),
                attentionOutputNorm: config.sandwichNorms ? try norm(.attentionOutputNorm(l), c) : nil,
                mlpOutputNorm: config.sandwichNorms ? try norm(.mlpOutputNorm(l), c) : nil))
            if config.isSparse(layer: l), let moe = config.moe {
                func expert(_ name: (Projection) -> String, width: Int) throws -> ExpertWeights {
                    ExpertWeights(gate: Linear(weight: try loader.matrix(name(.gate), rows: width, cols: c), bias: nil),
                                  up: Linear(weight: try loader.matrix(name(.up), rows: width, cols: c), bias: nil),
                                  down: Linear(weight: try loader.matrix(name(.down), rows: c, cols: width), bias: nil))
                }
                let experts = try (0..<moe.experts).map { e in
                    try expert({ names.expert(layer: l, e, $0) }, width: moe.intermediateSize)
                }
                let shared = try moe.sharedIntermediateSize.map { try expert({ names.sharedExpert(layer: l, $0) }, width: $0) }
                layers[l].moe = MoEWeights(
                    router: try loader.matrix(names.router(layer: l), rows: moe.experts, cols: c, quantizable: false),
                    experts: experts, shared: shared,
                    sharedGate: shared == nil ? nil : try loader.matrix(names.sharedExpertGate(layer: l), rows: 1, cols: c,
                                                                        quantizable: false))
            }
        }
        let finalNorm = try loader.vector(names.finalNorm, count: c, offset: config.normOffset)
        var lmHead: WeightMatrix
        if config.tieWordEmbeddings {
            lmHead = embedding
        } else if directory.contains(names.lmHead) {
            lmHead = try loader.matrix(names.lmHead, rows: config.vocabSize, cols: c)
        } else {
            throw TransformerError.weights(reason: "\(directory.url.path): '\(names.lmHead)' is missing and config.json has tie_word_embeddings false")
        }
        if config.normHead { lmHead = lmHead.rowNormalized() }
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

    /// A vector as f32, plus `offset` (Gemma stores its norm weights as w - 1).
    func vector(_ name: String, count: Int, offset: Float = 0) throws -> FloatBuffer {
        let t = try directory.tensor(name)
        try t.expectShape([count])
        let values = try t.floatBuffer()
        if offset != 0 { for i in 0..<count { values[i] += offset } }
        return values
    }

    /// `quantizable: false` keeps a matrix in the compute dtype under `quantize` (routers, as llama.cpp keeps them).
    func matrix(_ name: String, rows: Int, cols: Int, quantizable: Bool = true) throws -> WeightMatrix {
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
        let format = quantizable ? quantize.flatMap { $0.format(forColumns: cols) } : nil
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

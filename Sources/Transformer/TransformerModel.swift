import Foundation
import Kernels
import ModelIO

/// A decoder-only transformer (every family `ModelConfig` reads) over frozen weights, with an optional
/// fine-tuning method attached at its hook points (input embeddings, attention prefixes, projections).
///
/// ```swift
/// let model = try TransformerModel.load(directory: url, dtype: .float32)
/// let logits = model.logits(PackedBatch(sequences: [ids]))   // [N, V]
/// ```
public final class TransformerModel: @unchecked Sendable {
    public let config: ModelConfig
    public let weights: ModelWeights
    /// The fine-tuning method attached at the hook points (see `ModelAdapter`); nil for the bare model.
    public var adapter: ModelAdapter?
    /// Sees the experts' inputs of mixture-of-experts layers (pruning statistics); nil in normal work.
    public var expertObserver: ExpertObserver?
    /// The rotary embedding of full-attention layers (and all layers unless `localRope` is set).
    let rope: RoPE
    /// Gemma 3's sliding-window layers rotate with their own base.
    let localRope: RoPE?
    /// One attention per layer (windows can differ between layers).
    let attention: [Attention]

    public init(weights: ModelWeights) {
        config = weights.config
        self.weights = weights
        rope = RoPE(config: weights.config)
        localRope = weights.config.localRope.map { RoPE(config: weights.config, settings: $0) }
        attention = (0..<weights.config.layerCount).map { Attention(config: weights.config, layer: $0) }
    }

    /// Loads config.json and the safetensors weights of a Hugging Face model directory.
    /// - Parameter quantize: store the frozen matrices in this block format, converting each tensor as it is read
    ///   (the source pages are released, so peak memory stays near the quantized size).
    public static func load(directory url: URL, dtype: DType, quantize: QuantType? = nil) throws -> TransformerModel {
        let dir = try ModelDirectory(url: url)
        let config = try ModelConfig(json: dir.configData, path: url.appendingPathComponent("config.json").path)
        return TransformerModel(weights: try ModelWeights.load(directory: dir, config: config, dtype: dtype, quantize: quantize))
    }

    public var dtype: DType { weights.dtype }

    /// The rotary embedding layer `l` uses.
    func rope(layer l: Int) -> RoPE {
        if let localRope, config.attentionWindow(layer: l) != nil { return localRope }
        return rope
    }

    /// Makes every rotary table cover positions [0, count).
    func reserveRotary(_ count: Int) {
        rope.reserve(count)
        localRope?.reserve(count)
    }

    /// The gated MLP's activation: out = act(gate) * up.
    func activate(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
        switch config.activation {
        case .silu: Ops.swigluForward(gate: gate, up: up, out: out, count: count)
        case .geluTanh: Ops.gegluForward(gate: gate, up: up, out: out, count: count)
        }
    }

    /// Logits [rows, V] of the final-normed rows (Gemma 2 soft-caps them).
    func headLogits(_ normed: UnsafePointer<Float>, rows: Int, into out: UnsafeMutablePointer<Float>, exact: Bool = true) {
        weights.lmHead.forward(normed, rows: rows, into: out, exact: exact)
        if let cap = config.finalSoftcap { Ops.softcap(out, count: rows * config.vocabSize, cap: cap) }
    }

    // MARK: - Hook point 3: the projection choke point

    /// out[rows, outFeatures] = x[rows, inFeatures] · W^T + b, or what the adapter computes at this site.
    /// - Parameter adapter: the method to project with (the model's own by default; a decoding session's own).
    func project(_ p: Projection, layer: Int, x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>,
                 context: PassContext, adapter: ModelAdapter?? = .none) {
        let lin = weights.layers[layer].linear(p)
        let site = ProjectionSite(layer: layer, projection: p)
        if let a = adapter ?? self.adapter, a.attaches(to: site) {
            a.project(site: site, linear: lin, x: x, rows: rows, out: out, context: context)
        } else {
            lin.forward(x, rows: rows, into: out, exact: context.exact)
        }
    }

    /// The backward of `project`: dx (+)= d(loss)/dx; adapter parameter gradients accumulate. With `dx == nil` only
    /// the adapter's parameter gradients are computed.
    func projectBackward(_ p: Projection, layer: Int, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows: Int,
                         dx: UnsafeMutablePointer<Float>?, accumulate: Bool, context: PassContext) {
        let lin = weights.layers[layer].linear(p)
        let site = ProjectionSite(layer: layer, projection: p)
        if let a = adapter, a.attaches(to: site) {
            a.projectBackward(site: site, linear: lin, x: x, dy: dy, rows: rows, dx: dx, accumulate: accumulate,
                              context: context)
        } else if let dx {
            lin.backwardInput(dy, rows: rows, into: dx, accumulate: accumulate)
        }
        // Full / freeze fine-tuning: dW[out, in] += dy^T x ; db[out] += sum_rows dy.
        if let gw = adapter?.baseGradient(.weight(site)) {
            Gemm.multiply(m: lin.outFeatures, n: lin.inFeatures, k: rows, a: dy, lda: lin.outFeatures, transposeA: true,
                          b: x, ldb: lin.inFeatures, c: gw, ldc: lin.inFeatures, accumulate: true)
        }
        if let gb = adapter?.baseGradient(.bias(site)) {
            for r in 0..<rows { Ops.add(dy + r * lin.outFeatures, into: gb, count: lin.outFeatures) }
        }
    }

    // MARK: - Hook point 1: input embeddings

    /// out[N, C] = embedding rows of `tokens`; a negative id -1-j is virtual token j of the adapter.
    /// - Parameter adapter: whose virtual tokens (the model's own by default; a decoding session's own).
    func embed(_ tokens: [Int32], into out: UnsafeMutablePointer<Float>, adapter: ModelAdapter?? = .none) {
        let c = config.hiddenSize
        let emb = weights.embedding
        let adapter = adapter ?? self.adapter
        let virtual = (adapter?.virtualTokenCount ?? 0) > 0 ? adapter?.virtualEmbeddings() : nil
        tokens.withUnsafeBufferPointer { tp in
            let t = tp.baseAddress!
            Parallel.forRanges(tokens.count, minChunk: 64) { r in
                for i in r {
                    if t[i] >= 0 {
                        emb.readRow(Int(t[i]), into: out + i * c)
                    } else if let virtual {
                        (out + i * c).update(from: virtual + Int(-1 - t[i]) * c, count: c)
                    }
                    // Gemma scales every input embedding, prompt-tuning rows included (they enter as embeddings).
                    if let s = config.embeddingScale { for j in 0..<c { out[i * c + j] *= s } }
                }
            }
        }
    }

    /// Rows in front of every sequence's real tokens (virtual tokens and attention prefixes).
    public var leadingRows: Int { adapter?.leadingRows ?? 0 }

    /// The batch the layers run: the adapter's virtual tokens (ids -1...-nv) in front of every sequence, positions
    /// shifted past virtual tokens and prefixes; labels get -100 on virtual rows.
    func prepare(_ batch: PackedBatch, labels: [Int32]?) -> (PackedBatch, [Int32]?) {
        let nv = adapter?.virtualTokenCount ?? 0, np = adapter?.prefixLength ?? 0
        if nv == 0 && np == 0 { return (batch, labels) }
        precondition(!batch.isTree, "tree-packed sequences cannot take an adapter's virtual rows or prefix")
        let virtual = (0..<nv).map { Int32(-1 - $0) }
        var sequences: [[Int32]] = [], newLabels: [Int32] = []
        for (start, length) in zip(batch.starts, batch.lengths) {
            sequences.append(virtual + batch.tokens[start..<(start + length)])
            if let labels { newLabels += [Int32](repeating: -100, count: nv) + labels[start..<(start + length)] }
        }
        return (PackedBatch(sequences: sequences, firstPosition: np), labels == nil ? nil : newLabels)
    }

    /// Activation buffers for packed batches of sequences with the given lengths (one array per batch), sized for
    /// the rows the adapter adds.
    public func makeBuffers(batches: [[Int]], policy: ActivationPolicy) -> ActivationBuffers {
        let (capacity, longest) = plannedRows(batches)
        return ActivationBuffers(config: config, capacity: capacity, longest: longest, policy: policy,
                                 prefixRows: adapter?.prefixLength ?? 0)
    }

    /// Bytes `makeBuffers` would allocate.
    public func activationBytes(batches: [[Int]], policy: ActivationPolicy) -> Int {
        let (capacity, longest) = plannedRows(batches)
        return ActivationBuffers.byteEstimate(config: config, capacity: capacity, longest: longest, policy: policy,
                                              prefixRows: adapter?.prefixLength ?? 0)
    }

    /// (rows of the largest batch, longest sequence), counting the adapter's virtual tokens.
    public func plannedRows(_ batches: [[Int]]) -> (capacity: Int, longest: Int) {
        let nv = adapter?.virtualTokenCount ?? 0
        let capacity = batches.map { $0.reduce(0) { $0 + $1 + nv } }.max() ?? 1
        let longest = (batches.flatMap { $0 }.max() ?? 1) + nv
        return (max(1, capacity), max(1, longest))
    }

    /// Checks ids and lengths before a pass; the error names the offending value.
    public func validate(tokens: [Int32], maxPosition: Int) throws {
        try validate(tokens: tokens, maxPosition: maxPosition, leadingRows: leadingRows)
    }

    /// `validate` for a sequence behind `lead` rows of virtual tokens or prefixes (a session's own adapter).
    public func validate(tokens: [Int32], maxPosition: Int, leadingRows lead: Int) throws {
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw TransformerError.input(reason: "token id \(bad) is outside the vocabulary (size \(config.vocabSize))")
        }
        if maxPosition + lead > config.maxPositionEmbeddings {
            let extra = lead > 0 ? " plus the adapter's \(lead) virtual tokens" : ""
            throw TransformerError.input(reason: "sequence of \(maxPosition) tokens\(extra) is longer than the model's context (max_position_embeddings = \(config.maxPositionEmbeddings))")
        }
    }
}

import Foundation
import Kernels
import ModelIO

/// A decoder-only transformer (Qwen2 / Qwen1.5 / Llama / Mistral / Qwen3) over frozen weights, with a
/// side-car adapter attached at its single projection choke point (`project`).
///
/// ```swift
/// let model = try TransformerModel.load(directory: url, dtype: .float32)
/// let logits = model.logits(PackedBatch(sequences: [ids]))   // [N, V]
/// ```
public final class TransformerModel: @unchecked Sendable {
    public let config: ModelConfig
    public let weights: ModelWeights
    /// The side-car applied at every projection it attaches to (LoRA and friends); nil for the bare model.
    public var adapter: ProjectionAdapter?
    let rope: RoPE
    /// One attention per layer (windows can differ between layers).
    let attention: [Attention]

    public init(weights: ModelWeights) {
        config = weights.config
        self.weights = weights
        rope = RoPE(config: weights.config)
        attention = (0..<weights.config.layerCount).map { Attention(config: weights.config, layer: $0) }
    }

    /// Loads config.json and the safetensors weights of a Hugging Face model directory.
    public static func load(directory url: URL, dtype: DType) throws -> TransformerModel {
        let dir = try ModelDirectory(url: url)
        let config = try ModelConfig(json: dir.configData, path: url.appendingPathComponent("config.json").path)
        return TransformerModel(weights: try ModelWeights.load(directory: dir, config: config, dtype: dtype))
    }

    public var dtype: DType { weights.dtype }

    // MARK: - The projection choke point

    /// out[rows, outFeatures] = x[rows, inFeatures] · W^T + b, plus the adapter's contribution at this site.
    func project(_ p: Projection, layer: Int, x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>,
                 context: PassContext) {
        let lin = weights.layers[layer].linear(p)
        lin.weight.forward(x, rows: rows, into: out)
        if let b = lin.bias { Ops.addBias(b.pointer, to: out, rows: rows, cols: lin.outFeatures) }
        let site = ProjectionSite(layer: layer, projection: p)
        if let a = adapter, a.attaches(to: site) { a.forward(site: site, x: x, rows: rows, y: out, context: context) }
    }

    /// The backward of `project`: dx (+)= dy · W (+ the adapter's input gradient); adapter parameter gradients
    /// accumulate. With `dx == nil` only the adapter's parameter gradients are computed.
    func projectBackward(_ p: Projection, layer: Int, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows: Int,
                         dx: UnsafeMutablePointer<Float>?, accumulate: Bool, context: PassContext) {
        let lin = weights.layers[layer].linear(p)
        if let dx { lin.weight.backwardInput(dy, rows: rows, into: dx, accumulate: accumulate) }
        let site = ProjectionSite(layer: layer, projection: p)
        if let a = adapter, a.attaches(to: site) {
            a.backward(site: site, x: x, dy: dy, rows: rows, dx: dx, context: context)
        }
    }

    /// out[N, C] = embedding rows of `tokens`.
    func embed(_ tokens: [Int32], into out: UnsafeMutablePointer<Float>) {
        let c = config.hiddenSize
        let emb = weights.embedding
        tokens.withUnsafeBufferPointer { tp in
            let t = tp.baseAddress!
            Parallel.forRanges(tokens.count, minChunk: 64) { r in
                for i in r { emb.readRow(Int(t[i]), into: out + i * c) }
            }
        }
    }

    /// Checks ids and lengths before a pass; the error names the offending value.
    public func validate(tokens: [Int32], maxPosition: Int) throws {
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw TransformerError.input(reason: "token id \(bad) is outside the vocabulary (size \(config.vocabSize))")
        }
        if maxPosition > config.maxPositionEmbeddings {
            throw TransformerError.input(reason: "sequence of \(maxPosition) tokens is longer than the model's context (max_position_embeddings = \(config.maxPositionEmbeddings))")
        }
    }
}

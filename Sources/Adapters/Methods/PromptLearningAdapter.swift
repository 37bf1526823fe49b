import Foundation
import Kernels
import ModelIO
import Transformer

/// Prompt tuning, P-tuning and prefix tuning: a table of `nv` learned rows, produced by an encoder from a trainable
/// embedding, and attached either in front of the input embeddings (prompt, P-tuning: rows of width C) or in
/// front of every layer's keys and values (prefix: rows of width L * 2 * kvDim, layer l's keys at 2l * kvDim and
/// values at (2l + 1) * kvDim, as PEFT lays out its past key values).
///
/// Encoders, as in PEFT: none (the table is the embedding), P-tuning's MLP (Linear-ReLU-Linear-ReLU-Linear) and
/// prefix tuning's projection (Linear-Tanh-Linear). The table is computed once per parameter change, never per
/// micro-batch; gradients gathered at the hooks go through the encoder once per optimiser step.
public final class PromptLearningAdapter: TrainableAdapter, @unchecked Sendable {
    /// One dense layer of the encoder: weight [out, in] at `weight`, bias [out] at `bias` in the flat buffers.
    struct Layer {
        enum Activation { case none, relu, tanh }
        let inFeatures: Int
        let outFeatures: Int
        let weight: Int
        let bias: Int
        let activation: Activation
        let name: String
    }

    public let config: PromptLearningConfig
    public let model: ModelConfig
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    /// Width of the table's rows and of the embedding.
    public let width: Int
    let embeddingWidth: Int
    let layers: [Layer]
    /// P-tuning's LSTM in front of the dense layers (encoder type LSTM).
    let lstm: PromptLSTM?
    let embeddingName: String
    /// Activations of the encoder: acts[0] is the embedding, acts[k + 1] the output of layer k; the last is the table.
    private var activations: [FloatBuffer]
    private let tableGradient: FloatBuffer   // [nv, width]

    public var method: AdapterMethod { config.method }
    public var virtualTokens: Int { config.virtualTokens }
    /// True when the table comes straight from a saved adapter (no encoder to train), as PEFT's inference mode.
    public let fromSavedTable: Bool

    /// - Parameter savedTable: build the inference form (no encoder) whose table is trained directly.
    public init(config: PromptLearningConfig, model: ModelConfig, savedTable: Bool = false) throws {
        try config.validate(model: model)
        self.config = config
        self.model = model
        fromSavedTable = savedTable
        let nv = config.virtualTokens
        width = config.width(model)
        let hidden = config.encoderHiddenSize ?? config.tokenDim(model)
        var offset = 0
        var list: [Layer] = []
        var lstm: PromptLSTM? = nil
        func dense(_ i: Int, _ o: Int, _ act: Layer.Activation, _ name: String) {
            list.append(Layer(inFeatures: i, outFeatures: o, weight: offset, bias: offset + o * i, activation: act, name: name))
            offset += o * i + o
        }
        switch (config.method, savedTable) {
        case (.ptuning, false) where config.encoderType == .lstm:
            // nn.LSTM(C, H, 2 layers, bidirectional) then Linear(2H, 2H), ReLU, Linear(2H, C).
            embeddingWidth = width
            offset = nv * embeddingWidth
            lstm = PromptLSTM(inputSize: width, hidden: hidden, layers: 2, steps: nv, offset: &offset)
            dense(2 * hidden, 2 * hidden, .relu, "prompt_encoder.mlp_head.0")
            dense(2 * hidden, width, .none, "prompt_encoder.mlp_head.2")
        case (.ptuning, false):
            embeddingWidth = width
            offset = nv * embeddingWidth
            dense(width, hidden, .relu, "prompt_encoder.mlp_head.0")
            dense(hidden, hidden, .relu, "prompt_encoder.mlp_head.2")
            dense(hidden, width, .none, "prompt_encoder.mlp_head.4")
        case (.prefix, false) where config.prefixProjection:
            embeddingWidth = config.tokenDim(model)
            offset = nv * embeddingWidth
            dense(embeddingWidth, hidden, .tanh, "prompt_encoder.transform.0")
            dense(hidden, width, .none, "prompt_encoder.transform.2")
        default:
            embeddingWidth = width
            offset = nv * embeddingWidth
        }
        layers = list
        self.lstm = lstm
        embeddingName = "prompt_encoder.embedding.weight"
        parameters = FloatBuffer(count: offset)
        gradients = FloatBuffer(count: offset)
        activations = [FloatBuffer(count: 0)] + list.map { FloatBuffer(count: nv * $0.outFeatures) }
        tableGradient = FloatBuffer(count: nv * width)
        parametersDidChange()
    }

    /// PEFT's initialisation: embeddings ~ N(0, 1) (or, for prompt tuning from text, the model's embeddings of
    /// `textIDs` repeated to fill the prompt); Linear layers ~ U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    public func initialize(seed: UInt64, textIDs: [Int32]? = nil, embedding: WeightMatrix? = nil) {
        var rng = SeededGenerator(seed: seed)
        let nv = virtualTokens
        if let textIDs, !textIDs.isEmpty, let embedding {
            for j in 0..<nv { embedding.readRow(Int(textIDs[j % textIDs.count]), into: parameters.pointer + j * embeddingWidth) }
        } else {
            for i in 0..<(nv * embeddingWidth) { parameters[i] = rng.nextNormal() }
        }
        if let lstm {
            let bound = 1 / Float(lstm.hidden).squareRoot()
            for p in lstm.named("") { for i in 0..<p.count { parameters[p.offset + i] = (rng.nextUniform() * 2 - 1) * bound } }
        }
        for l in layers {
            let bound = 1 / Float(l.inFeatures).squareRoot()
            for i in 0..<(l.outFeatures * l.inFeatures + l.outFeatures) {
                parameters[l.weight + i] = (rng.nextUniform() * 2 - 1) * bound
            }
        }
        parametersDidChange()
    }

    static func load(config: PromptLearningConfig, file: SafetensorsFile, url: URL, model: ModelConfig) throws -> PromptLearningAdapter {
        let object = (try? AdapterFiles.readConfig(url)) ?? [:]
        var problems = PromptLearningConfig.modelProblems(object, method: config.method, model: model)
        if !problems.isEmpty {
            throw AdapterError.mismatches(path: url.path, problems: problems.map { "adapter_config.json: \($0) (the adapter was made for another model)" })
        }
        let adapter = try PromptLearningAdapter(config: config, model: model, savedTable: true)
        let shape = [config.virtualTokens, adapter.width]
        AdapterFiles.copy("prompt_embeddings", key: "prompt_embeddings", shape: shape, from: AdapterFiles.index(file),
                          into: adapter.parameters.pointer, problems: &problems)
        for key in file.tensors.keys.sorted() where key != "prompt_embeddings" { problems.append("unexpected tensor \(key)") }
        if !problems.isEmpty { throw AdapterError.mismatches(path: url.path, problems: problems) }
        adapter.parametersDidChange()
        return adapter
    }

    // MARK: The encoder

    /// The learned rows [nv, width].
    var table: UnsafeMutablePointer<Float> { layers.isEmpty ? parameters.pointer : activations[layers.count].pointer }

    public func parametersDidChange() {
        let nv = virtualTokens
        var input = UnsafePointer(parameters.pointer)
        if let lstm {
            lstm.forward(input, parameters: parameters.pointer)
            input = UnsafePointer(lstm.output.pointer)
        }
        for (k, l) in layers.enumerated() {
            let out = activations[k + 1].pointer
            Gemm.multiply(m: nv, n: l.outFeatures, k: l.inFeatures, a: input, lda: l.inFeatures,
                          b: parameters.pointer + l.weight, ldb: l.inFeatures, transposeB: true, c: out, ldc: l.outFeatures)
            Ops.addBias(parameters.pointer + l.bias, to: out, rows: nv, cols: l.outFeatures)
            for i in 0..<(nv * l.outFeatures) {
                switch l.activation {
                case .none: break
                case .relu: out[i] = max(0, out[i])
                case .tanh: out[i] = Foundation.tanh(out[i])
                }
            }
            input = UnsafePointer(out)
        }
    }

    public func zeroGradients() {
        gradients.zero()
        tableGradient.zero()
    }

    /// Backpropagates the table's gradient through the encoder into the parameter gradients.
    public func finishGradients() {
        let nv = virtualTokens
        var upstream = tableGradient.pointer
        var temp: [FloatBuffer] = []
        for k in stride(from: layers.count - 1, through: 0, by: -1) {
            let l = layers[k]
            let post = activations[k + 1].pointer
            let input: UnsafePointer<Float> = k > 0 ? UnsafePointer(activations[k].pointer)
                : lstm.map { UnsafePointer($0.output.pointer) } ?? UnsafePointer(parameters.pointer)
            // d(pre-activation)
            let dpre = FloatBuffer(count: nv * l.outFeatures)
            for i in 0..<(nv * l.outFeatures) {
                switch l.activation {
                case .none: dpre[i] = upstream[i]
                case .relu: dpre[i] = post[i] > 0 ? upstream[i] : 0
                case .tanh: dpre[i] = upstream[i] * (1 - post[i] * post[i])
                }
            }
            // dW += dpre^T input ; db += sum rows dpre ; dinput = dpre W
            Gemm.multiply(m: l.outFeatures, n: l.inFeatures, k: nv, a: dpre.pointer, lda: l.outFeatures, transposeA: true,
                          b: input, ldb: l.inFeatures, c: gradients.pointer + l.weight, ldc: l.inFeatures, accumulate: true)
            for j in 0..<nv { Ops.add(dpre.pointer + j * l.outFeatures, into: gradients.pointer + l.bias, count: l.outFeatures) }
            let dinput = FloatBuffer(count: nv * l.inFeatures)
            Gemm.multiply(m: nv, n: l.inFeatures, k: l.outFeatures, a: dpre.pointer, lda: l.outFeatures,
                          b: parameters.pointer + l.weight, ldb: l.inFeatures, c: dinput.pointer, ldc: l.inFeatures)
            temp.append(dpre)
            temp.append(dinput)
            upstream = dinput.pointer
        }
        if let lstm {
            let dEmbedding = lstm.backward(upstream, parameters: parameters.pointer, gradients: gradients.pointer)
            temp.append(dEmbedding)
            upstream = dEmbedding.pointer
        }
        Ops.add(upstream, into: gradients.pointer, count: nv * embeddingWidth)
        withExtendedLifetime(temp) {}
    }

    // MARK: TrainableAdapter

    public var namedParameters: [NamedParameter] {
        var list = [NamedParameter(name: embeddingName, shape: [virtualTokens, embeddingWidth], offset: 0)]
        list += lstm?.named("prompt_encoder.lstm_head") ?? []
        for l in layers {
            list.append(NamedParameter(name: l.name + ".weight", shape: [l.outFeatures, l.inFeatures], offset: l.weight))
            list.append(NamedParameter(name: l.name + ".bias", shape: [l.outFeatures], offset: l.bias))
        }
        return list
    }

    public func peftConfig(baseModel: String?) -> [String: Any] { config.object(model: model, baseModel: baseModel) }

    /// PEFT saves the encoder's output (`prompt_embeddings` [nv, width]), not the encoder.
    public func savedTensors() -> [(key: String, shape: [Int], values: [Float])] {
        [("prompt_embeddings", [virtualTokens, width], Array(UnsafeBufferPointer(start: table, count: virtualTokens * width)))]
    }

    public var summary: String {
        var s = "\(method.title) with \(virtualTokens) virtual tokens"
        if let lstm { s += " (LSTM encoder, hidden \(lstm.hidden))" }
        else if !layers.isEmpty { s += " (\(config.method == .ptuning ? "MLP" : "projection") encoder, hidden \(layers[0].outFeatures))" }
        return s
    }

    public func reserve(rows: Int) {}

    // MARK: ModelAdapter

    public var virtualTokenCount: Int { method == .prefix ? 0 : virtualTokens }
    public func virtualEmbeddings() -> UnsafePointer<Float> { UnsafePointer(table) }
    public func accumulateVirtualGradient(_ grad: UnsafePointer<Float>) {
        Ops.add(grad, into: tableGradient.pointer, count: virtualTokens * width)
    }

    public var prefixLength: Int { method == .prefix ? virtualTokens : 0 }
    public func prefix(layer: Int) -> (keys: UnsafePointer<Float>, values: UnsafePointer<Float>, stride: Int) {
        let kv = model.kvDim
        return (UnsafePointer(table + 2 * layer * kv), UnsafePointer(table + (2 * layer + 1) * kv), width)
    }
    public func accumulatePrefixGradient(layer: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>) {
        let kv = model.kvDim
        for j in 0..<virtualTokens {
            Ops.add(keys + j * kv, into: tableGradient.pointer + j * width + 2 * layer * kv, count: kv)
            Ops.add(values + j * kv, into: tableGradient.pointer + j * width + (2 * layer + 1) * kv, count: kv)
        }
    }

    public var lowestTrainableLayer: Int? { 0 }
}

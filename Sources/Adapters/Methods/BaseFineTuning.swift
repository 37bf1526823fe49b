import Foundation
import Kernels
import ModelIO
import Transformer

/// LLaMA-Factory's freeze (partial) fine-tuning settings: which base tensors train.
public struct FreezeConfig: Sendable, Equatable {
    /// The last N layers train; a negative N means the first -N.
    public var trainableLayers: Int = 2
    /// Within those layers: `all`, `mlp`, `self_attn`, `input_layernorm`, `post_attention_layernorm`, projection
    /// names (`q_proj`, ...) or any part of the family's own module names (`c_attn`, `attention`, `ln_1`, ...).
    public var trainableModules: [String] = ["all"]
    /// Outside the layers: any of `embed_tokens`, `norm` (the final norm), `lm_head`.
    public var extraModules: [String] = []

    public init(trainableLayers: Int = 2, trainableModules: [String] = ["all"], extraModules: [String] = []) {
        self.trainableLayers = trainableLayers
        self.trainableModules = trainableModules
        self.extraModules = extraModules
    }

    /// The module words a model with config `c` accepts.
    public static func moduleNames(_ c: ModelConfig) -> [String] {
        var words = Set(["all"]), ordered: [String] = ["all"]
        for t in BaseTensor.all(c) {
            for w in c.layout.selectors(t).sorted() where words.insert(w).inserted { ordered.append(w) }
        }
        return ordered
    }
    public static let extraNames = ["embed_tokens", "norm", "lm_head"]

    /// The tensors these settings make trainable in a model with config `c`; every bad setting is an error.
    public func tensors(_ c: ModelConfig) throws -> [BaseTensor] {
        let n = trainableLayers
        guard n != 0, abs(n) <= c.layerCount else {
            throw AdapterError.config(path: "--freeze-trainable-layers", reason: "\(n) is outside the model's \(c.layerCount) layers (use 1...\(c.layerCount), or -1...-\(c.layerCount) for the first layers)")
        }
        let known = Self.moduleNames(c)
        if let bad = trainableModules.first(where: { !known.contains($0) }) {
            throw AdapterError.config(path: "--freeze-trainable-modules", reason: "unknown module '\(bad)'; choose from \(known.joined(separator: ", "))")
        }
        if let bad = extraModules.first(where: { !Self.extraNames.contains($0) }) {
            throw AdapterError.config(path: "--freeze-extra-modules", reason: "unknown module '\(bad)'; choose from \(Self.extraNames.joined(separator: ", "))")
        }
        let layers = n > 0 ? Array((c.layerCount - n)..<c.layerCount) : Array(0..<(-n))
        if layers.contains(where: c.isSparse), trainableModules.contains(where: { $0 == "all" || $0 == "mlp" }) {
            throw AdapterError.unsupported(path: "--freeze-trainable-modules", reason: "the experts of a mixture-of-experts layer do not train here; choose attention modules (self_attn, q_proj, ...) or use LoRA")
        }
        var list = BaseTensor.all(c).filter { t in
            guard let l = t.layer, layers.contains(l) else { return false }
            let words = c.layout.selectors(t)
            return trainableModules.contains { $0 == "all" || words.contains($0) }
        }
        if extraModules.contains("embed_tokens") || (extraModules.contains("lm_head") && c.tieWordEmbeddings) {
            list.insert(.embedding, at: 0)
        }
        if extraModules.contains("norm") { list.append(.finalNorm) }
        if extraModules.contains("lm_head"), !c.tieWordEmbeddings { list.append(.lmHead) }
        return list
    }
}

/// Full and partial (freeze) fine-tuning: base tensors themselves train. Their values are copied into one flat f32
/// parameter buffer and the model's tensors become views into it, so the optimiser's updates are what the model
/// computes with; the backward adds each trained tensor's gradient into the twin buffer (`baseGradient`). Tied
/// embeddings stay tied (one tensor, gradients of both uses added). The output is a complete model directory.
public final class BaseFineTuning: TrainableAdapter, @unchecked Sendable {
    public struct Entry: Sendable {
        public let tensor: BaseTensor
        /// The tensor's name in the model's checkpoints.
        public let name: String
        public let shape: [Int]
        public let offset: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let method: AdapterMethod
    public let freeze: FreezeConfig?
    public let entries: [Entry]
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    /// The directory of the base model (its layout, config and tokenizer files are copied into the output).
    public let baseDirectory: URL
    private let byTensor: [BaseTensor: Entry]
    private let tied: Bool
    private let normOffset: Float

    /// Makes `tensors` of `model` trainable (all of them for `full`).
    public init(model: TransformerModel, baseDirectory: URL, freeze: FreezeConfig?) throws {
        let c = model.config
        if freeze == nil, c.moe != nil {
            throw AdapterError.unsupported(path: "--method full", reason: "full fine-tuning of mixture-of-experts models is not supported (the experts would stay frozen); use LoRA or freeze with attention modules")
        }
        method = freeze == nil ? .full : .freeze
        self.freeze = freeze
        self.baseDirectory = baseDirectory
        tied = c.tieWordEmbeddings
        normOffset = c.normOffset
        let tensors = try freeze?.tensors(c) ?? BaseTensor.all(c)
        guard !tensors.isEmpty else {
            throw AdapterError.config(path: "--freeze-trainable-modules", reason: "these settings make no tensor of the model trainable")
        }
        var list: [Entry] = [], offset = 0
        for t in tensors {
            guard let storage = model.weights.storage(t) else { continue }
            let shape: [Int]
            switch storage {
            case .matrix(let m): shape = [m.rows, m.cols]
            case .vector(let v): shape = [v.count]
            }
            list.append(Entry(tensor: t, name: c.layout.name(t), shape: shape, offset: offset))
            offset += shape.reduce(1, *)
        }
        entries = list
        byTensor = Dictionary(uniqueKeysWithValues: list.map { ($0.tensor, $0) })
        parameters = FloatBuffer(count: offset)
        // Copy the current values in, then point the model's tensors at them.
        for e in list {
            let dst = parameters.pointer + e.offset
            switch model.weights.storage(e.tensor)! {
            case .matrix(let m):
                for r in 0..<m.rows { m.readRow(r, into: dst + r * m.cols) }
                model.weights.replace(e.tensor, with: .matrix(WeightMatrix(rows: m.rows, cols: m.cols,
                                                                           storage: .float32(UnsafePointer(dst)), owner: parameters)))
            case .vector(let v):
                dst.update(from: v.pointer, count: v.count)
                model.weights.replace(e.tensor, with: .vector(FloatBuffer(viewing: dst, count: v.count, owner: parameters)))
            }
        }
        // Allocated only now: the replaced tensors (a memory mapping or converted copies) are gone, so the peak is
        // parameters + gradients rather than that plus the original weights.
        gradients = FloatBuffer(count: offset)
    }

    // MARK: ModelAdapter

    public func baseGradient(_ tensor: BaseTensor) -> UnsafeMutablePointer<Float>? {
        let t: BaseTensor = tensor == .lmHead && tied ? .embedding : tensor
        return byTensor[t].map { gradients.pointer + $0.offset }
    }

    public var lowestTrainableLayer: Int? {
        if byTensor[.embedding] != nil { return 0 }
        return entries.compactMap(\.tensor.layer).min()
    }

    // MARK: TrainableAdapter

    public var namedParameters: [NamedParameter] {
        entries.map { NamedParameter(name: $0.name, shape: $0.shape, offset: $0.offset) }
    }

    public func peftConfig(baseModel: String?) -> [String: Any] {
        var c: [String: Any] = ["peft_type": method == .full ? "FULL" : "FREEZE", "task_type": "CAUSAL_LM",
                                "trainable_tensors": entries.count,
                                "base_model_name_or_path": baseModel.map { $0 as Any } ?? NSNull()]
        if let f = freeze {
            c["freeze_trainable_layers"] = f.trainableLayers
            c["freeze_trainable_modules"] = f.trainableModules
            c["freeze_extra_modules"] = f.extraModules
        }
        return c
    }

    /// Not a PEFT adapter: the output is a model directory (`writeOutput`).
    public func savedTensors() -> [(key: String, shape: [Int], values: [Float])] { [] }

    public var summary: String {
        if let f = freeze {
            let which = f.trainableLayers > 0 ? "last \(f.trainableLayers)" : "first \(-f.trainableLayers)"
            let extra = f.extraModules.isEmpty ? "" : " + \(f.extraModules.joined(separator: ", "))"
            return "freeze fine-tuning: \(f.trainableModules.joined(separator: ",")) of the \(which) layer\(abs(f.trainableLayers) == 1 ? "" : "s")\(extra) (\(entries.count) tensors)"
        }
        return "full fine-tuning of all \(entries.count) tensors\(tied ? " (tied embeddings kept tied)" : "")"
    }

    public func reserve(rows: Int) {}

    public var mergedTensorNames: [String] { entries.map(\.name) }
    public var mergeOverwrites: Bool { true }

    /// The trained values of `name`.
    public func merge(tensor name: String, values: UnsafeMutablePointer<Float>, shape: [Int]) -> Bool {
        guard let e = entries.first(where: { $0.name == name }), e.count == shape.reduce(1, *) else { return false }
        values.update(from: parameters.pointer + e.offset, count: e.count)
        // Norms are held as offset + w (Gemma); the checkpoint stores w.
        if e.tensor.isNorm, normOffset != 0 { for i in 0..<e.count { values[i] -= normOffset } }
        return true
    }

    /// Writes the trained model as a Hugging Face directory into `url` (config, tokenizer and generation files
    /// copied; safetensors in the base's dtype and shard layout), next to whatever else the run keeps there.
    public func writeOutput(to url: URL, baseModel: String?) throws {
        try AdapterMerger.writeModel(from: baseDirectory, adapter: self, into: url)
    }
}

import Foundation
import Kernels
import ModelIO
import Transformer

/// The fine-tuning methods `peft` trains and loads, named as on the command line.
public enum AdapterMethod: String, CaseIterable, Sendable, Codable {
    case lora, dora, ia3, prompt, ptuning, prefix, adapter, full, freeze

    /// PEFT's `peft_type` (DoRA is LORA with `use_dora`).
    public var peftType: String {
        switch self {
        case .lora, .dora: "LORA"
        case .ia3: "IA3"
        case .prompt: "PROMPT_TUNING"
        case .ptuning: "P_TUNING"
        case .prefix: "PREFIX_TUNING"
        case .adapter: "BOTTLENECK"
        case .full: "FULL"
        case .freeze: "FREEZE"
        }
    }

    /// True for the methods whose result is a PEFT adapter folder (full and freeze write a whole model).
    public var savesAdapter: Bool { self != .full && self != .freeze }

    public var title: String {
        switch self {
        case .lora: "LoRA"
        case .dora: "DoRA"
        case .ia3: "(IA)³"
        case .prompt: "prompt tuning"
        case .ptuning: "P-tuning"
        case .prefix: "prefix tuning (P-tuning v2)"
        case .adapter: "bottleneck adapters"
        case .full: "full fine-tuning"
        case .freeze: "freeze (partial) fine-tuning"
        }
    }

    /// Whether the method's update can be folded into the base weights.
    public var canMerge: Bool { [.lora, .dora, .ia3].contains(self) }

    /// Why `merge` refuses the method (nil when it can merge).
    public var mergeRefusal: String? {
        switch self {
        case .lora, .dora, .ia3: nil
        case .prompt, .ptuning, .prefix:
            "a \(title) adapter adds virtual tokens or attention prefixes and has no weights to fold into the model; use it with --adapter instead (merge takes lora, dora and ia3)"
        case .adapter:
            "bottleneck adapters are non-linear modules beside the layers and have nothing to fold into the weights; use them with --adapter instead (merge takes lora, dora and ia3)"
        case .full, .freeze: "a \(title) run already wrote a whole model: use its output directory as --model"
        }
    }
}

/// One trainable tensor in an adapter's flat buffers, under the name PEFT gives the parameter
/// (`named_parameters()` with the adapter name dropped).
public struct NamedParameter: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public var count: Int { shape.reduce(1, *) }

    public init(name: String, shape: [Int], offset: Int) {
        self.name = name
        self.shape = shape
        self.offset = offset
    }
}

/// What the trainer, the optimiser, checkpoints and the commands see of any method: all trainable values in one
/// flat buffer with a gradient twin, PEFT-format files, and the model hooks (`ModelAdapter`).
public protocol TrainableAdapter: ModelAdapter {
    var method: AdapterMethod { get }
    /// Every trainable value [P] and its gradient [P].
    var parameters: FloatBuffer { get }
    var gradients: FloatBuffer { get }
    /// The trainable tensors by PEFT parameter name, covering `parameters` exactly.
    var namedParameters: [NamedParameter] { get }
    /// adapter_config.json as PEFT 0.21 writes it for this method.
    func peftConfig(baseModel: String?) -> [String: Any]
    /// The tensors of adapter_model.safetensors, under PEFT's keys.
    func savedTensors() -> [(key: String, shape: [Int], values: [Float])]
    /// One line: method, settings and where it attaches.
    var summary: String { get }
    /// Sizes per-pass buffers for passes of up to `rows` rows (before training).
    func reserve(rows: Int)
    /// Recomputes what derives from the parameters (prompt encoder outputs, DoRA weight norms); called after every
    /// optimiser step and after loading.
    func parametersDidChange()
    /// Zeroes every gradient (start of an optimiser step).
    func zeroGradients()
    /// Turns gradients gathered at the hook points into parameter gradients (the prompt encoders' backward); called
    /// once per optimiser step, after the last micro-batch.
    func finishGradients()
    /// Folds the update into a frozen tensor (f32 values of `name`, e.g. `model.layers.0.self_attn.k_proj.weight`);
    /// returns false when this adapter does not touch it.
    func merge(tensor name: String, values: UnsafeMutablePointer<Float>, shape: [Int]) -> Bool
    /// Names of the frozen tensors `merge` changes.
    var mergedTensorNames: [String] { get }
    /// True when `merge` replaces a tensor's values outright (trained base tensors), so the writer need not read the
    /// base's values first.
    var mergeOverwrites: Bool { get }
    /// Writes the run's result into `url`: a PEFT adapter folder, or a whole model for full / freeze fine-tuning.
    func writeOutput(to url: URL, baseModel: String?) throws
}

extension TrainableAdapter {
    public var parameterCount: Int { parameters.count }
    public func zeroGradients() { gradients.zero() }
    public func finishGradients() {}
    public func parametersDidChange() {}
    public func merge(tensor name: String, values: UnsafeMutablePointer<Float>, shape: [Int]) -> Bool { false }
    public var mergedTensorNames: [String] { [] }
    public var mergeOverwrites: Bool { false }
    public func writeOutput(to url: URL, baseModel: String?) throws { try AdapterFiles.save(self, to: url, baseModel: baseModel) }

    /// The settings that decide what the adapter computes: its config without the base model path and mode.
    public var comparableConfig: String {
        var c = peftConfig(baseModel: nil)
        c["base_model_name_or_path"] = nil
        c["inference_mode"] = nil
        let data = (try? JSONSerialization.data(withJSONObject: c, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Copies every named parameter found in `file` (PEFT names, ".default" tolerated) into the flat buffer; every
    /// missing or wrongly shaped tensor is reported at once.
    public func loadTrainableState(_ file: SafetensorsFile, path: String) throws {
        var byName: [String: TensorView] = [:]
        for (key, view) in file.tensors { byName[key.replacingOccurrences(of: ".default", with: "")] = view }
        var problems: [String] = []
        for p in namedParameters {
            guard let view = byName[p.name] else { problems.append("missing \(p.name) (shape \(p.shape))"); continue }
            guard view.elementCount == p.count, view.shape.reduce(1, *) == p.count else {
                problems.append("\(p.name): file has shape \(view.shape), this adapter needs \(p.shape)")
                continue
            }
            guard let dtype = try? view.dtype() else { problems.append("\(p.name): unsupported dtype \(view.dtypeName)"); continue }
            Convert.toFloat(view.data, dtype: dtype, into: parameters.pointer + p.offset, count: p.count)
        }
        if !problems.isEmpty { throw AdapterError.mismatches(path: path, problems: problems) }
        parametersDidChange()
    }

    /// Writes every named parameter (the full training state, encoders included) to one safetensors file.
    public func writeTrainableState(to url: URL) throws {
        // Streamed straight from the flat buffer: no copy of what may be a whole model's weights.
        let params = namedParameters
        let offsets = Dictionary(uniqueKeysWithValues: params.map { ($0.name, $0.offset) })
        try SafetensorsStreamWriter.write(params.map { .init(name: $0.name, dtype: .float32, shape: $0.shape) }, to: url) { entry, out in
            out.copyMemory(from: UnsafeRawBufferPointer(start: parameters.pointer + offsets[entry.name]!, count: entry.byteCount))
        }
    }
}

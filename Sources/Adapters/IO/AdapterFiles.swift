import Foundation
import Kernels
import ModelIO
import Transformer

/// Python PEFT's adapter folder: `adapter_config.json` and `adapter_model.safetensors`, for every method.
///
/// ```swift
/// let adapter = try AdapterFiles.load(from: url, model: model)     // any supported peft_type
/// try AdapterFiles.save(adapter, to: out, baseModel: "Qwen/Qwen1.5-1.8B-Chat")
/// ```
public enum AdapterFiles {
    public static let configFileName = "adapter_config.json"
    public static let weightsFileName = "adapter_model.safetensors"
    /// The peft_type values this engine reads.
    public static let supportedTypes = ["LORA", "IA3", "PROMPT_TUNING", "P_TUNING", "PREFIX_TUNING"]

    /// Writes both files in full under temporary names, then renames them into place one right after the other,
    /// so a failure while writing leaves an earlier adapter untouched.
    public static func save(_ adapter: TrainableAdapter, to url: URL, baseModel: String?) throws {
        var object = adapter.peftConfig(baseModel: baseModel)
        object["inference_mode"] = true
        let configData = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        var writer = SafetensorsWriter()
        for t in adapter.savedTensors() { writer.add(t.key, dtype: .float32, shape: t.shape, floats: t.values) }
        try stage(into: url, files: [(weightsFileName, { try writer.write(to: $0) }), (configFileName, { try configData.write(to: $0) })])
    }

    /// Writes only adapter_config.json (the settings of a full / freeze run, in checkpoints).
    public static func saveConfig(_ adapter: TrainableAdapter, to url: URL, baseModel: String?) throws {
        let object = adapter.peftConfig(baseModel: baseModel)
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try AtomicFile.write(data, to: url.appendingPathComponent(configFileName))
    }

    /// Reads adapter_config.json of a folder as a JSON object.
    public static func readConfig(_ url: URL) throws -> [String: Any] {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw AdapterError.io(path: url.path, reason: "adapter directory not found")
        }
        let configURL = url.appendingPathComponent(configFileName)
        guard let data = try? Data(contentsOf: configURL) else {
            throw AdapterError.io(path: configURL.path, reason: "missing \(configFileName): not a PEFT adapter folder")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw AdapterError.config(path: configURL.path, reason: "not a JSON object")
        }
        return object
    }

    /// The method an adapter folder holds, from its `peft_type` (and `use_dora`).
    public static func method(of url: URL) throws -> AdapterMethod {
        let object = try readConfig(url)
        return try method(object, path: url.appendingPathComponent(configFileName).path)
    }

    static func method(_ object: [String: Any], path: String) throws -> AdapterMethod {
        // AdapterHub (`adapters` library) folders hold a `config` object and no peft_type.
        if object["peft_type"] == nil, object["config"] is [String: Any] { return .adapter }
        let type = (object["peft_type"] as? String) ?? "LORA"
        switch type {
        case "LORA": return (object["use_dora"] as? Bool) == true ? .dora : .lora
        case "IA3": return .ia3
        case "PROMPT_TUNING": return .prompt
        case "P_TUNING": return .ptuning
        case "PREFIX_TUNING": return .prefix
        case "FULL": return .full
        case "FREEZE": return .freeze
        default:
            throw AdapterError.unsupported(path: path, reason: "peft_type \(type) is not supported; this engine loads \(supportedTypes.joined(separator: ", ")) (LoRA also with use_dora)")
        }
    }

    /// Loads any supported PEFT adapter folder for `model`. Every mismatch with the model (missing, unexpected or
    /// wrongly shaped tensors, another model's sizes) is collected and reported in one error.
    public static func load(from url: URL, model: TransformerModel) throws -> TrainableAdapter {
        try load(from: url, model: model.config)
    }

    /// Loads any supported PEFT adapter folder for a model with config `model` (no weights needed).
    public static func load(from url: URL, model: ModelConfig) throws -> TrainableAdapter {
        let object = try readConfig(url)
        let configPath = url.appendingPathComponent(configFileName).path
        let method = try method(object, path: configPath)
        guard method.savesAdapter else {
            throw AdapterError.unsupported(path: url.path, reason: "this is a \(method.title) checkpoint, not an adapter: the trained model is the run's output directory (use it as --model)")
        }
        if method == .adapter { return try loadAdapterHub(from: url, object: object, model: model) }
        let weightsURL = url.appendingPathComponent(weightsFileName)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            let hasBin = FileManager.default.fileExists(atPath: url.appendingPathComponent("adapter_model.bin").path)
            throw AdapterError.io(path: weightsURL.path, reason: hasBin
                ? "only adapter_model.bin (pickle) is present; save the adapter with safe_serialization=True"
                : "missing \(weightsFileName)")
        }
        let file = try SafetensorsFile(path: weightsURL.path)
        let adapter: TrainableAdapter
        switch method {
        case .lora, .dora:
            let data = try Data(contentsOf: url.appendingPathComponent(configFileName))
            adapter = try LoRAAdapter.load(config: LoRAConfig(json: data, path: configPath), file: file, url: url,
                                           model: model)
        case .ia3:
            adapter = try IA3Adapter.load(config: IA3Config(object: object, path: configPath), file: file, url: url,
                                          model: model)
        case .full, .freeze, .adapter:
            preconditionFailure("handled above")
        case .prompt, .ptuning, .prefix:
            adapter = try PromptLearningAdapter.load(config: PromptLearningConfig(object: object, method: method, path: configPath),
                                                     file: file, url: url, model: model)
        }
        adapter.parametersDidChange()
        return adapter
    }

    /// A new adapter in its training form (prompt encoders included) with the settings of `url`'s
    /// adapter_config.json; its parameters are left for the caller to initialise or load.
    public static func makeTrainable(settingsOf url: URL, model: ModelConfig) throws -> TrainableAdapter {
        let object = try readConfig(url)
        let path = url.appendingPathComponent(configFileName).path
        let method = try method(object, path: path)
        switch method {
        case .lora, .dora:
            return try LoRAAdapter(config: LoRAConfig(json: Data(contentsOf: url.appendingPathComponent(configFileName)), path: path),
                                   model: model)
        case .ia3:
            return try IA3Adapter(config: IA3Config(object: object, path: path), model: model)
        case .prompt, .ptuning, .prefix:
            return try PromptLearningAdapter(config: PromptLearningConfig(object: object, method: method, path: path), model: model)
        case .adapter:
            return try BottleneckAdapter(config: BottleneckConfig(object: (object["config"] as? [String: Any]) ?? [:], path: path),
                                         model: model, name: (object["name"] as? String) ?? BottleneckAdapter.defaultName)
        case .full, .freeze:
            throw AdapterError.unsupported(path: url.path, reason: "\(method.title) trains the model itself; build it from a TransformerModel (BaseFineTuning)")
        }
    }

    // MARK: AdapterHub layout

    public static let adapterHubWeightsFileName = "adapter.safetensors"

    /// `adapter_config.json` and `adapter.safetensors` as the `adapters` library's `save_adapter(..., use_safetensors=True)`
    /// writes them, staged and renamed like PEFT folders.
    public static func saveAdapterHub(_ adapter: BottleneckAdapter, to url: URL, baseModel: String?) throws {
        let json = (try? JSONSerialization.data(withJSONObject: adapter.peftConfig(baseModel: baseModel),
                                                options: [.prettyPrinted, .sortedKeys])) ?? Data()
        let configData = floatSpelled(json, keys: ["scaling", "dropout", "stochastic_depth"])
        var writer = SafetensorsWriter()
        for t in adapter.savedTensors() { writer.add(t.key, dtype: .float32, shape: t.shape, floats: t.values) }
        try stage(into: url, files: [(adapterHubWeightsFileName, { try writer.write(to: $0) }),
                                     (configFileName, { try configData.write(to: $0) })])
    }

    /// JSONSerialization writes 1.0 as `1`; the `adapters` library type-checks some fields as floats (`scaling`
    /// must be a float or a string), so whole numbers under `keys` get their `.0` back.
    static func floatSpelled(_ data: Data, keys: [String]) -> Data {
        var text = String(decoding: data, as: UTF8.self)
        for key in keys {
            guard let re = try? NSRegularExpression(pattern: "(\"\(key)\"\\s*:\\s*)(-?\\d+)(\\s*[,\\n}])") else { continue }
            text = re.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "$1$2.0$3")
        }
        return Data(text.utf8)
    }

    static func loadAdapterHub(from url: URL, object: [String: Any], model: ModelConfig) throws -> TrainableAdapter {
        let path = url.appendingPathComponent(configFileName).path
        let weightsURL = url.appendingPathComponent(adapterHubWeightsFileName)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            let hasBin = FileManager.default.fileExists(atPath: url.appendingPathComponent("pytorch_adapter.bin").path)
            throw AdapterError.io(path: weightsURL.path, reason: hasBin
                ? "only pytorch_adapter.bin (pickle) is present; save the adapter with use_safetensors=True"
                : "missing \(adapterHubWeightsFileName)")
        }
        let config = try BottleneckConfig(object: (object["config"] as? [String: Any]) ?? [:], path: path)
        return try BottleneckAdapter.load(config: config, name: (object["name"] as? String) ?? BottleneckAdapter.defaultName,
                                          file: SafetensorsFile(path: weightsURL.path), url: url, model: model, object: object)
    }

    /// Writes each file in full under a staging folder inside `url`, then renames them into place one right after
    /// the other, so a failure while writing leaves an earlier adapter untouched.
    static func stage(into url: URL, files: [(name: String, write: (URL) throws -> Void)]) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: url, withIntermediateDirectories: true)
        let staging = url.appendingPathComponent(".adapter-staging-\(getpid())")
        try? fm.removeItem(at: staging)
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: staging) }
        for f in files { try f.write(staging.appendingPathComponent(f.name)) }
        for f in files {
            guard rename(staging.appendingPathComponent(f.name).path, url.appendingPathComponent(f.name).path) == 0 else {
                throw AdapterError.io(path: url.appendingPathComponent(f.name).path, reason: "cannot write: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Indexes a file's tensors by key with PEFT's variants normalised: the `base_model.model.` prefix and the
    /// adapter name (`.default`) dropped.
    static func index(_ file: SafetensorsFile) -> [String: TensorView] {
        var found: [String: TensorView] = [:]
        for (key, view) in file.tensors {
            var k = key
            if k.hasPrefix("base_model.model.") { k.removeFirst("base_model.model.".count) }
            k = k.replacingOccurrences(of: ".default", with: "")
            found[k] = view
        }
        return found
    }

    /// Copies tensor `name` of `found` into `into` when present with `shape`; otherwise records the problem.
    static func copy(_ name: String, key: String, shape: [Int], from found: [String: TensorView],
                     into: UnsafeMutablePointer<Float>, problems: inout [String]) {
        guard let view = found[name] else { problems.append("missing \(key) (shape \(shape))"); return }
        guard view.shape == shape else {
            problems.append("\(key): file has shape \(view.shape), this model needs \(shape)")
            return
        }
        guard let dtype = try? view.dtype() else { problems.append("\(key): dtype \(view.dtypeName) is not supported"); return }
        Convert.toFloat(view.data, dtype: dtype, into: into, count: view.elementCount)
    }
}

import Foundation

/// A Hugging Face model directory: `config.json` plus `model.safetensors` or shards listed in
/// `model.safetensors.index.json` (or any `*.safetensors` when neither is present). Tensors are found by name
/// across shards; files are memory-mapped on first use.
///
/// ```swift
/// let dir = try ModelDirectory(url: URL(fileURLWithPath: "Qwen2.5-0.5B-Instruct"))
/// let embed = try dir.tensor("model.embed_tokens.weight")
/// ```
public final class ModelDirectory: @unchecked Sendable {
    public let url: URL
    /// The raw bytes of config.json.
    public let configData: Data
    /// Weight file name for every tensor name.
    public let weightMap: [String: String]
    private var files: [String: SafetensorsFile] = [:]
    private let lock = NSLock()

    public init(url: URL) throws {
        self.url = url
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw ModelIOError.notFound(path: url.path, what: "model directory")
        }
        guard isDir.boolValue else {
            throw ModelIOError.unreadable(path: url.path, reason: "expected a model directory (with config.json and *.safetensors), found a file")
        }
        let configURL = url.appendingPathComponent("config.json")
        guard fm.fileExists(atPath: configURL.path) else {
            throw ModelIOError.notFound(path: configURL.path, what: "config.json")
        }
        configData = try Data(contentsOf: configURL)
        let indexURL = url.appendingPathComponent("model.safetensors.index.json")
        let single = url.appendingPathComponent("model.safetensors")
        if fm.fileExists(atPath: indexURL.path) {
            let json = try? JSONSerialization.jsonObject(with: Data(contentsOf: indexURL))
            guard let obj = json as? [String: Any], let map = obj["weight_map"] as? [String: String] else {
                throw ModelIOError.malformed(path: indexURL.path, reason: "expected an object with a \"weight_map\" of tensor name -> file")
            }
            for file in Set(map.values) where !fm.fileExists(atPath: url.appendingPathComponent(file).path) {
                throw ModelIOError.notFound(path: url.appendingPathComponent(file).path, what: "weight shard listed in model.safetensors.index.json")
            }
            weightMap = map
        } else if fm.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(path: single.path)
            files["model.safetensors"] = file
            weightMap = Dictionary(uniqueKeysWithValues: file.tensors.keys.map { ($0, "model.safetensors") })
        } else {
            let names = ((try? fm.contentsOfDirectory(atPath: url.path)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
            guard !names.isEmpty else {
                let hasBin = ((try? fm.contentsOfDirectory(atPath: url.path)) ?? []).contains { $0.hasSuffix(".bin") }
                throw ModelIOError.notFound(path: single.path, what: hasBin
                    ? "safetensors weights (this directory has PyTorch .bin weights only; convert them with `save_pretrained(..., safe_serialization=True)`):"
                    : "model weights (model.safetensors or model.safetensors.index.json)")
            }
            var map: [String: String] = [:]
            for name in names {
                let file = try SafetensorsFile(path: url.appendingPathComponent(name).path)
                files[name] = file
                for key in file.tensors.keys { map[key] = name }
            }
            weightMap = map
        }
    }

    public var tensorNames: [String] { weightMap.keys.sorted() }

    public func contains(_ name: String) -> Bool { weightMap[name] != nil }

    /// The tensor named `name` from whichever shard holds it.
    public func tensor(_ name: String) throws -> TensorView {
        guard let fileName = weightMap[name] else {
            throw ModelIOError.missingTensor(name: name, searched: url.path)
        }
        let file = try self.file(fileName)
        guard let view = file.tensors[name] else {
            throw ModelIOError.missingTensor(name: name, searched: url.appendingPathComponent(fileName).path)
        }
        return view
    }

    private func file(_ name: String) throws -> SafetensorsFile {
        lock.lock(); defer { lock.unlock() }
        if let f = files[name] { return f }
        let f = try SafetensorsFile(path: url.appendingPathComponent(name).path)
        files[name] = f
        return f
    }

    /// Total bytes of the weight files.
    public var weightBytes: Int {
        Set(weightMap.values).reduce(0) { sum, name in
            let attrs = try? FileManager.default.attributesOfItem(atPath: url.appendingPathComponent(name).path)
            return sum + ((attrs?[.size] as? NSNumber)?.intValue ?? 0)
        }
    }

    /// Parsed JSON of an optional file in the directory (nil when absent).
    public func jsonObject(_ fileName: String) throws -> [String: Any]? {
        let u = url.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: u.path) else { return nil }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(contentsOf: u)) as? [String: Any] else {
            throw ModelIOError.malformed(path: u.path, reason: "not a JSON object")
        }
        return obj
    }
}

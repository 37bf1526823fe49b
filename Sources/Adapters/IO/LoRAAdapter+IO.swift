import Foundation
import Kernels
import ModelIO
import Transformer

/// Python PEFT's LoRA layout: keys `base_model.model.<module>.lora_A.weight` [r, in], `...lora_B.weight` [out, r]
/// and, for DoRA, `...lora_magnitude_vector` [out].
extension LoRAAdapter {
    public static let configFileName = AdapterFiles.configFileName
    public static let weightsFileName = AdapterFiles.weightsFileName

    /// The safetensors key PEFT uses for a module's matrix (`lora_A` or `lora_B`).
    public static func key(_ moduleName: String, _ matrix: String) -> String {
        "base_model.model.\(moduleName).\(matrix).weight"
    }

    /// Writes the adapter folder atomically (a failure keeps any earlier adapter intact).
    public func save(to url: URL, baseModel: String?) throws {
        try AdapterFiles.save(self, to: url, baseModel: baseModel)
    }

    /// Loads a PEFT LoRA (or DoRA) adapter folder for a model with `model` config.
    public static func load(from url: URL, model: ModelConfig) throws -> LoRAAdapter {
        let object = try AdapterFiles.readConfig(url)
        let configURL = url.appendingPathComponent(configFileName)
        let method = try AdapterFiles.method(object, path: configURL.path)
        guard method == .lora || method == .dora else {
            throw AdapterError.unsupported(path: configURL.path, reason: "this is a \(method.title) adapter, not LoRA")
        }
        let config = try LoRAConfig(json: Data(contentsOf: configURL), path: configURL.path)
        let weightsURL = url.appendingPathComponent(weightsFileName)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            throw AdapterError.io(path: weightsURL.path, reason: "missing \(weightsFileName)")
        }
        return try load(config: config, file: SafetensorsFile(path: weightsURL.path), url: url, model: model)
    }

    /// Fills a new adapter from an opened adapter_model.safetensors; every mismatch is reported in one error.
    static func load(config: LoRAConfig, file: SafetensorsFile, url: URL, model: ModelConfig) throws -> LoRAAdapter {
        let adapter: LoRAAdapter
        do {
            adapter = try LoRAAdapter(config: config, model: model)
        } catch AdapterError.noTargets(let requested, let available) {
            throw AdapterError.mismatches(path: url.path, problems: ["target_modules \(requested) match no projection (available: \(available.joined(separator: ", ")))"])
        }
        let found = AdapterFiles.index(file)
        var problems: [String] = []
        var used = Set<String>()
        for s in adapter.orderedSites {
            var parts: [(String, [Int], Int)] = [("lora_A.weight", [s.rank, s.inFeatures], s.aOffset),
                                                ("lora_B.weight", [s.outFeatures, s.rank], s.bOffset)]
            if let mo = s.magnitudeOffset { parts.append(("lora_magnitude_vector", [s.outFeatures], mo)) }
            for (suffix, shape, offset) in parts {
                var name = "\(s.moduleName).\(suffix)"
                if found[name] == nil, suffix == "lora_magnitude_vector" { name += ".weight" }
                used.insert(name)
                AdapterFiles.copy(name, key: "base_model.model.\(s.moduleName).\(suffix)", shape: shape, from: found,
                                  into: adapter.parameters.pointer + offset, problems: &problems)
            }
        }
        // The experts' stacked matrices (target_parameters): keys named by their PEFT module path.
        for p in adapter.experts?.namedParameters ?? [] {
            let name = String(p.name.dropFirst("base_model.model.".count))
            used.insert(name)
            AdapterFiles.copy(name, key: p.name, shape: p.shape, from: found, into: adapter.parameters.pointer + p.offset,
                              problems: &problems)
        }
        for name in found.keys.sorted() where !used.contains(name) {
            problems.append(name.hasPrefix("model.layers.") && name.contains(".lora_")
                ? "unexpected tensor for \(name) (no such adapted projection in this model)"
                : "unsupported tensor \(name)")
        }
        if !problems.isEmpty { throw AdapterError.mismatches(path: url.path, problems: problems) }
        adapter.parametersDidChange()
        return adapter
    }

    /// The dense update for one site: delta[out, in] = scaling * B A (f32).
    public func delta(for site: ProjectionSite) -> [Float]? {
        guard let s = sites[site] else { return nil }
        var out = [Float](repeating: 0, count: s.outFeatures * s.inFeatures)
        out.withUnsafeMutableBufferPointer { o in
            Gemm.multiply(m: s.outFeatures, n: s.inFeatures, k: s.rank, a: parameters.pointer + s.bOffset, lda: s.rank,
                          b: parameters.pointer + s.aOffset, ldb: s.inFeatures, c: o.baseAddress!, ldc: s.inFeatures,
                          alpha: s.scaling)
        }
        return out
    }
}

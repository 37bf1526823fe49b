import Foundation
import Kernels
import ModelIO
import Transformer

/// Python PEFT's on-disk layout: `adapter_config.json` and `adapter_model.safetensors` with keys
/// `base_model.model.<module>.lora_A.weight` [r, in] and `...lora_B.weight` [out, r].
extension LoRAAdapter {
    public static let configFileName = "adapter_config.json"
    public static let weightsFileName = "adapter_model.safetensors"

    /// The safetensors key PEFT uses for a site's matrix (`lora_A` or `lora_B`).
    public static func key(_ site: ProjectionSite, _ matrix: String) -> String {
        "base_model.model.\(site.moduleName).\(matrix).weight"
    }

    /// Writes the adapter folder atomically (a failure keeps any earlier adapter intact).
    public func save(to url: URL, baseModel: String?) throws {
        var config = self.config
        config.baseModelNameOrPath = baseModel ?? config.baseModelNameOrPath
        let configData = config.json()
        var writer = SafetensorsWriter()
        for s in orderedSites {
            writer.add(Self.key(s.site, "lora_A"), dtype: .float32, shape: [s.rank, s.inFeatures],
                       floats: parameters.pointer + s.aOffset)
            writer.add(Self.key(s.site, "lora_B"), dtype: .float32, shape: [s.outFeatures, s.rank],
                       floats: parameters.pointer + s.bOffset)
        }
        try writeFiles(into: url, configData: configData, writer: writer)
    }

    /// Both files are written in full under temporary names first, then renamed into place one right after the
    /// other, so a failure while writing leaves the earlier adapter untouched.
    private func writeFiles(into url: URL, configData: Data, writer: SafetensorsWriter) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: url, withIntermediateDirectories: true)
        let staging = url.appendingPathComponent(".adapter-staging-\(getpid())")
        try? fm.removeItem(at: staging)
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: staging) }
        try writer.write(to: staging.appendingPathComponent(Self.weightsFileName))
        try configData.write(to: staging.appendingPathComponent(Self.configFileName))
        for name in [Self.weightsFileName, Self.configFileName] {
            guard rename(staging.appendingPathComponent(name).path, url.appendingPathComponent(name).path) == 0 else {
                throw AdapterError.io(path: url.appendingPathComponent(name).path, reason: "cannot write: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Loads a PEFT LoRA adapter folder for a model with `model` config. Every mismatch (missing, unexpected or
    /// wrongly shaped tensors) is collected and reported in one error.
    public static func load(from url: URL, model: ModelConfig) throws -> LoRAAdapter {
        let configURL = url.appendingPathComponent(configFileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw AdapterError.io(path: url.path, reason: "adapter directory not found")
        }
        guard let data = try? Data(contentsOf: configURL) else {
            throw AdapterError.io(path: configURL.path, reason: "missing \(configFileName): not a PEFT adapter folder")
        }
        let config = try LoRAConfig(json: data, path: configURL.path)
        let weightsURL = url.appendingPathComponent(weightsFileName)
        guard FileManager.default.fileExists(atPath: weightsURL.path) else {
            let hasBin = FileManager.default.fileExists(atPath: url.appendingPathComponent("adapter_model.bin").path)
            throw AdapterError.io(path: weightsURL.path, reason: hasBin
                ? "only adapter_model.bin (pickle) is present; save the adapter with safe_serialization=True"
                : "missing \(weightsFileName)")
        }
        let file = try SafetensorsFile(path: weightsURL.path)
        let adapter: LoRAAdapter
        do {
            adapter = try LoRAAdapter(config: config, model: model)
        } catch AdapterError.noTargets(let requested, let available) {
            throw AdapterError.mismatches(path: url.path, problems: ["target_modules \(requested) match no projection (available: \(available.joined(separator: ", ")))"])
        }
        // Index the file's tensors by (module, matrix), accepting PEFT's variants of the key.
        var found: [String: TensorView] = [:]
        var unexpected: [String] = []
        for (key, view) in file.tensors {
            guard let normal = normalise(key) else { unexpected.append(key); continue }
            found[normal] = view
        }
        var problems: [String] = []
        var used = Set<String>()
        for s in adapter.orderedSites {
            for (matrix, shape, offset) in [("lora_A", [s.rank, s.inFeatures], s.aOffset),
                                            ("lora_B", [s.outFeatures, s.rank], s.bOffset)] {
                let name = "\(s.site.moduleName).\(matrix)"
                guard let view = found[name] else {
                    problems.append("missing \(key(s.site, matrix)) (shape \(shape))")
                    continue
                }
                used.insert(name)
                guard view.shape == shape else {
                    problems.append("\(key(s.site, matrix)): file has shape \(view.shape), this model needs \(shape)")
                    continue
                }
                guard let dtype = try? view.dtype() else {
                    problems.append("\(key(s.site, matrix)): dtype \(view.dtypeName) is not supported")
                    continue
                }
                Convert.toFloat(view.data, dtype: dtype, into: adapter.parameters.pointer + offset, count: view.elementCount)
            }
        }
        for name in found.keys.sorted() where !used.contains(name) {
            problems.append("unexpected tensor for \(name) (no such adapted projection in this model)")
        }
        for key in unexpected.sorted() { problems.append("unsupported tensor \(key)") }
        if !problems.isEmpty { throw AdapterError.mismatches(path: url.path, problems: problems) }
        return adapter
    }

    /// `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` (also `.lora_A.default.weight`) ->
    /// `model.layers.0.self_attn.q_proj.lora_A`; nil for anything that is not a LoRA A/B matrix.
    static func normalise(_ key: String) -> String? {
        var k = key
        if k.hasPrefix("base_model.model.") { k.removeFirst("base_model.model.".count) }
        k = k.replacingOccurrences(of: ".default.weight", with: ".weight")
        guard k.hasSuffix(".weight") else { return nil }
        k.removeLast(".weight".count)
        guard k.hasSuffix(".lora_A") || k.hasSuffix(".lora_B"), k.hasPrefix("model.layers.") else { return nil }
        return k
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

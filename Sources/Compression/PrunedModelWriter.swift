import Foundation
import Kernels
import ModelIO
import Transformer

/// Writes a pruned model as an ordinary Hugging Face folder: the source's files, with the pruned projections taken
/// from the model in memory (zeros stored densely, in each tensor's own dtype) and, after layer removal, without
/// the removed layers' tensors, later layers renumbered and the config's layer count (and per-layer lists) shrunk.
public enum PrunedModelWriter {
    /// Written into every output folder; a folder holding it may be replaced by a new run.
    public static let reportFileName = "prune_report.json"

    public struct Written: Sendable {
        public var files: Int
        public var bytes: Int
    }

    public static func write(source: URL, model: TransformerModel, replaced: Set<String>, removedLayers: [Int],
                             report: Data, output: URL) throws -> Written {
        let src = source.standardizedFileURL.resolvingSymlinksInPath()
        let dst = output.standardizedFileURL.resolvingSymlinksInPath()
        guard src.path != dst.path, !src.path.hasPrefix(dst.path + "/") else {
            throw PruneError.io(path: output.path, reason: "the output must be a new directory, not the model's own or one that contains it")
        }
        let fm = FileManager.default
        if let items = try? fm.contentsOfDirectory(atPath: dst.path), !items.isEmpty, !items.contains(reportFileName) {
            throw PruneError.io(path: output.path, reason: "the output directory exists and is not an earlier prune; remove it or choose a new directory")
        }
        let directory = try ModelDirectory(url: source)
        let config = model.config, layout = config.layout
        let removed = Set(removedLayers)
        let L = config.layerCount
        var newIndex: [Int: Int] = [:]
        var next = 0
        for l in 0..<L where !removed.contains(l) { newIndex[l] = next; next += 1 }
        // name in the source -> name in the output (nil: dropped with its layer).
        func rename(_ name: String) -> String? {
            let prefix = layout.layers + "."
            guard !removed.isEmpty, name.hasPrefix(prefix) else { return name }
            let rest = name.dropFirst(prefix.count)
            guard let dot = rest.firstIndex(of: "."), let l = Int(rest[..<dot]) else { return name }
            guard let n = newIndex[l] else { return nil }
            return prefix + String(n) + String(rest[dot...])
        }
        let matrices = PrunableMatrix.current(in: model, named: replaced)
        var written = Written(files: 0, bytes: 0)
        try AtomicFile.writeDirectory(output) { dir in
            try report.write(to: dir.appendingPathComponent(reportFileName))
            let w = try DerivedModelFolder.write(
                from: source, directory: directory, into: dir, skipFile: { $0 == reportFileName },
                replaceFile: { item in
                    if item == "config.json" && !removed.isEmpty {
                        return try shrunkConfig(directory.configData, config: config, keep: (0..<L).filter { !removed.contains($0) })
                    }
                    if item.hasSuffix(".safetensors.index.json") && !removed.isEmpty {
                        let from = source.appendingPathComponent(item)
                        return try renamedIndex(try Data(contentsOf: from), rename: rename, path: from.path)
                    }
                    return nil
                },
                rename: rename,
                unsupported: { v in PruneError.io(path: v.file.path, reason: "tensor \(v.name) has dtype \(v.dtypeName), which prune does not write") }
            ) { entry, view, out in
                guard let m = matrices[view.name] else { return false }
                let values = m.toFloat()
                withExtendedLifetime(values) {
                    Convert.fromFloat(values.pointer, dtype: entry.dtype, into: out.baseAddress!, count: view.elementCount)
                }
                return true
            }
            written = Written(files: w.files, bytes: w.bytes)
        }
        return written
    }

    /// config.json with the kept layers only: the layer count under the family's own key, `layer_types` (written
    /// out when windows differ between layers so the kept layers keep theirs), and for a mixture of experts the
    /// dense layers among the new indices.
    /// Why layers cannot be removed from this model, or nil: Baichuan's remote code (and llama.cpp) choose ALiBi
    /// positions by the 13B models' 40 layers, so fewer layers would silently switch the model to rotary positions.
    public static func layerRemovalRefusal(_ config: ModelConfig) -> String? {
        guard config.alibiSlopes != nil else { return nil }
        return "layers cannot be removed from a Baichuan 13B model: its remote code and llama.cpp use ALiBi positions only at its 40 layers, so fewer layers would turn it into a model with rotary positions"
    }

    static func shrunkConfig(_ data: Data, config: ModelConfig, keep: [Int]) throws -> Data {
        if let why = layerRemovalRefusal(config), keep.count != config.layerCount {
            throw TransformerError.unsupported(path: "config.json", reason: why)
        }
        guard var obj = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw PruneError.io(path: "config.json", reason: "not a JSON object")
        }
        for key in ["num_hidden_layers", "num_layers", "n_layer"] where obj[key] != nil { obj[key] = keep.count }
        if config.moe != nil {
            // Mixture of experts: which layers are sparse follows the index (every decoder_sparse_step-th, except
            // mlp_only_layers); the kept layers keep their kind by naming the dense ones among the new indices.
            obj["decoder_sparse_step"] = 1
            obj["mlp_only_layers"] = keep.indices.filter { !config.isSparse(layer: keep[$0]) }
        }
        if let types = obj["layer_types"] as? [Any], types.count == config.layerCount {
            obj["layer_types"] = keep.map { types[$0] }
        } else if Set((0..<config.layerCount).map { config.attentionWindow(layer: $0) }).count > 1 {
            obj["layer_types"] = keep.map { config.attentionWindow(layer: $0) == nil ? "full_attention" : "sliding_attention" }
        }
        return try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    }

    /// model.safetensors.index.json with the tensors renamed (dropped ones removed).
    static func renamedIndex(_ data: Data, rename: (String) -> String?, path: String) throws -> Data {
        guard var obj = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              let map = obj["weight_map"] as? [String: String] else {
            throw PruneError.io(path: path, reason: "no weight_map object")
        }
        var out: [String: String] = [:]
        for (name, file) in map { if let n = rename(name) { out[n] = file } }
        obj["weight_map"] = out
        return try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    }
}

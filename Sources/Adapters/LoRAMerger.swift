import Foundation
import Kernels
import ModelIO
import Transformer

/// Folds a LoRA adapter into a copy of its base model: W' = W + scaling * B A for every adapted projection,
/// computed in f32 and stored back in each tensor's original dtype. The shard layout, config and tokenizer
/// files are kept, so transformers loads the result like the original.
///
/// ```swift
/// try LoRAMerger.merge(model: baseURL, adapter: lora, output: mergedURL)
/// ```
public enum LoRAMerger {
    public struct Report: Sendable {
        public var mergedTensors: Int
        public var files: Int
        public var bytes: Int
    }

    /// Written into every merged directory; a directory holding it may be replaced by a new merge.
    public static let markerFileName = "peft_merge.json"

    public static func merge(model modelURL: URL, adapter: LoRAAdapter, output: URL) throws -> Report {
        let source = modelURL.standardizedFileURL.resolvingSymlinksInPath()
        let target = output.standardizedFileURL.resolvingSymlinksInPath()
        guard source.path != target.path else {
            throw AdapterError.io(path: output.path, reason: "the output must differ from the base model directory")
        }
        // Never replace a directory that holds the inputs, or anything that is not an earlier merge.
        if source.path.hasPrefix(target.path + "/") {
            throw AdapterError.io(path: output.path, reason: "the output contains the base model; choose a new directory")
        }
        let fm = FileManager.default
        if let items = try? fm.contentsOfDirectory(atPath: target.path), !items.isEmpty,
           !items.contains(markerFileName) {
            throw AdapterError.io(path: output.path, reason: "the output directory exists and is not an earlier merge; remove it or choose a new directory")
        }
        let directory = try ModelDirectory(url: modelURL)
        // Site for every adapted weight name.
        var byName: [String: ProjectionSite] = [:]
        for s in adapter.orderedSites { byName[s.site.moduleName + ".weight"] = s.site }
        for name in byName.keys where !directory.contains(name) {
            throw AdapterError.mismatches(path: modelURL.path, problems: ["the base model has no tensor \(name)"])
        }
        var merged = 0, bytes = 0
        let files = Set(directory.weightMap.values).sorted()
        try AtomicFile.writeDirectory(output) { dir in
            // Everything but weights and adapter files is copied as is.
            let marker: [String: Any] = ["base_model": modelURL.path, "adapter": adapter.config.json().isEmpty ? "" : "lora",
                                         "r": adapter.config.r, "lora_alpha": adapter.config.alpha,
                                         "merged_modules": adapter.orderedSites.count]
            try JSONSerialization.data(withJSONObject: marker, options: [.prettyPrinted, .sortedKeys])
                .write(to: dir.appendingPathComponent(markerFileName))
            for item in try FileManager.default.contentsOfDirectory(atPath: modelURL.path).sorted() {
                if item.hasSuffix(".safetensors") || item.hasPrefix("adapter_") || item.hasPrefix(".") || item == markerFileName { continue }
                var isDir: ObjCBool = false
                let src = modelURL.appendingPathComponent(item)
                guard FileManager.default.fileExists(atPath: src.path, isDirectory: &isDir), !isDir.boolValue else { continue }
                try FileManager.default.copyItem(at: src, to: dir.appendingPathComponent(item))
            }
            for file in files {
                let names = directory.weightMap.filter { $0.value == file }.map(\.key)
                let views = try names.map { try directory.tensor($0) }
                let entries = try views.map { v -> SafetensorsStreamWriter.Entry in
                    guard let dtype = DType(safetensorsName: v.dtypeName) else {
                        // Non-float tensors are copied byte for byte under their own dtype name: not expected in
                        // decoder checkpoints; refuse rather than guess.
                        throw AdapterError.io(path: v.file.path, reason: "tensor \(v.name) has dtype \(v.dtypeName), which merge does not handle")
                    }
                    return .init(name: v.name, dtype: dtype, shape: v.shape)
                }
                let viewByName = Dictionary(uniqueKeysWithValues: views.map { ($0.name, $0) })
                try SafetensorsStreamWriter.write(entries, to: dir.appendingPathComponent(file)) { entry, out in
                    let view = viewByName[entry.name]!
                    bytes += entry.byteCount
                    guard let site = byName[entry.name], let delta = adapter.delta(for: site) else {
                        out.copyMemory(from: UnsafeRawBufferPointer(start: view.data, count: view.byteCount))
                        return
                    }
                    guard delta.count == view.elementCount else {
                        throw AdapterError.mismatches(path: modelURL.path, problems: ["\(entry.name) has \(view.elementCount) elements, the adapter's update has \(delta.count)"])
                    }
                    let w = try view.floatBuffer()
                    withExtendedLifetime(w) {
                        delta.withUnsafeBufferPointer { d in Ops.add(d.baseAddress!, into: w.pointer, count: delta.count) }
                        Convert.fromFloat(w.pointer, dtype: entry.dtype, into: out.baseAddress!, count: delta.count)
                    }
                    merged += 1
                }
            }
        }
        return Report(mergedTensors: merged, files: files.count, bytes: bytes)
    }
}

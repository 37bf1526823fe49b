import Foundation
import Kernels

/// Writes a model folder derived from another (a merge, a pruned or layer-removed model): the source's files other
/// than its weights copied as they are (or replaced), then every safetensors shard streamed again tensor by tensor,
/// each tensor renamed or dropped and either copied byte for byte or produced anew. One shard in memory at a time:
/// only the tensors that change are ever read into floats.
///
/// ```swift
/// let written = try DerivedModelFolder.write(from: source, into: dir, replaceFile: { _ in nil },
///                                            rename: { $0 }) { entry, view, out in false }   // a plain copy
/// ```
public enum DerivedModelFolder {
    public struct Written: Sendable {
        public var files: Int
        public var bytes: Int
    }

    /// - Parameters:
    ///   - skipFile: source files not to copy (besides the shards, hidden files and `adapter_*` files, never copied).
    ///   - replaceFile: other bytes for a copied file (a shrunk config, a renamed shard index), or nil to copy it.
    ///   - rename: a tensor's name in the output, or nil to drop it.
    ///   - produce: writes a tensor's bytes (in the entry's dtype, the source's) and returns true, or returns false to
    ///     copy the source's bytes.
    ///   - unsupported: the error for a tensor whose dtype the engine does not compute with.
    public static func write(from source: URL, directory: ModelDirectory, into dir: URL,
                             skipFile: (String) -> Bool = { _ in false },
                             replaceFile: (String) throws -> Data?, rename: (String) -> String?,
                             unsupported: (TensorView) -> Error,
                             produce: (SafetensorsStreamWriter.Entry, TensorView, UnsafeMutableRawBufferPointer) throws -> Bool) throws -> Written {
        let fm = FileManager.default
        for item in try fm.contentsOfDirectory(atPath: source.path).sorted() {
            if item.hasSuffix(".safetensors") || item.hasPrefix(".") || item.hasPrefix("adapter_") || skipFile(item) { continue }
            var isDir: ObjCBool = false
            let from = source.appendingPathComponent(item)
            guard fm.fileExists(atPath: from.path, isDirectory: &isDir), !isDir.boolValue else { continue }
            let to = dir.appendingPathComponent(item)
            if let data = try replaceFile(item) { try data.write(to: to) } else { try fm.copyItem(at: from, to: to) }
        }
        var written = Written(files: 0, bytes: 0)
        for file in Set(directory.weightMap.values).sorted() {
            var entries: [SafetensorsStreamWriter.Entry] = [], views: [String: TensorView] = [:]
            for name in directory.weightMap.filter({ $0.value == file }).map(\.key).sorted() {
                guard let newName = rename(name) else { continue }
                let v = try directory.tensor(name)
                guard let dtype = DType(safetensorsName: v.dtypeName) else { throw unsupported(v) }
                entries.append(.init(name: newName, dtype: dtype, shape: v.shape))
                views[newName] = v
            }
            try SafetensorsStreamWriter.write(entries, to: dir.appendingPathComponent(file)) { entry, out in
                let view = views[entry.name]!
                written.bytes += entry.byteCount
                if try !produce(entry, view, out) {
                    out.copyMemory(from: UnsafeRawBufferPointer(start: view.data, count: view.byteCount))
                }
            }
            written.files += 1
        }
        return written
    }
}

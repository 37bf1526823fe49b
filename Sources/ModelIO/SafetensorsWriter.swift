import Foundation
import Kernels

/// Writes safetensors files the way the reference implementation lays them out: header keys sorted,
/// header padded with spaces to a multiple of 8 bytes, data packed in header order. Writes go to a
/// temporary name in the same folder and are renamed into place, so a failure never leaves a half-written file.
///
/// ```swift
/// var w = SafetensorsWriter()
/// w.add("lora_A.weight", dtype: .float32, shape: [8, 64], floats: a)
/// try w.write(to: url, metadata: ["format": "pt"])
/// ```
public struct SafetensorsWriter {
    private struct Entry { var dtype: DType; var shape: [Int]; var bytes: Data }
    private var entries: [String: Entry] = [:]

    public init() {}

    /// Adds f32 values, stored as `dtype` (converted with round-to-nearest-even).
    public mutating func add(_ name: String, dtype: DType, shape: [Int], floats: UnsafePointer<Float>) {
        let count = shape.reduce(1, *)
        var data = Data(count: count * dtype.byteSize)
        data.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { Convert.fromFloat(floats, dtype: dtype, into: base, count: count) }
        }
        entries[name] = Entry(dtype: dtype, shape: shape, bytes: data)
    }

    public mutating func add(_ name: String, dtype: DType, shape: [Int], floats: [Float]) {
        floats.withUnsafeBufferPointer { add(name, dtype: dtype, shape: shape, floats: $0.baseAddress!) }
    }

    /// Writes atomically to `url` (the header and layout come from `SafetensorsStreamWriter`).
    public func write(to url: URL, metadata: [String: String] = ["format": "pt"]) throws {
        let list = entries.map { SafetensorsStreamWriter.Entry(name: $0.key, dtype: $0.value.dtype, shape: $0.value.shape) }
        try SafetensorsStreamWriter.write(list, to: url, metadata: metadata) { entry, out in
            if let bytes = entries[entry.name]?.bytes { out.copyBytes(from: bytes) }
        }
    }
}

/// Write-to-temporary-then-rename, so readers never see a half-written file and a failed write keeps the old one.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent()
        let temp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        do {
            try data.write(to: temp)
            // rename(2) replaces the target atomically within one file system.
            guard rename(temp.path, url.path) == 0 else {
                throw ModelIOError.writeFailed(path: url.path, reason: String(cString: strerror(errno)))
            }
        } catch {
            try? FileManager.default.removeItem(at: temp)
            throw ModelIOError.writeFailed(path: url.path, reason: error.localizedDescription)
        }
    }

    /// Streams a file through `body` (writing to the handle it gets) under a temporary name, then renames it into
    /// place; on any error the temporary file is removed and an existing `url` is kept.
    public static func stream(to url: URL, _ body: (FileHandle) throws -> Void) throws {
        let temp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())")
        guard FileManager.default.createFile(atPath: temp.path, contents: nil),
              let handle = FileHandle(forWritingAtPath: temp.path) else {
            throw ModelIOError.writeFailed(path: url.path, reason: "cannot create the file")
        }
        do {
            try body(handle)
            try handle.close()
            guard rename(temp.path, url.path) == 0 else {
                throw ModelIOError.writeFailed(path: url.path, reason: String(cString: strerror(errno)))
            }
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: temp)
            throw error
        }
    }

    /// Writes a directory's contents into a fresh temporary sibling, then swaps it into place.
    /// `fill` receives the temporary directory. An existing `url` is replaced only after `fill` succeeds.
    public static func writeDirectory(_ url: URL, _ fill: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let parent = url.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let temp = parent.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try? fm.removeItem(at: temp)
        try fm.createDirectory(at: temp, withIntermediateDirectories: true)
        do {
            try fill(temp)
            if fm.fileExists(atPath: url.path) {
                let old = parent.appendingPathComponent(".\(url.lastPathComponent).old-\(getpid())")
                try? fm.removeItem(at: old)
                try fm.moveItem(at: url, to: old)
                do {
                    try fm.moveItem(at: temp, to: url)
                } catch {
                    try? fm.moveItem(at: old, to: url)   // put the original back
                    throw error
                }
                try? fm.removeItem(at: old)
            } else {
                try fm.moveItem(at: temp, to: url)
            }
        } catch {
            try? fm.removeItem(at: temp)
            throw error
        }
    }
}

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

    public var isEmpty: Bool { entries.isEmpty }

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

    /// Adds raw bytes already in `dtype`'s layout.
    public mutating func add(_ name: String, dtype: DType, shape: [Int], raw: UnsafeRawPointer, byteCount: Int) {
        entries[name] = Entry(dtype: dtype, shape: shape, bytes: Data(bytes: raw, count: byteCount))
    }

    /// The serialised header (JSON padded to 8 bytes) for the current entries.
    private func header(metadata: [String: String]) -> Data {
        var parts: [String] = []
        if !metadata.isEmpty {
            let meta = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(meta)}")
        }
        var offset = 0
        for name in entries.keys.sorted() {
            let e = entries[name]!
            let shape = e.shape.map(String.init).joined(separator: ",")
            parts.append("\(jsonString(name)):{\"dtype\":\"\(e.dtype.safetensorsName)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + e.bytes.count)]}")
            offset += e.bytes.count
        }
        var text = "{" + parts.joined(separator: ",") + "}"
        while text.utf8.count % 8 != 0 { text += " " }
        return Data(text.utf8)
    }

    /// Writes atomically to `url`.
    public func write(to url: URL, metadata: [String: String] = ["format": "pt"]) throws {
        let head = header(metadata: metadata)
        var length = UInt64(head.count).littleEndian
        var out = Data(bytes: &length, count: 8)
        out.append(head)
        for name in entries.keys.sorted() { out.append(entries[name]!.bytes) }
        try AtomicFile.write(out, to: url)
    }

    private func jsonString(_ s: String) -> String {
        var r = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            default:
                if ch.value < 0x20 { r += String(format: "\\u%04x", ch.value) } else { r.unicodeScalars.append(ch) }
            }
        }
        return r + "\""
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

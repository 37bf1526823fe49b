import Foundation
import Kernels

/// One tensor inside a safetensors file: a typed view into the mapping.
public struct TensorView: @unchecked Sendable {
    public let name: String
    /// The safetensors dtype string (`F32`, `BF16`, `F16`, `I64`, ...).
    public let dtypeName: String
    public let shape: [Int]
    public let data: UnsafeRawPointer
    public let byteCount: Int
    /// The file the view points into (kept alive by the view).
    public let file: MappedFile

    public var elementCount: Int { shape.reduce(1, *) }

    /// The dtype when it is one the engine computes with.
    public func dtype() throws -> DType {
        guard let d = DType(safetensorsName: dtypeName) else {
            throw ModelIOError.unsupportedDType(path: file.path, tensor: name, dtype: dtypeName)
        }
        return d
    }
}

/// A parsed safetensors file: 8-byte little-endian header length, a JSON header naming every tensor's dtype,
/// shape and `data_offsets` relative to the data section, then the data. Every offset is bounds-checked.
///
/// ```swift
/// let file = try SafetensorsFile(path: "model.safetensors")
/// let w = file.tensors["model.embed_tokens.weight"]
/// ```
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public let tensors: [String: TensorView]
    public let metadata: [String: String]
    public let mapping: MappedFile

    private static let byteSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
        "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
    ]

    public init(path: String) throws {
        self.path = path
        let file = try MappedFile(path: path)
        mapping = file
        guard file.size >= 8 else {
            throw ModelIOError.malformed(path: path, reason: "file is \(file.size) bytes, shorter than the 8-byte header length (truncated?)")
        }
        let rawLength = file.base.loadUnaligned(as: UInt64.self).littleEndian
        guard let headerLength = Int(exactly: rawLength), headerLength > 0, headerLength <= file.size - 8 else {
            throw ModelIOError.malformed(path: path, reason: "header length \(rawLength) does not fit in a file of \(file.size) bytes (truncated?)")
        }
        let headerData = Data(bytes: file.base + 8, count: headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: headerData)
        } catch {
            throw ModelIOError.malformed(path: path, reason: "header is not valid JSON")
        }
        guard let header = json as? [String: Any] else {
            throw ModelIOError.malformed(path: path, reason: "header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataSize = file.size - dataStart
        var tensors: [String: TensorView] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                for (k, v) in (value as? [String: Any]) ?? [:] { metadata[k] = "\(v)" }
                continue
            }
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shapeAny = entry["shape"] as? [Any], let offsetsAny = entry["data_offsets"] as? [Any] else {
                throw ModelIOError.malformed(path: path, reason: "tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            let shape = shapeAny.compactMap { ($0 as? NSNumber)?.intValue }
            let offsets = offsetsAny.compactMap { ($0 as? NSNumber)?.intValue }
            guard shape.count == shapeAny.count, shape.allSatisfy({ $0 >= 0 }), offsets.count == 2 else {
                throw ModelIOError.malformed(path: path, reason: "tensor '\(name)' has an invalid shape or data_offsets")
            }
            guard let elementSize = Self.byteSizes[dtype] else {
                throw ModelIOError.malformed(path: path, reason: "tensor '\(name)' has unknown dtype \(dtype)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw ModelIOError.malformed(path: path, reason: "tensor '\(name)' data_offsets [\(begin), \(end)] point past the \(dataSize)-byte data section (truncated?)")
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (v, o) = acc.0.multipliedReportingOverflow(by: d)
                return (v, acc.1 || o)
            }
            let (bytes, bytesOverflow) = count.multipliedReportingOverflow(by: elementSize)
            guard !overflow, !bytesOverflow, bytes == end - begin else {
                let needs = overflow || bytesOverflow ? "more bytes than fit in memory" : "\(bytes) bytes"
                throw ModelIOError.malformed(path: path, reason: "tensor '\(name)' shape \(shape) needs \(needs) but data_offsets span \(end - begin)")
            }
            tensors[name] = TensorView(name: name, dtypeName: dtype, shape: shape, data: file.base + dataStart + begin,
                                       byteCount: end - begin, file: file)
        }
        self.tensors = tensors
        self.metadata = metadata
    }
}

extension TensorView {
    /// The elements as f32 (converted from bf16/f16).
    public func floats() throws -> [Float] {
        let d = try dtype()
        var out = [Float](repeating: 0, count: elementCount)
        out.withUnsafeMutableBufferPointer { Convert.toFloat(data, dtype: d, into: $0.baseAddress!, count: elementCount) }
        return out
    }

    /// The elements converted into a new f32 buffer.
    public func floatBuffer() throws -> FloatBuffer {
        let d = try dtype()
        let out = FloatBuffer(count: elementCount)
        Convert.toFloat(data, dtype: d, into: out.pointer, count: elementCount)
        return out
    }

    /// Throws unless the shape is exactly `expected`.
    public func expectShape(_ expected: [Int]) throws {
        guard shape == expected else { throw ModelIOError.shapeMismatch(tensor: name, expected: expected, found: shape) }
    }
}

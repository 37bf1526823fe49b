import Foundation
import Kernels

/// A GGUF file (version 2 or 3) opened read-only: metadata, tensor infos, and tensor data straight from a memory
/// mapping. Every count, length and offset is checked against the file before it is used, so a truncated or
/// corrupt file is a clear error, never a crash.
///
/// ```swift
/// let file = try GGUFFile(path: "model-q8_0.gguf")
/// file.metadata["general.architecture"]?.string   // "qwen2"
/// let t = file.tensors["blk.0.attn_q.weight"]!       // dims, type, data pointer
/// ```
public final class GGUFFile: @unchecked Sendable {
    public struct TensorInfo: Sendable {
        public let name: String
        /// GGML order: dims[0] innermost.
        public let dims: [Int]
        public let type: GGMLType
        public let data: UnsafeRawPointer
        public var elementCount: Int { dims.reduce(1, *) }
        public var byteCount: Int { elementCount / type.block.size * type.block.bytes }

        /// Its `elementCount` elements as f32 into `out` (block formats dequantized).
        public func floats(into out: UnsafeMutablePointer<Float>) {
            switch type {
            case .f32: Convert.toFloat(data, dtype: .float32, into: out, count: elementCount)
            case .f16: Convert.toFloat(data, dtype: .float16, into: out, count: elementCount)
            case .bf16: Convert.toFloat(data, dtype: .bfloat16, into: out, count: elementCount)
            case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_k, .q3_k, .q4_k, .q5_k, .q6_k, .iq4_nl, .iq4_xs:
                QuantType(rawValue: "\(type)")!.dequantize(data.assumingMemoryBound(to: UInt8.self), count: elementCount, into: out)
            }
        }
    }

    public let path: String
    public let file: MappedFile
    public let version: UInt32
    public private(set) var metadata: [String: GGUFValue] = [:]
    /// Metadata keys in file order.
    public private(set) var keys: [String] = []
    public private(set) var tensors: [String: TensorInfo] = [:]
    public private(set) var tensorNames: [String] = []

    /// Most entries of any count the reader accepts (guards against absurd allocations from a corrupt header).
    static let countLimit = 1 << 28

    public init(path: String) throws {
        self.path = path
        file = try MappedFile(path: path)
        var cursor = Cursor(base: file.base, size: file.size, path: path)
        guard try cursor.u32() == 0x4655_4747 else { throw cursor.bad("not a GGUF file (bad magic)") }
        version = try cursor.u32()
        guard version == 2 || version == 3 else { throw cursor.bad("GGUF version \(version) is not supported (2 or 3)") }
        let tensorCount = try cursor.count(), kvCount = try cursor.count()
        for _ in 0..<kvCount {
            let at = cursor.offset
            let key = try cursor.string()
            guard !key.isEmpty else { throw cursor.bad("an empty metadata key at offset \(at)") }
            guard metadata[key] == nil else { throw cursor.bad("metadata key \(key) appears twice") }
            let value = try cursor.value(type: try cursor.u32(), depth: 0)
            metadata[key] = value
            keys.append(key)
        }
        var infos: [(String, [Int], GGMLType, Int)] = []
        for _ in 0..<tensorCount {
            let name = try cursor.string()
            let nDims = Int(try cursor.u32())
            guard !name.isEmpty else { throw cursor.bad("a tensor without a name") }
            guard (1...4).contains(nDims) else { throw cursor.bad("tensor \(name) has \(nDims) dimensions (1 to 4)") }
            var dims: [Int] = []
            for _ in 0..<nDims {
                let d = try cursor.u64()
                guard d > 0, d < UInt64(Int32.max) else { throw cursor.bad("tensor \(name) has a dimension of \(d)") }
                dims.append(Int(d))
            }
            let rawType = try cursor.u32()
            guard let type = GGMLType(rawValue: rawType) else {
                let known = GGMLType.otherNames[rawType].map { "GGML type \($0) (\(rawType))" } ?? "GGML type \(rawType)"
                let read = GGMLType.allCases.map { "\($0)" }.joined(separator: ", ")
                throw cursor.bad("tensor \(name) has \(known), which this engine does not read (it reads \(read))")
            }
            let offset = try cursor.u64()
            guard offset < UInt64(Int.max / 2) else { throw cursor.bad("tensor \(name) has offset \(offset)") }
            infos.append((name, dims, type, Int(offset)))
        }
        var alignment = 32
        if let value = metadata["general.alignment"] {
            guard case .uint32(let a) = value else { throw cursor.bad("general.alignment must be a uint32, not \(value)") }
            alignment = Int(a)
        }
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= 1 << 16 else {
            throw cursor.bad("general.alignment \(alignment) is not a power of two (at most 65536)")
        }
        let dataStart = (cursor.offset + alignment - 1) / alignment * alignment
        for (name, dims, type, offset) in infos {
            let (count, overflow) = dims.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            // As ggml: each row (the innermost dimension) is whole blocks.
            guard !overflow, dims[0] % type.block.size == 0 else {
                throw cursor.bad("tensor \(name) has \(dims) elements, not a whole number of \(type) blocks")
            }
            guard offset % alignment == 0 else { throw cursor.bad("tensor \(name) is not aligned to \(alignment) bytes") }
            let bytes = count / type.block.size * type.block.bytes
            guard dataStart + offset <= file.size, bytes <= file.size - dataStart - offset else {
                throw cursor.bad("tensor \(name) (\(bytes) bytes at \(dataStart + offset)) reaches past the end of the file (\(file.size) bytes): truncated?")
            }
            guard tensors[name] == nil else { throw cursor.bad("tensor \(name) appears twice") }
            tensors[name] = TensorInfo(name: name, dims: dims, type: type, data: file.base + dataStart + offset)
            tensorNames.append(name)
        }
        // No two tensors share bytes.
        let spans = infos.map { (name: $0.0, start: $0.3, end: $0.3 + tensors[$0.0]!.byteCount) }.sorted { $0.start < $1.start }
        for (a, b) in zip(spans, spans.dropFirst()) where b.start < a.end {
            throw cursor.bad("tensors \(a.name) and \(b.name) overlap (bytes \(a.start)..<\(a.end) and \(b.start)..<\(b.end) of the data)")
        }
    }

    /// Reads little-endian fields with bounds checks.
    struct Cursor {
        let base: UnsafeRawPointer
        let size: Int
        let path: String
        var offset = 0

        func bad(_ reason: String) -> ModelIOError { .malformed(path: path, reason: reason) }

        mutating func take(_ n: Int) throws -> UnsafeRawPointer {
            guard n >= 0, n <= size - offset else { throw bad("truncated: needs \(n) bytes at offset \(offset) of \(size)") }
            defer { offset += n }
            return base + offset
        }

        mutating func u8() throws -> UInt8 { try take(1).load(as: UInt8.self) }
        mutating func u16() throws -> UInt16 { UInt16(littleEndian: try take(2).loadUnaligned(as: UInt16.self)) }
        mutating func u32() throws -> UInt32 { UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self)) }
        mutating func u64() throws -> UInt64 { UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self)) }

        mutating func count() throws -> Int {
            let n = try u64()
            guard n <= UInt64(GGUFFile.countLimit) else { throw bad("a count of \(n) at offset \(offset - 8) is implausible") }
            return Int(n)
        }

        mutating func string() throws -> String {
            let n = try count()
            let p = try take(n)
            return String(decoding: UnsafeRawBufferPointer(start: p, count: n), as: UTF8.self)
        }

        mutating func value(type: UInt32, depth: Int) throws -> GGUFValue {
            switch type {
            case GGUFValue.uint8ID: return .uint8(try u8())
            case GGUFValue.int8ID: return .int8(Int8(bitPattern: try u8()))
            case GGUFValue.uint16ID: return .uint16(try u16())
            case GGUFValue.int16ID: return .int16(Int16(bitPattern: try u16()))
            case GGUFValue.uint32ID: return .uint32(try u32())
            case GGUFValue.int32ID: return .int32(Int32(bitPattern: try u32()))
            case GGUFValue.uint64ID: return .uint64(try u64())
            case GGUFValue.int64ID: return .int64(Int64(bitPattern: try u64()))
            case GGUFValue.float32ID: return .float32(Float(bitPattern: try u32()))
            case GGUFValue.float64ID: return .float64(Double(bitPattern: try u64()))
            case GGUFValue.boolID: return .bool(try u8() != 0)
            case GGUFValue.stringID: return .string(try string())
            case GGUFValue.arrayID:
                guard depth < 4 else { throw bad("arrays nested too deeply") }
                let elementType = try u32()
                guard elementType <= 12 else { throw bad("unknown array element type \(elementType) at offset \(offset - 4)") }
                let n = try count()
                var items: [GGUFValue] = []
                items.reserveCapacity(min(n, 1 << 20))
                for _ in 0..<n { items.append(try value(type: elementType, depth: depth + 1)) }
                return .array(elementType: elementType, items)
            default: throw bad("unknown metadata value type \(type) at offset \(offset - 4)")
            }
        }
    }
}

import Foundation

/// Writes a GGUF (version 3) file: header, metadata in the given order, tensor infos, then the tensors' data, each
/// aligned to `alignment` bytes. Tensor bytes are produced one tensor at a time (nothing holds the whole model), into
/// a temporary file renamed into place at the end.
///
/// ```swift
/// var w = GGUFWriter()
/// w.metadata.append(("general.architecture", .string("qwen2")))
/// w.tensors.append(.init(name: "token_embd.weight", dims: [896, 151936], type: .q8_0))
/// try w.write(to: url) { tensor, out in ... fill out (tensor.byteCount bytes) ... }
/// ```
public struct GGUFWriter {
    public struct Tensor: Sendable {
        public var name: String
        /// GGML order: dims[0] is the innermost (the columns of a row-major matrix).
        public var dims: [Int]
        public var type: GGMLType

        public init(name: String, dims: [Int], type: GGMLType) {
            self.name = name
            self.dims = dims
            self.type = type
        }

        public var elementCount: Int { dims.reduce(1, *) }
        public var byteCount: Int { elementCount / type.block.size * type.block.bytes }
    }

    public var metadata: [(key: String, value: GGUFValue)] = []
    public var tensors: [Tensor] = []
    public var alignment = 32

    public init() {}

    public func write(to url: URL, produce: (Tensor, UnsafeMutableRawBufferPointer) throws -> Void) throws {
        var header = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        func str(_ s: String) { u64(UInt64(s.utf8.count)); header.append(contentsOf: Array(s.utf8)) }
        func value(_ v: GGUFValue) {
            switch v {
            case .uint8(let x): header.append(x)
            case .int8(let x): header.append(UInt8(bitPattern: x))
            case .uint16(let x): withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) }
            case .int16(let x): withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) }
            case .uint32(let x): u32(x)
            case .int32(let x): withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) }
            case .uint64(let x): u64(x)
            case .int64(let x): withUnsafeBytes(of: x.littleEndian) { header.append(contentsOf: $0) }
            case .float32(let x): u32(x.bitPattern)
            case .float64(let x): u64(x.bitPattern)
            case .bool(let x): header.append(x ? 1 : 0)
            case .string(let s): str(s)
            case .array(let type, let items):
                u32(type)
                u64(UInt64(items.count))
                for item in items { value(item) }
            }
        }
        u32(0x4655_4747)   // "GGUF"
        u32(3)
        u64(UInt64(tensors.count))
        u64(UInt64(metadata.count))
        for (key, v) in metadata {
            str(key)
            u32(v.typeID)
            value(v)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            str(t.name)
            u32(UInt32(t.dims.count))
            for d in t.dims { u64(UInt64(d)) }
            u32(t.type.rawValue)
            u64(UInt64(offset))
            offsets.append(offset)
            offset += (t.byteCount + alignment - 1) / alignment * alignment
        }
        while header.count % alignment != 0 { header.append(0) }

        try AtomicFile.stream(to: url) { handle in
            try handle.write(contentsOf: header)
            for t in tensors {
                let padded = (t.byteCount + alignment - 1) / alignment * alignment
                var data = Data(count: padded)
                try data.withUnsafeMutableBytes { raw in
                    try produce(t, UnsafeMutableRawBufferPointer(rebasing: raw[0..<t.byteCount]))
                }
                try handle.write(contentsOf: data)
            }
        }
    }
}

/// Reads protobuf wire format field by field, just enough for SentencePiece's `tokenizer.model`: varints, 32- and
/// 64-bit fixed values and length-delimited bytes. Every length is checked, so a truncated file is an error naming
/// the byte offset, never a crash.
/// ```swift
/// var reader = ProtobufReader(bytes: bytes, file: "tokenizer.model")
/// while let (field, wire) = try reader.nextField() { if field == 1 { _ = try reader.lengthDelimited() } else { try reader.skip(wire) } }
/// ```
struct ProtobufReader {
    private let buffer: [UInt8]
    private let file: String
    private var position = 0

    init(bytes: [UInt8], file: String) {
        self.buffer = bytes
        self.file = file
    }

    /// The next field number and wire type, or nil at the end.
    mutating func nextField() throws -> (Int, Int)? {
        guard position < buffer.count else { return nil }
        let key = try varint()
        let field = Int(key >> 3), wire = Int(key & 7)
        guard field > 0 else { throw error("field number 0") }
        return (field, wire)
    }

    mutating func varint() throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < buffer.count else { throw error("truncated varint") }
            let byte = buffer[position]
            position += 1
            guard shift < 64 else { throw error("varint longer than 10 bytes") }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func fixed32() throws -> UInt32 {
        let raw = try take(4)
        return raw.enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }

    /// A length-delimited value (string, bytes or embedded message).
    mutating func lengthDelimited() throws -> [UInt8] {
        let length = try varint()
        guard length <= UInt64(buffer.count - position) else { throw error("a length of \(length) runs past the end") }
        return Array(try take(Int(length)))
    }

    /// Skips a value of the given wire type.
    mutating func skip(_ wire: Int) throws {
        switch wire {
        case 0: _ = try varint()
        case 1: _ = try take(8)
        case 2: _ = try lengthDelimited()
        case 5: _ = try take(4)
        default: throw error("unsupported wire type \(wire)")
        }
    }

    func error(_ reason: String) -> TokenizerError {
        .malformedModelFile(file: file, offset: position, reason: reason)
    }

    private mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count <= buffer.count - position else { throw error("truncated value") }
        defer { position += count }
        return buffer[position..<(position + count)]
    }
}

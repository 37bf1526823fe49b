import Foundation

/// A small, fast JSON reader for tokenizer files.
///
/// `JSONSerialization` needs ~0.6 s for Qwen's 18 MB `tokenizer.json` on Linux; this parser reads bytes
/// directly, makes short strings without heap allocation and keeps objects as ordered arrays.
/// ```swift
/// let value = try JSONParser.parse(data, file: "tokenizer.json")
/// ```
public struct JSONParser {
    /// Nesting deeper than this is rejected so a hostile file cannot overflow the stack.
    static let maximumDepth = 512

    private let bytes: UnsafeBufferPointer<UInt8>
    private let file: String
    private var position = 0

    private init(bytes: UnsafeBufferPointer<UInt8>, file: String) {
        self.bytes = bytes
        self.file = file
    }

    /// Checks that `data` is one well-formed JSON document; the error names `file`, the line and the column.
    public static func validate(_ data: Data, file: String) throws { _ = try parse(data, file: file) }

    /// Parses a whole document; `file` names it in error messages.
    static func parse(_ data: Data, file: String) throws -> JSONValue {
        try data.withUnsafeBytes { raw in
            var parser = JSONParser(bytes: raw.bindMemory(to: UInt8.self), file: file)
            if parser.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.position = 3 }  // UTF-8 byte order mark
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            guard parser.position == parser.bytes.count else { throw parser.error("unexpected text after the document") }
            return value
        }
    }

    private mutating func parseValue(depth: Int) throws -> JSONValue {
        guard depth < Self.maximumDepth else { throw error("nesting deeper than \(Self.maximumDepth) levels") }
        guard position < bytes.count else { throw error("unexpected end of file") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return .object(try parseObject(depth: depth))
        case UInt8(ascii: "["): return .array(try parseArray(depth: depth))
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character '\(Character(Unicode.Scalar(bytes[position])))'")
        }
    }

    private mutating func parseObject(depth: Int) throws -> JSONObject {
        var object = JSONObject()
        position += 1
        skipWhitespace()
        if try consume(UInt8(ascii: "}")) { return object }
        while true {
            skipWhitespace()
            guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw error("expected a key string") }
            object.keys.append(try parseString())
            skipWhitespace()
            guard try consume(UInt8(ascii: ":")) else { throw error("expected ':' after a key") }
            skipWhitespace()
            object.values.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if try consume(UInt8(ascii: "}")) { return object }
            guard try consume(UInt8(ascii: ",")) else { throw error("expected ',' or '}' in an object") }
        }
    }

    private mutating func parseArray(depth: Int) throws -> [JSONValue] {
        var array: [JSONValue] = []
        position += 1
        skipWhitespace()
        if try consume(UInt8(ascii: "]")) { return array }
        while true {
            skipWhitespace()
            array.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            if try consume(UInt8(ascii: "]")) { return array }
            guard try consume(UInt8(ascii: ",")) else { throw error("expected ',' or ']' in an array") }
        }
    }

    /// Reads a string starting at its opening quote. Strings without escapes are made straight from the bytes.
    private mutating func parseString() throws -> String {
        position += 1
        let start = position
        while position < bytes.count {
            let byte = bytes[position]
            if byte == UInt8(ascii: "\"") {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
                position += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { return try parseEscapedString(prefix: bytes[start..<position]) }
            if byte < 0x20 { throw error("control character inside a string") }
            position += 1
        }
        throw error("unterminated string")
    }

    private mutating func parseEscapedString(prefix: Slice<UnsafeBufferPointer<UInt8>>) throws -> String {
        var buffer = [UInt8](prefix)
        while position < bytes.count {
            let byte = bytes[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(decoding: buffer, as: UTF8.self)
            case UInt8(ascii: "\\"):
                try appendEscape(to: &buffer)
            case 0..<0x20:
                throw error("control character inside a string")
            default:
                buffer.append(byte)
            }
        }
        throw error("unterminated string")
    }

    private mutating func appendEscape(to buffer: inout [UInt8]) throws {
        guard position < bytes.count else { throw error("unterminated escape") }
        let escape = bytes[position]
        position += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(escape)
        case UInt8(ascii: "b"): buffer.append(0x08)
        case UInt8(ascii: "f"): buffer.append(0x0C)
        case UInt8(ascii: "n"): buffer.append(0x0A)
        case UInt8(ascii: "r"): buffer.append(0x0D)
        case UInt8(ascii: "t"): buffer.append(0x09)
        case UInt8(ascii: "u"):
            var code = try parseHex4()
            if (0xD800..<0xDC00).contains(code), bytes[position...].starts(with: [0x5C, 0x75]) {  // "\u" low half
                position += 2
                let low = try parseHex4()
                guard (0xDC00..<0xE000).contains(low) else { throw error("invalid surrogate pair") }
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            }
            let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"  // a lone surrogate becomes U+FFFD
            buffer.append(contentsOf: String(Character(scalar)).utf8)
        default:
            throw error("invalid escape '\\\(Character(Unicode.Scalar(escape)))'")
        }
    }

    private mutating func parseHex4() throws -> UInt32 {
        guard position + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in \\u escape")
            }
            value = value << 4 | UInt32(digit)
            position += 1
        }
        return value
    }

    /// Integers of up to 15 digits are converted exactly by hand (token ids); anything else goes through `Double`.
    private mutating func parseNumber() throws -> Double {
        let start = position
        var isSmallInteger = true
        if bytes[position] == UInt8(ascii: "-") { position += 1 }
        let digitsStart = position
        skipDigits()
        guard position > digitsStart else { throw error("expected digits in a number") }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            isSmallInteger = false
            position += 1
            skipDigits()
        }
        if position < bytes.count, bytes[position] | 0x20 == UInt8(ascii: "e") {
            isSmallInteger = false
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") {
                position += 1
            }
            skipDigits()
        }
        if isSmallInteger, position - digitsStart <= 15 {
            var value = 0
            for index in digitsStart..<position { value = value * 10 + Int(bytes[index] - UInt8(ascii: "0")) }
            return Double(bytes[start] == UInt8(ascii: "-") ? -value : value)
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
        guard let value = Double(text) else { throw error("invalid number '\(text)'") }
        return value
    }

    private mutating func skipDigits() {
        while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
    }

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x09, 0x0A, 0x0D: position += 1
            default: return
            }
        }
    }

    private mutating func consume(_ byte: UInt8) throws -> Bool {
        guard position < bytes.count else { throw error("unexpected end of file") }
        guard bytes[position] == byte else { return false }
        position += 1
        return true
    }

    private mutating func expectLiteral(_ literal: String) throws {
        guard bytes[position...].starts(with: literal.utf8) else { throw error("invalid literal") }
        position += literal.utf8.count
    }

    /// An error pointing at the current position as a 1-based line and column.
    private func error(_ reason: String) -> TokenizerError {
        let end = min(position, bytes.count)
        var line = 1
        var lineStart = 0
        for index in 0..<end where bytes[index] == 0x0A {
            line += 1
            lineStart = index + 1
        }
        return .malformedJSON(file: file, line: line, column: end - lineStart + 1, reason: reason)
    }
}

/// The JSON reader behind tokenizer.json, for callers that only need to know whether a document reads (and what its
/// error says): nesting deeper than 512 levels, bad escapes, bad numbers and trailing text are errors naming `file`.
public enum JSONReader {
    /// Parses `data`; returns the number of values in the document.
    @discardableResult
    public static func validate(_ data: Data, file: String) throws -> Int {
        func count(_ v: JSONValue) -> Int {
            switch v {
            case .array(let items): return 1 + items.reduce(0) { $0 + count($1) }
            case .object(let o): return 1 + o.values.reduce(0) { $0 + count($1) }
            default: return 1
            }
        }
        return count(try JSONParser.parse(data, file: file))
    }
}

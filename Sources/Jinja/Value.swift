import Foundation

/// A value of the template language, with Python's semantics as Jinja (and transformers' chat templates) see them:
/// truthiness, equality across int/float, `str()` and `repr()` spellings, JSON as `json.dumps` writes it.
public indirect enum Value: Sendable {
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    /// A string marked safe (`|safe`, jinja2's Markup): plain strings joined to it with `+` or `~` are HTML-escaped.
    case markup(String)
    case array([Value])
    /// A dict in insertion order (as Python's), keys are strings.
    case object([(String, Value)])
    case namespace(Namespace)
    case macro(Macro)
    case function(BuiltinFunction)

    public final class Namespace: @unchecked Sendable {
        var values: [(String, Value)]
        init(_ values: [(String, Value)]) { self.values = values }
        subscript(key: String) -> Value? {
            get { values.first { $0.0 == key }?.1 }
            set {
                if let i = values.firstIndex(where: { $0.0 == key }) { values[i].1 = newValue ?? .none } else { values.append((key, newValue ?? .none)) }
            }
        }
    }

    public struct Macro: Sendable {
        let name: String
        let parameters: [(String, Expr?)]
        let body: [Node]
    }

    public struct BuiltinFunction: @unchecked Sendable {
        let name: String
        let call: ([Value], [(String, Value)]) throws -> Value
    }

    /// Python truthiness.
    public var isTruthy: Bool {
        switch self {
        case .undefined, .none: false
        case .bool(let b): b
        case .int(let i): i != 0
        case .double(let d): d != 0
        case .string(let s), .markup(let s): !s.isEmpty
        case .array(let a): !a.isEmpty
        case .object(let o): !o.isEmpty
        case .namespace, .macro, .function: true
        }
    }

    public var isUndefined: Bool { if case .undefined = self { true } else { false } }

    /// `str(value)` as Jinja prints it (`{{ x }}`): undefined prints nothing, None as "None".
    public var text: String {
        switch self {
        case .undefined: ""
        case .string(let s), .markup(let s): s
        default: repr
        }
    }

    /// Python's `repr`.
    public var repr: String {
        switch self {
        case .undefined: ""
        case .none: "None"
        case .bool(let b): b ? "True" : "False"
        case .int(let i): String(i)
        case .double(let d): Self.pythonFloat(d)
        case .string(let s): Self.pythonQuoted(s)
        case .markup(let s): "Markup(" + Self.pythonQuoted(s) + ")"
        case .array(let a): "[" + a.map(\.repr).joined(separator: ", ") + "]"
        case .object(let o): "{" + o.map { Self.pythonQuoted($0.0) + ": " + $0.1.repr }.joined(separator: ", ") + "}"
        case .namespace(let n): "<Namespace " + n.values.map { "\($0.0)=\($0.1.repr)" }.joined(separator: ", ") + ">"
        case .macro(let m): "<Macro '\(m.name)'>"
        case .function(let f): "<function \(f.name)>"
        }
    }

    static func pythonFloat(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d > 0 ? "inf" : "-inf" }
        if d == d.rounded(), abs(d) < 1e16 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    /// Python's repr of a str: single quotes unless the text holds a single quote and no double quote.
    static func pythonQuoted(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if Character(c) == quote { out += "\\" + String(c) }
                else if c.value < 0x20 || c.value == 0x7f { out += String(format: "\\x%02x", c.value) }
                else { out.unicodeScalars.append(c) }
            }
        }
        return out + String(quote)
    }

    /// `json.dumps(value, ensure_ascii=False, indent=indent, separators=..., sort_keys=...)`.
    public func json(indent: Int? = nil, separators: (String, String)? = nil, sortKeys: Bool = false) throws -> String {
        let (item, key) = separators ?? (indent == nil ? (", ", ": ") : (",", ": "))
        func encode(_ v: Value, depth: Int) throws -> String {
            switch v {
            case .none, .undefined: return "null"
            case .bool(let b): return b ? "true" : "false"
            case .int(let i): return String(i)
            case .double(let d):
                if d.isNaN { return "NaN" }
                if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
                return Self.pythonFloat(d)
            case .string(let s), .markup(let s): return Self.jsonQuoted(s)
            case .array(let a):
                if a.isEmpty { return "[]" }
                let parts = try a.map { try encode($0, depth: depth + 1) }
                return wrap("[", parts, "]", depth)
            case .object(var o):
                if o.isEmpty { return "{}" }
                if sortKeys { o.sort { $0.0 < $1.0 } }
                let parts = try o.map { Self.jsonQuoted($0.0) + key + (try encode($0.1, depth: depth + 1)) }
                return wrap("{", parts, "}", depth)
            case .namespace, .macro, .function:
                throw TemplateError.runtime("Object of type \(v.typeName) is not JSON serializable")
            }
        }
        func wrap(_ open: String, _ parts: [String], _ close: String, _ depth: Int) -> String {
            guard let indent else { return open + parts.joined(separator: item) + close }
            let pad = String(repeating: " ", count: indent * (depth + 1)), end = String(repeating: " ", count: indent * depth)
            return open + "\n" + parts.map { pad + $0 }.joined(separator: item + "\n") + "\n" + end + close
        }
        return try encode(self, depth: 0)
    }

    static func jsonQuoted(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 { out += String(format: "\\u%04x", c.value) } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }

    var typeName: String {
        switch self {
        case .undefined: "Undefined"
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .double: "float"
        case .string: "str"
        case .markup: "Markup"
        case .array: "list"
        case .object: "dict"
        case .namespace: "Namespace"
        case .macro: "Macro"
        case .function: "builtin_function"
        }
    }

    /// A markup value as a plain string (operations other than joining do not keep the mark).
    var plain: Value { if case .markup(let s) = self { return .string(s) }; return self }

    static func htmlEscaped(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&#34;").replacingOccurrences(of: "'", with: "&#39;")
    }

    /// Python `==`.
    static func equal(_ a: Value, _ b: Value) -> Bool {
        switch (a, b) {
        case (.none, .none), (.undefined, .undefined): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
        case (.bool(let x), .int(let y)), (.int(let y), .bool(let x)): return (x ? 1 : 0) == y
        case (.string(let x), .string(let y)), (.markup(let x), .markup(let y)),
             (.string(let x), .markup(let y)), (.markup(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.object(let x), .object(let y)):
            return x.count == y.count && x.allSatisfy { kv in y.contains { $0.0 == kv.0 && equal($0.1, kv.1) } }
        default: return false
        }
    }

    /// Value from JSON (objects keep their key order).
    public static func fromJSON(_ text: String) throws -> Value {
        var parser = JSONReader(Array(text.utf8))
        let v = try parser.value()
        parser.skipSpace()
        guard parser.at == parser.bytes.count else { throw TemplateError.json("trailing characters at byte \(parser.at)") }
        return v
    }
}

/// A small JSON reader that keeps object key order (Python's dicts do, and templates print them in that order) and
/// integers apart from floats (templates print 1 and 1.0 differently), which the tokenizer's JSONParser does not.
struct JSONReader {
    /// Nesting deeper than this is rejected so a hostile file cannot overflow the stack.
    static let maximumDepth = 512
    let bytes: [UInt8]
    var at = 0
    var depth = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func skipSpace() { while at < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[at]) { at += 1 } }

    mutating func value() throws -> Value {
        skipSpace()
        guard at < bytes.count else { throw TemplateError.json("unexpected end") }
        guard depth < Self.maximumDepth else { throw TemplateError.json("nesting deeper than \(Self.maximumDepth) levels at byte \(at)") }
        depth += 1
        defer { depth -= 1 }
        switch bytes[at] {
        case UInt8(ascii: "{"):
            at += 1
            var out: [(String, Value)] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return .object(out) }
            while true {
                skipSpace()
                guard case .string(let k) = try value() else { throw TemplateError.json("object key at byte \(at) is not a string") }
                skipSpace()
                guard at < bytes.count, bytes[at] == UInt8(ascii: ":") else { throw TemplateError.json("expected ':' at byte \(at)") }
                at += 1
                let v = try value()
                if let i = out.firstIndex(where: { $0.0 == k }) { out[i].1 = v } else { out.append((k, v)) }
                skipSpace()
                guard at < bytes.count else { throw TemplateError.json("unexpected end in object") }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                if bytes[at] == UInt8(ascii: "}") { at += 1; return .object(out) }
                throw TemplateError.json("expected ',' or '}' at byte \(at)")
            }
        case UInt8(ascii: "["):
            at += 1
            var out: [Value] = []
            skipSpace()
            if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return .array(out) }
            while true {
                out.append(try value())
                skipSpace()
                guard at < bytes.count else { throw TemplateError.json("unexpected end in array") }
                if bytes[at] == UInt8(ascii: ",") { at += 1; continue }
                if bytes[at] == UInt8(ascii: "]") { at += 1; return .array(out) }
                throw TemplateError.json("expected ',' or ']' at byte \(at)")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .none
        default:
            let start = at
            while at < bytes.count, "+-0123456789.eE".utf8.contains(bytes[at]) { at += 1 }
            let text = String(decoding: bytes[start..<at], as: UTF8.self)
            if !text.contains(where: { ".eE".contains($0) }), let i = Int(text) { return .int(i) }
            guard let d = Double(text) else { throw TemplateError.json("bad value at byte \(start)") }
            return .double(d)
        }
    }

    mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard at + w.count <= bytes.count, Array(bytes[at..<(at + w.count)]) == w else { throw TemplateError.json("bad literal at byte \(at)") }
        at += w.count
    }

    mutating func string() throws -> String {
        at += 1
        var out = [UInt8]()
        while at < bytes.count {
            let b = bytes[at]
            at += 1
            if b == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if b != UInt8(ascii: "\\") { out.append(b); continue }
            guard at < bytes.count else { break }
            let e = bytes[at]
            at += 1
            switch e {
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "u"):
                func hex() throws -> UInt32 {
                    guard at + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[at..<(at + 4)], as: UTF8.self), radix: 16) else {
                        throw TemplateError.json("bad \\u escape at byte \(at)")
                    }
                    at += 4
                    return v
                }
                var code = try hex()
                if (0xD800..<0xDC00).contains(code), at + 1 < bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") {
                    at += 2
                    let low = try hex()
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                out += Array(String(Character(Unicode.Scalar(code) ?? "\u{FFFD}")).utf8)
            default: out.append(e)
            }
        }
        throw TemplateError.json("unterminated string")
    }
}

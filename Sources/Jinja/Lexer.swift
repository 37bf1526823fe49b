import Foundation

enum Token: Equatable {
    case text(String)
    case beginOutput, endOutput, beginStatement, endStatement
    case name(String)
    case string(String)
    case int(Int)
    case double(Double)
    case op(String)
    case end
}

/// Splits template source into text and tag tokens, applying transformers' settings (trim_blocks, lstrip_blocks,
/// no kept trailing newline) and the `-` whitespace controls.
struct Lexer {
    let source: [Character]
    var at = 0
    var line = 1
    var tokens: [(Token, Int)] = []

    init(_ text: String) {
        var s = text
        if s.hasSuffix("\n") { s.removeLast() }   // keep_trailing_newline=False
        source = Array(s)
    }

    func peek(_ s: String, at i: Int) -> Bool {
        var j = i
        for c in s {
            guard j < source.count, source[j] == c else { return false }
            j += 1
        }
        return true
    }

    mutating func run() throws -> [(Token, Int)] {
        var text = ""
        var textStart = 0   // source index where `text` began
        var trimNextNewline = false, stripNextWhitespace = false
        func flushText(stripTrailing: Bool, lstrip: Bool) {
            if stripTrailing {
                while let last = text.last, last.isWhitespace { text.removeLast() }
            } else if lstrip {
                // lstrip_blocks: spaces and tabs from the start of the line up to the tag.
                var trimmed = text
                while let last = trimmed.last, last == " " || last == "\t" { trimmed.removeLast() }
                let startsLine = textStart == 0 || source[textStart - 1] == "\n"
                if (trimmed.isEmpty && startsLine) || trimmed.last == "\n" { text = trimmed }
            }
            if !text.isEmpty { tokens.append((.text(text), line)) }
            text = ""
        }
        func noteStart() { if text.isEmpty { textStart = at } }
        while at < source.count {
            let c = source[at]
            if c == "{", at + 1 < source.count, "{%#".contains(source[at + 1]) {
                let kind = source[at + 1]
                var i = at + 2
                var minus = false, plus = false
                if i < source.count, source[i] == "-" { minus = true; i += 1 } else if i < source.count, source[i] == "+" { plus = true; i += 1 }
                flushText(stripTrailing: minus, lstrip: kind != "{" && !plus && !minus)
                at = i
                if kind == "#" {
                    // Comment: skip to #}.
                    while at < source.count && !peek("#}", at: at) && !peek("-#}", at: at) {
                        if source[at] == "\n" { line += 1 }
                        at += 1
                    }
                    guard at < source.count else { throw TemplateError.syntax("unclosed comment", line: line) }
                    stripNextWhitespace = source[at] == "-"
                    at += stripNextWhitespace ? 3 : 2
                    trimNextNewline = true
                } else {
                    let closing: String = kind == "{" ? "}}" : "%}"
                    tokens.append((kind == "{" ? .beginOutput : .beginStatement, line))
                    var rawBlock = false
                    if kind == "%" {
                        // {% raw %} ... {% endraw %} passes text through.
                        var j = at
                        while j < source.count, source[j].isWhitespace { j += 1 }
                        if peek("raw", at: j) { rawBlock = true }
                    }
                    try lexTag(closing: closing)
                    guard at < source.count else { throw TemplateError.syntax("unclosed tag", line: line) }
                    stripNextWhitespace = source[at] == "-"
                    at += stripNextWhitespace ? 3 : 2
                    tokens.append((kind == "{" ? .endOutput : .endStatement, line))
                    trimNextNewline = kind == "%"
                    if rawBlock {
                        tokens.removeLast(3)   // begin, name raw, end
                        var raw = ""
                        while at < source.count {
                            if peek("{%", at: at) {
                                var j = at + 2
                                if j < source.count, source[j] == "-" { j += 1 }
                                while j < source.count, source[j].isWhitespace { j += 1 }
                                if peek("endraw", at: j) {
                                    while at < source.count, !peek("%}", at: at) { at += 1 }
                                    at += 2
                                    break
                                }
                            }
                            if trimNextNewline && raw.isEmpty && source[at] == "\n" { trimNextNewline = false; at += 1; continue }
                            raw.append(source[at])
                            at += 1
                        }
                        tokens.append((.text(raw), line))
                        trimNextNewline = true
                    }
                }
                continue
            }
            if stripNextWhitespace {
                if c.isWhitespace { if c == "\n" { line += 1 }; at += 1; continue }
                stripNextWhitespace = false
            }
            if trimNextNewline {
                trimNextNewline = false
                if c == "\n" { line += 1; at += 1; continue }
            }
            if c == "\n" { line += 1 }
            noteStart()
            text.append(c)
            at += 1
        }
        flushText(stripTrailing: false, lstrip: false)
        tokens.append((.end, line))
        return tokens
    }

    mutating func lexTag(closing: String) throws {
        while at < source.count {
            let c = source[at]
            if peek(closing, at: at) || (c == "-" && peek(closing, at: at + 1)) { return }
            if c.isWhitespace { if c == "\n" { line += 1 }; at += 1; continue }
            if c.isLetter || c == "_" {
                var word = ""
                while at < source.count, source[at].isLetter || source[at].isNumber || source[at] == "_" { word.append(source[at]); at += 1 }
                tokens.append((.name(word), line))
                continue
            }
            if c.isNumber {
                var num = ""
                while at < source.count, source[at].isNumber || source[at] == "_" { if source[at] != "_" { num.append(source[at]) }; at += 1 }
                if at + 1 < source.count, source[at] == ".", source[at + 1].isNumber {
                    num.append("."); at += 1
                    while at < source.count, source[at].isNumber { num.append(source[at]); at += 1 }
                    tokens.append((.double(Double(num) ?? 0), line))
                } else {
                    tokens.append((.int(Int(num) ?? 0), line))
                }
                continue
            }
            if c == "'" || c == "\"" {
                at += 1
                var s = ""
                while at < source.count, source[at] != c {
                    if source[at] == "\\", at + 1 < source.count {
                        at += 1
                        switch source[at] {
                        case "n": s.append("\n")
                        case "t": s.append("\t")
                        case "r": s.append("\r")
                        case "\\": s.append("\\")
                        case "'": s.append("'")
                        case "\"": s.append("\"")
                        case "u":
                            let hex = String(source[(at + 1)..<min(source.count, at + 5)])
                            if let v = UInt32(hex, radix: 16), let scalar = Unicode.Scalar(v) { s.unicodeScalars.append(scalar); at += 4 }
                        default: s.append("\\"); s.append(source[at])
                        }
                        at += 1
                        continue
                    }
                    if source[at] == "\n" { line += 1 }
                    s.append(source[at])
                    at += 1
                }
                guard at < source.count else { throw TemplateError.syntax("unterminated string", line: line) }
                at += 1
                tokens.append((.string(s), line))
                continue
            }
            var matched = false
            for op in ["**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|", "="] where peek(op, at: at) {
                tokens.append((.op(op), line))
                at += op.count
                matched = true
                break
            }
            if matched { continue }
            throw TemplateError.syntax("unexpected character '\(c)'", line: line)
        }
    }
}

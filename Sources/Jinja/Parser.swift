import Foundation

public enum TemplateError: Error, CustomStringConvertible, Equatable {
    case syntax(String, line: Int)
    case runtime(String)
    /// `raise_exception(message)` in the template.
    case raised(String)
    case json(String)

    public var description: String {
        switch self {
        case .syntax(let m, let line): "template syntax error, line \(line): \(m)"
        case .runtime(let m): "template error: \(m)"
        case .raised(let m): "the chat template refused these messages: \(m)"
        case .json(let m): "invalid JSON: \(m)"
        }
    }
}

// MARK: - Syntax tree

indirect enum Expr: @unchecked Sendable {
    case literal(Value)
    case name(String)
    case list([Expr])
    case dict([(Expr, Expr)])
    case attribute(Expr, String)
    case subscriptAt(Expr, Expr)
    case slice(Expr, Expr?, Expr?, Expr?)
    case call(Expr, [Expr], [(String, Expr)])
    case filter(Expr, String, [Expr], [(String, Expr)])
    case test(Expr, String, [Expr], negated: Bool)
    case unary(String, Expr)
    case binary(String, Expr, Expr)
    case conditional(Expr, condition: Expr, otherwise: Expr?)
}

indirect enum Node: @unchecked Sendable {
    case text(String)
    case output(Expr)
    case forLoop(targets: [String], iterable: Expr, condition: Expr?, body: [Node], otherwise: [Node], recursive: Bool)
    case ifBlock([(Expr, [Node])], otherwise: [Node])
    case set(target: Expr, value: Expr)
    case setBlock(name: String, body: [Node])
    case macro(name: String, parameters: [(String, Expr?)], body: [Node])
    case callBlock(call: Expr, body: [Node])
    case filterBlock(name: String, args: [Expr], body: [Node])
    case breakLoop
    case continueLoop
    /// transformers' `{% generation %}` marks assistant text; it renders its body unchanged.
    case generation([Node])
}

// MARK: - Lexer

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

// MARK: - Parser

struct Parser {
    var tokens: [(Token, Int)]
    var at = 0

    init(_ tokens: [(Token, Int)]) { self.tokens = tokens }

    var token: Token { tokens[at].0 }
    var line: Int { tokens[at].1 }

    mutating func advance() { if at < tokens.count - 1 { at += 1 } }

    func error(_ m: String) -> TemplateError { .syntax(m, line: line) }

    mutating func expect(_ t: Token) throws {
        guard token == t else { throw error("expected \(t), found \(token)") }
        advance()
    }

    mutating func expectName(_ n: String) throws {
        guard token == .name(n) else { throw error("expected '\(n)', found \(token)") }
        advance()
    }

    mutating func accept(_ t: Token) -> Bool {
        if token == t { advance(); return true }
        return false
    }

    /// Parses nodes until one of the statement keywords `until` (left unconsumed, after `{%`) or the end.
    mutating func nodes(until: Set<String> = []) throws -> [Node] {
        var out: [Node] = []
        while true {
            switch token {
            case .end:
                if !until.isEmpty { throw error("missing {% \(until.sorted().joined(separator: " / ")) %}") }
                return out
            case .text(let t):
                out.append(.text(t))
                advance()
            case .beginOutput:
                advance()
                out.append(.output(try expression()))
                try expect(.endOutput)
            case .beginStatement:
                if case .name(let kw) = tokens[at + 1].0, until.contains(kw) { return out }
                advance()
                out.append(try statement())
            default:
                throw error("unexpected \(token)")
            }
        }
    }

    mutating func endTag(_ name: String) throws {
        try expect(.beginStatement)
        try expectName(name)
        try expect(.endStatement)
    }

    mutating func statement() throws -> Node {
        guard case .name(let kw) = token else { throw error("expected a statement, found \(token)") }
        advance()
        switch kw {
        case "for":
            var targets: [String] = []
            repeat {
                guard case .name(let n) = token else { throw error("expected a loop variable") }
                targets.append(n)
                advance()
            } while accept(.op(","))
            try expectName("in")
            let iterable = try expression(noConditional: true)
            var condition: Expr?
            if accept(.name("if")) { condition = try expression(noConditional: true) }
            let recursive = accept(.name("recursive"))
            try expect(.endStatement)
            let body = try nodes(until: ["else", "endfor"])
            var otherwise: [Node] = []
            if tokens[at + 1].0 == .name("else") {
                advance(); advance()
                try expect(.endStatement)
                otherwise = try nodes(until: ["endfor"])
            }
            try endTag("endfor")
            return .forLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise, recursive: recursive)
        case "if":
            var branches: [(Expr, [Node])] = []
            var condition = try expression()
            try expect(.endStatement)
            var otherwise: [Node] = []
            while true {
                let body = try nodes(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                advance()   // {%
                guard case .name(let next) = token else { throw error("bad if block") }
                advance()
                if next == "elif" {
                    condition = try expression()
                    try expect(.endStatement)
                    continue
                }
                try expect(.endStatement)
                if next == "else" {
                    otherwise = try nodes(until: ["endif"])
                    try endTag("endif")
                }
                break
            }
            return .ifBlock(branches, otherwise: otherwise)
        case "set":
            var target = try primary()
            while accept(.op(".")) {
                guard case .name(let attr) = token else { throw error("expected an attribute name") }
                advance()
                target = .attribute(target, attr)
            }
            if accept(.op("=")) {
                let value = try expression()
                try expect(.endStatement)
                return .set(target: target, value: value)
            }
            guard case .name(let n) = target else { throw error("block set needs a name") }
            try expect(.endStatement)
            let body = try nodes(until: ["endset"])
            try endTag("endset")
            return .setBlock(name: n, body: body)
        case "macro":
            guard case .name(let name) = token else { throw error("expected a macro name") }
            advance()
            try expect(.op("("))
            var params: [(String, Expr?)] = []
            while !accept(.op(")")) {
                guard case .name(let p) = token else { throw error("expected a parameter name") }
                advance()
                var def: Expr?
                if accept(.op("=")) { def = try expression() }
                params.append((p, def))
                _ = accept(.op(","))
            }
            try expect(.endStatement)
            let body = try nodes(until: ["endmacro"])
            try endTag("endmacro")
            return .macro(name: name, parameters: params, body: body)
        case "call":
            let call = try expression()
            try expect(.endStatement)
            let body = try nodes(until: ["endcall"])
            try endTag("endcall")
            return .callBlock(call: call, body: body)
        case "filter":
            guard case .name(let name) = token else { throw error("expected a filter name") }
            advance()
            var args: [Expr] = []
            if accept(.op("(")) {
                while !accept(.op(")")) { args.append(try expression()); _ = accept(.op(",")) }
            }
            try expect(.endStatement)
            let body = try nodes(until: ["endfilter"])
            try endTag("endfilter")
            return .filterBlock(name: name, args: args, body: body)
        case "break":
            try expect(.endStatement)
            return .breakLoop
        case "continue":
            try expect(.endStatement)
            return .continueLoop
        case "generation":
            try expect(.endStatement)
            let body = try nodes(until: ["endgeneration"])
            try endTag("endgeneration")
            return .generation(body)
        default:
            throw error("unknown statement '\(kw)'")
        }
    }

    // Expressions, with Jinja's precedence: conditional < or < and < not < comparisons/tests < + - < ~ < * / // %
    // < ** < unary < postfix (attributes, subscripts, calls, filters).

    mutating func expression(noConditional: Bool = false) throws -> Expr {
        let value = try orExpr()
        if noConditional { return value }
        if accept(.name("if")) {
            let condition = try orExpr()
            var otherwise: Expr?
            if accept(.name("else")) { otherwise = try expression() }
            return .conditional(value, condition: condition, otherwise: otherwise)
        }
        return value
    }

    mutating func orExpr() throws -> Expr {
        var left = try andExpr()
        while accept(.name("or")) { left = .binary("or", left, try andExpr()) }
        return left
    }

    mutating func andExpr() throws -> Expr {
        var left = try notExpr()
        while accept(.name("and")) { left = .binary("and", left, try notExpr()) }
        return left
    }

    mutating func notExpr() throws -> Expr {
        if accept(.name("not")) { return .unary("not", try notExpr()) }
        return try compare()
    }

    mutating func compare() throws -> Expr {
        var left = try additive()
        while true {
            if case .op(let op) = token, ["==", "!=", "<", ">", "<=", ">="].contains(op) {
                advance()
                left = .binary(op, left, try additive())
            } else if token == .name("in") {
                advance()
                left = .binary("in", left, try additive())
            } else if token == .name("not"), tokens[at + 1].0 == .name("in") {
                advance(); advance()
                left = .binary("not in", left, try additive())
            } else {
                return left
            }
        }
    }

    mutating func additive() throws -> Expr {
        var left = try concat()
        while case .op(let op) = token, op == "+" || op == "-" {
            advance()
            left = .binary(op, left, try concat())
        }
        return left
    }

    mutating func concat() throws -> Expr {
        var left = try multiplicative()
        while accept(.op("~")) { left = .binary("~", left, try multiplicative()) }
        return left
    }

    mutating func multiplicative() throws -> Expr {
        var left = try power()
        while case .op(let op) = token, ["*", "/", "//", "%"].contains(op) {
            advance()
            left = .binary(op, left, try power())
        }
        return left
    }

    mutating func power() throws -> Expr {
        let left = try unary()
        if accept(.op("**")) { return .binary("**", left, try unary()) }
        return left
    }

    mutating func unary() throws -> Expr {
        if accept(.op("-")) { return .unary("-", try unary()) }
        if accept(.op("+")) { return try unary() }
        return try postfix(try primary())
    }

    mutating func arguments() throws -> ([Expr], [(String, Expr)]) {
        var args: [Expr] = [], kwargs: [(String, Expr)] = []
        while !accept(.op(")")) {
            if case .name(let n) = token, tokens[at + 1].0 == .op("=") {
                advance(); advance()
                kwargs.append((n, try expression()))
            } else {
                args.append(try expression())
            }
            if !accept(.op(",")) {
                try expect(.op(")"))
                break
            }
        }
        return (args, kwargs)
    }

    mutating func postfix(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            if accept(.op(".")) {
                guard case .name(let n) = token else {
                    if case .int(let i) = token { advance(); e = .subscriptAt(e, .literal(.int(i))); continue }
                    throw error("expected an attribute name")
                }
                advance()
                e = .attribute(e, n)
            } else if accept(.op("[")) {
                var parts: [Expr?] = [nil]
                var isSlice = false
                while !accept(.op("]")) {
                    if accept(.op(":")) { isSlice = true; parts.append(nil); continue }
                    parts[parts.count - 1] = try expression()
                }
                if isSlice {
                    while parts.count < 3 { parts.append(nil) }
                    e = .slice(e, parts[0], parts[1], parts[2])
                } else {
                    guard let index = parts[0] else { throw error("empty subscript") }
                    e = .subscriptAt(e, index)
                }
            } else if accept(.op("(")) {
                let (args, kwargs) = try arguments()
                e = .call(e, args, kwargs)
            } else if accept(.op("|")) {
                guard case .name(let f) = token else { throw error("expected a filter name") }
                advance()
                var args: [Expr] = [], kwargs: [(String, Expr)] = []
                if accept(.op("(")) { (args, kwargs) = try arguments() }
                e = .filter(e, f, args, kwargs)
            } else if token == .name("is") {
                advance()
                let negated = accept(.name("not"))
                guard case .name(let t) = token else { throw error("expected a test name") }
                advance()
                var args: [Expr] = []
                if accept(.op("(")) {
                    args = try arguments().0
                } else if startsPrimary {
                    args = [try primary()]
                }
                e = .test(e, t, args, negated: negated)
            } else {
                return e
            }
        }
    }

    /// A test's single argument without parentheses (`x is divisibleby 3`, `x is equalto 'a'`).
    var startsPrimary: Bool {
        switch token {
        case .string, .int, .double: true
        case .name(let n): !["and", "or", "else", "if", "in", "is", "not", "recursive"].contains(n)
        default: false
        }
    }

    mutating func primary() throws -> Expr {
        let t = token
        advance()
        switch t {
        case .string(var s):
            while case .string(let more) = token { s += more; advance() }   // adjacent literals concatenate
            return .literal(.string(s))
        case .int(let i): return .literal(.int(i))
        case .double(let d): return .literal(.double(d))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            let e = try expression()
            if accept(.op(",")) {
                var items = [e]
                while !accept(.op(")")) { items.append(try expression()); _ = accept(.op(",")) }
                return .list(items)
            }
            try expect(.op(")"))
            return e
        case .op("["):
            var items: [Expr] = []
            while !accept(.op("]")) { items.append(try expression()); _ = accept(.op(",")) }
            return .list(items)
        case .op("{"):
            var pairs: [(Expr, Expr)] = []
            while !accept(.op("}")) {
                let k = try expression()
                try expect(.op(":"))
                pairs.append((k, try expression()))
                _ = accept(.op(","))
            }
            return .dict(pairs)
        default:
            at -= 1
            throw error("unexpected \(t)")
        }
    }
}

import Foundation

struct Parser {
    var tokens: [(Token, Int)]
    var at = 0
    /// How deeply the expression or block being parsed nests (parentheses, brackets, unary operators, chains of
    /// operators and attributes, blocks inside blocks): past `maximumDepth` a template is refused, so neither this
    /// recursive parser nor the interpreter's recursive evaluation can run out of stack.
    var depth = 0
    static let maximumDepth = 200

    /// One level deeper (the caller restores it, or the enclosing `nesting` does).
    mutating func enter() throws {
        depth += 1
        guard depth <= Self.maximumDepth else { throw error("the template nests deeper than \(Self.maximumDepth) levels") }
    }

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
        try enter()
        defer { depth -= 1 }
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
        try enter()
        defer { depth -= 1 }
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

    /// Parses one construct, restoring the depth when it ends: inside, each `enter()` is one level (a left-deep
    /// chain `a op b op c ...` is as deep as it is long, so each link enters).
    mutating func nesting<T>(_ body: (inout Parser) throws -> T) throws -> T {
        let base = depth
        defer { depth = base }
        return try body(&self)
    }

    mutating func orExpr() throws -> Expr {
        try nesting { p in
            var left = try p.andExpr()
            while p.accept(.name("or")) { try p.enter(); left = .binary("or", left, try p.andExpr()) }
            return left
        }
    }

    mutating func andExpr() throws -> Expr {
        try nesting { p in
            var left = try p.notExpr()
            while p.accept(.name("and")) { try p.enter(); left = .binary("and", left, try p.notExpr()) }
            return left
        }
    }

    mutating func notExpr() throws -> Expr {
        if accept(.name("not")) {
            try enter()
            defer { depth -= 1 }
            return .unary("not", try notExpr())
        }
        return try compare()
    }

    mutating func compare() throws -> Expr {
        try nesting { p in try p.comparisons() }
    }

    mutating func comparisons() throws -> Expr {
        var left = try additive()
        while true {
            if case .op(let op) = token, ["==", "!=", "<", ">", "<=", ">="].contains(op) {
                try enter()
                advance()
                left = .binary(op, left, try additive())
            } else if token == .name("in") {
                try enter()
                advance()
                left = .binary("in", left, try additive())
            } else if token == .name("not"), tokens[at + 1].0 == .name("in") {
                try enter()
                advance(); advance()
                left = .binary("not in", left, try additive())
            } else {
                return left
            }
        }
    }

    mutating func additive() throws -> Expr {
        try nesting { p in
            var left = try p.concat()
            while case .op(let op) = p.token, op == "+" || op == "-" {
                try p.enter()
                p.advance()
                left = .binary(op, left, try p.concat())
            }
            return left
        }
    }

    mutating func concat() throws -> Expr {
        try nesting { p in
            var left = try p.multiplicative()
            while p.accept(.op("~")) { try p.enter(); left = .binary("~", left, try p.multiplicative()) }
            return left
        }
    }

    mutating func multiplicative() throws -> Expr {
        try nesting { p in
            var left = try p.power()
            while case .op(let op) = p.token, ["*", "/", "//", "%"].contains(op) {
                try p.enter()
                p.advance()
                left = .binary(op, left, try p.power())
            }
            return left
        }
    }

    mutating func power() throws -> Expr {
        let left = try unary()
        if accept(.op("**")) {
            try enter()
            defer { depth -= 1 }
            return .binary("**", left, try unary())
        }
        return left
    }

    mutating func unary() throws -> Expr {
        if case .op(let sign) = token, sign == "-" || sign == "+" {
            advance()
            try enter()
            defer { depth -= 1 }
            let operand = try unary()
            return sign == "-" ? .unary("-", operand) : operand
        }
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
        try nesting { p in try p.postfixes(base) }
    }

    mutating func postfixes(_ base: Expr) throws -> Expr {
        var e = base
        while true {
            if case .op(let op) = token, [".", "[", "(", "|"].contains(op) { try enter() }
            if token == .name("is") { try enter() }
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

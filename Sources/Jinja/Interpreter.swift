import Foundation

/// Evaluates a parsed template as jinja2 does under transformers' chat-template environment: Python semantics for
/// values, the filters, tests, globals and str/dict/list methods chat templates use, `loop` variables, scoping
/// (assignments inside a loop stay in the loop; `namespace` carries state out), macros, loop controls.
final class Interpreter {
    var scopes: [[String: Value]]
    var output = ""

    /// Limits a hostile template meets as an error: statements and loop turns run, macro calls nested, characters in
    /// any one string (the output included), items one `range` makes.
    static let maximumSteps = 1_000_000
    static let maximumCallDepth = 64
    static let maximumStringBytes = 16 << 20
    static let maximumRange = 1_000_000
    var steps = 0
    var callDepth = 0

    func step() throws {
        steps += 1
        if steps > Self.maximumSteps { throw TemplateError.runtime("the template ran more than \(Self.maximumSteps) steps") }
    }

    /// A filter's or a call's result, refused when it is a string past the size limit (`replace` and `join` in a
    /// loop can grow one as fast as `~`).
    func bounded(_ v: Value) throws -> Value {
        if case .string(let s) = v { _ = try checked(s) }
        if case .markup(let s) = v { _ = try checked(s) }
        return v
    }

    /// A string the template made, refused past the size limit.
    func checked(_ s: String) throws -> String {
        guard s.utf8.count <= Self.maximumStringBytes else {
            throw TemplateError.runtime("a string of \(s.utf8.count) bytes is too long (the limit is \(Self.maximumStringBytes))")
        }
        return s
    }

    enum Control: Error { case breakLoop, continueLoop }

    init(globals: [String: Value], options: RenderOptions = RenderOptions()) {
        var builtins = Self.builtins
        builtins["strftime_now"] = Self.strftimeNow(options)
        scopes = [builtins, globals]
    }

    func render(_ nodes: [Node]) throws -> String {
        try run(nodes)
        return output
    }

    // MARK: Scopes

    func lookup(_ name: String) -> Value {
        for scope in scopes.reversed() { if let v = scope[name] { return v } }
        return .undefined(name)
    }

    func assign(_ name: String, _ value: Value) { scopes[scopes.count - 1][name] = value }

    func scoped<T>(_ vars: [String: Value], _ body: () throws -> T) rethrows -> T {
        scopes.append(vars)
        defer { scopes.removeLast() }
        return try body()
    }

    // MARK: Statements

    func run(_ nodes: [Node]) throws {
        for node in nodes { try run(node) }
    }

    func capture(_ nodes: [Node]) throws -> String {
        let saved = output
        output = ""
        defer { output = saved }
        try run(nodes)
        return output
    }

    func run(_ node: Node) throws {
        try step()
        switch node {
        case .text(let t):
            output += t
            _ = try checked(output)
        case .output(let e):
            output += try eval(e).text
            _ = try checked(output)
        case .ifBlock(let branches, let otherwise):
            for (condition, body) in branches where try eval(condition).isTruthy {
                try run(body)
                return
            }
            try run(otherwise)
        case .forLoop(let targets, let iterable, let condition, let body, let otherwise, _):
            let items = try iterate(try eval(iterable))
            var selected: [Value] = []
            for item in items {
                if let condition {
                    let ok = try scoped(bind(targets, item)) { try eval(condition).isTruthy }
                    if !ok { continue }
                }
                selected.append(item)
            }
            if selected.isEmpty { try run(otherwise); return }
            for (i, item) in selected.enumerated() {
                try step()
                var vars = try bind(targets, item)
                let n = selected.count
                vars["loop"] = .object([
                    ("index", .int(i + 1)), ("index0", .int(i)), ("revindex", .int(n - i)), ("revindex0", .int(n - i - 1)),
                    ("first", .bool(i == 0)), ("last", .bool(i == n - 1)), ("length", .int(n)),
                    ("previtem", i > 0 ? selected[i - 1] : .undefined("previtem")),
                    ("nextitem", i + 1 < n ? selected[i + 1] : .undefined("nextitem")),
                    ("depth", .int(1)), ("depth0", .int(0)),
                ])
                do {
                    try scoped(vars) { try run(body) }
                } catch Control.continueLoop {
                    continue
                } catch Control.breakLoop {
                    break
                }
            }
        case .set(let target, let valueExpr):
            let value = try eval(valueExpr)
            switch target {
            case .name(let n): assign(n, value)
            case .attribute(let base, let attr):
                guard case .namespace(let ns) = try eval(base) else { throw TemplateError.runtime("cannot assign attribute '\(attr)' of a non-namespace") }
                ns[attr] = value
            case .list(let names):
                let items = try iterate(value)
                guard items.count == names.count else { throw TemplateError.runtime("cannot unpack \(items.count) values into \(names.count)") }
                for (nameExpr, item) in zip(names, items) {
                    guard case .name(let n) = nameExpr else { throw TemplateError.runtime("bad assignment target") }
                    assign(n, item)
                }
            default: throw TemplateError.runtime("bad assignment target")
            }
        case .setBlock(let name, let body):
            assign(name, .string(try capture(body)))
        case .macro(let name, let parameters, let body):
            assign(name, .macro(Value.Macro(name: name, parameters: parameters, body: body)))
        case .callBlock(let call, let body):
            let caller = Value.function(Value.BuiltinFunction(name: "caller") { [unowned self] _, _ in .string(try self.capture(body)) })
            try scoped(["caller": caller]) { output += try eval(call).text }
        case .filterBlock(let name, let args, let body):
            let text = Value.string(try capture(body))
            output += try applyFilter(name, text, try args.map(eval), []).text
        case .breakLoop: throw Control.breakLoop
        case .continueLoop: throw Control.continueLoop
        case .generation(let body): try run(body)
        }
    }

    func bind(_ targets: [String], _ item: Value) throws -> [String: Value] {
        if targets.count == 1 { return [targets[0]: item] }
        let parts = try iterate(item)
        guard parts.count == targets.count else { throw TemplateError.runtime("cannot unpack \(parts.count) values into \(targets.count) loop variables") }
        return Dictionary(uniqueKeysWithValues: zip(targets, parts))
    }

    /// What `for` iterates: list items, dict keys, string characters.
    func iterate(_ marked: Value) throws -> [Value] {
        let v = marked.plain
        switch v {
        case .array(let a): return a
        case .object(let o): return o.map { .string($0.0) }
        case .string(let s): return s.map { .string(String($0)) }
        case .undefined: return []
        default: throw TemplateError.runtime("'\(v.typeName)' object is not iterable")
        }
    }

    // MARK: Expressions

    func eval(_ e: Expr) throws -> Value {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items): return .array(try items.map(eval))
        case .dict(let pairs):
            var out: [(String, Value)] = []
            for (k, v) in pairs {
                let key = try eval(k).text
                let value = try eval(v)
                if let i = out.firstIndex(where: { $0.0 == key }) { out[i].1 = value } else { out.append((key, value)) }
            }
            return .object(out)
        case .attribute(let base, let name):
            let b = try eval(base)
            if case .undefined(let what) = b { throw TemplateError.runtime("'\(what)' is undefined (reading .\(name))") }
            return try member(b, name) ?? item(b, .string(name))
        case .subscriptAt(let base, let index):
            let b = try eval(base)
            if case .undefined(let what) = b { throw TemplateError.runtime("'\(what)' is undefined (reading an item)") }
            let i = try eval(index)
            if case .string(let key) = i, case .object = b {
                return try item(b, i).isUndefined ? (try member(b, key) ?? .undefined(key)) : item(b, i)
            }
            return try item(b, i)
        case .slice(let base, let start, let stop, let step):
            return try slice(try eval(base).plain, try start.map(eval), try stop.map(eval), try step.map(eval))
        case .call(let callee, let argExprs, let kwargExprs):
            let args = try argExprs.map(eval)
            let kwargs = try kwargExprs.map { ($0.0, try eval($0.1)) }
            return try bounded(try call(try eval(callee), args, kwargs))
        case .filter(let base, let name, let argExprs, let kwargExprs):
            if name == "default" || name == "d" {
                let v = try? eval(base)
                let fallback = try argExprs.first.map(eval) ?? .string("")
                let boolean = try argExprs.count > 1 ? eval(argExprs[1]).isTruthy : false
                guard let v, !v.isUndefined, !(boolean && !v.isTruthy) else { return fallback }
                return v
            }
            return try bounded(try applyFilter(name, try eval(base), try argExprs.map(eval), try kwargExprs.map { ($0.0, try eval($0.1)) }))
        case .test(let base, let name, let argExprs, let negated):
            let v: Value
            if name == "defined" || name == "undefined" {
                v = (try? eval(base)) ?? .undefined("")
            } else {
                v = try eval(base)
            }
            let r = try test(name, v, try argExprs.map(eval))
            return .bool(negated ? !r : r)
        case .unary(let op, let operand):
            let v = try eval(operand)
            switch (op, v) {
            case ("not", _): return .bool(!v.isTruthy)
            case ("-", .int(let i)):
                guard i != .min else { throw TemplateError.runtime("integer result too large") }
                return .int(-i)
            case ("-", .double(let d)): return .double(-d)
            default: throw TemplateError.runtime("bad operand for unary \(op): '\(v.typeName)'")
            }
        case .binary(let op, let l, let r):
            if op == "and" {
                let a = try eval(l)
                return a.isTruthy ? try eval(r) : a
            }
            if op == "or" {
                let a = try eval(l)
                return a.isTruthy ? a : try eval(r)
            }
            return try binary(op, try eval(l), try eval(r))
        case .conditional(let value, let condition, let otherwise):
            if try eval(condition).isTruthy { return try eval(value) }
            return try otherwise.map(eval) ?? .undefined("")
        }
    }

    func item(_ marked: Value, _ rawIndex: Value) throws -> Value {
        let base = marked.plain, index = rawIndex.plain
        switch (base, index) {
        case (.object(let o), .string(let k)): return o.first { $0.0 == k }?.1 ?? .undefined(k)
        case (.array(let a), .int(var i)):
            if i < 0 { i += a.count }
            return a.indices.contains(i) ? a[i] : .undefined("index \(i)")
        case (.string(let s), .int(var i)):
            let chars = Array(s)
            if i < 0 { i += chars.count }
            return chars.indices.contains(i) ? .string(String(chars[i])) : .undefined("index \(i)")
        case (.namespace(let ns), .string(let k)): return ns[k] ?? .undefined(k)
        case (.undefined(let what), _): throw TemplateError.runtime("'\(what)' is undefined")
        default: return .undefined("\(index.text)")
        }
    }

    func slice(_ base: Value, _ start: Value?, _ stop: Value?, _ step: Value?) throws -> Value {
        // Python's slice: a zero step is an error; bounds beyond the sequence clamp (before any arithmetic, so an
        // extreme bound cannot overflow).
        if case .int(0)? = step { throw TemplateError.runtime("slice step cannot be zero") }
        var count = 0
        func bound(_ v: Value?) -> Int? {
            if case .int(let i)? = v { return max(-count - 1, min(i, count)) }
            return nil
        }
        func indices(_ n: Int) -> [Int] {
            count = n
            var st = 1
            if case .int(let i)? = step { st = i }
            if st > 0 {
                var a = bound(start) ?? 0, b = bound(stop) ?? count
                if a < 0 { a = max(0, a + count) }; if b < 0 { b = max(0, b + count) }
                a = min(a, count); b = min(b, count)
                return a < b ? Array(stride(from: a, to: b, by: st)) : []
            }
            var a = bound(start) ?? count - 1, b = bound(stop) ?? -count - 1
            if a < 0 { a += count }; if b < 0 { b += count }
            a = min(a, count - 1)
            return a > b ? Array(stride(from: a, to: b, by: st)) : []
        }
        switch base {
        case .array(let a): return .array(indices(a.count).map { a[$0] })
        case .string(let s):
            let chars = Array(s)
            return .string(String(indices(chars.count).map { chars[$0] }))
        default: throw TemplateError.runtime("'\(base.typeName)' object is not subscriptable")
        }
    }

    func binary(_ op: String, _ rawA: Value, _ rawB: Value) throws -> Value {
        // Markup joined with a plain string escapes the plain one (jinja2's Markup.__add__ / markup_join).
        if op == "+" || op == "~" {
            switch (rawA, rawB) {
            case (.markup(let x), .markup(let y)): return .markup(x + y)
            case (.markup(let x), _) where op == "~" || { if case .string = rawB { return true }; return false }():
                return .markup(x + Value.htmlEscaped(rawB.text))
            case (_, .markup(let y)) where op == "~" || { if case .string = rawA { return true }; return false }():
                return .markup(Value.htmlEscaped(rawA.text) + y)
            default: break
            }
        }
        let a = rawA.plain, b = rawB.plain
        switch op {
        case "==": return .bool(Value.equal(a, b))
        case "!=": return .bool(!Value.equal(a, b))
        case "<", ">", "<=", ">=":
            let c: Int
            switch (a, b) {
            case (.string(let x), .string(let y)): c = x < y ? -1 : (x == y ? 0 : 1)
            default:
                guard let x = number(a), let y = number(b) else { throw TemplateError.runtime("'\(op)' not supported between '\(a.typeName)' and '\(b.typeName)'") }
                c = x < y ? -1 : (x == y ? 0 : 1)
            }
            switch op {
            case "<": return .bool(c < 0)
            case ">": return .bool(c > 0)
            case "<=": return .bool(c <= 0)
            default: return .bool(c >= 0)
            }
        case "in", "not in":
            let found: Bool
            switch b {
            case .string(let s): found = s.contains(a.text) && { if case .string = a { return true }; return false }()
            case .array(let items): found = items.contains { Value.equal($0, a) }
            case .object(let o): found = o.contains { $0.0 == a.text }
            case .undefined, .none: found = false
            default: throw TemplateError.runtime("argument of type '\(b.typeName)' is not iterable")
            }
            return .bool(op == "in" ? found : !found)
        case "~": return .string(try checked(a.text + b.text))
        case "+":
            switch (a, b) {
            case (.string(let x), .string(let y)): return .string(try checked(x + y))
            case (.array(let x), .array(let y)):
                guard x.count + y.count <= Self.maximumRange else { throw TemplateError.runtime("a list of \(x.count + y.count) items is too long") }
                return .array(x + y)
            case (.int(let x), .int(let y)): return .int(try exact(x.addingReportingOverflow(y)))
            default: break
            }
        case "-":
            if case .int(let x) = a, case .int(let y) = b { return .int(try exact(x.subtractingReportingOverflow(y))) }
        case "*":
            switch (a, b) {
            case (.int(let x), .int(let y)): return .int(try exact(x.multipliedReportingOverflow(by: y)))
            case (.string(let s), .int(let n)), (.int(let n), .string(let s)):
                let (bytes, overflow) = s.utf8.count.multipliedReportingOverflow(by: max(0, n))
                guard !overflow, bytes <= Self.maximumStringBytes else {
                    throw TemplateError.runtime("a string repeated \(n) times is too long (the limit is \(Self.maximumStringBytes) bytes)")
                }
                return .string(String(repeating: s, count: max(0, n)))
            default: break
            }
        case "//":
            if case .int(let x) = a, case .int(let y) = b {
                guard y != 0 else { throw TemplateError.runtime("integer division or modulo by zero (division by zero)") }
                guard !(x == .min && y == -1) else { throw TemplateError.runtime("integer result too large") }
                let q = x / y
                return .int((x % y != 0) && ((x < 0) != (y < 0)) ? q - 1 : q)
            }
        case "%":
            if case .int(let x) = a, case .int(let y) = b {
                guard y != 0 else { throw TemplateError.runtime("integer division or modulo by zero (division by zero)") }
                if y == -1 { return .int(0) }
                let r = x % y
                return .int(r != 0 && ((r < 0) != (y < 0)) ? r + y : r)
            }
            if case .string(let fmt) = a { return .string(try checked(percentFormat(fmt, b))) }
        case "**":
            if case .int(let x) = a, case .int(let y) = b, y >= 0 {
                let p = pow(Double(x), Double(y))
                guard p.magnitude < 9.2e18 else { throw TemplateError.runtime("integer result too large") }
                // Square and multiply: exact, and quick for 1 ** 10**18.
                var result = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 { result = try exact(result.multipliedReportingOverflow(by: base)) }
                    e >>= 1
                    if e > 0 { base = base.multipliedReportingOverflow(by: base).partialValue }
                }
                return .int(result)
            }
        default: break
        }
        if ["/", "//", "%"].contains(op), let y = number(b), y == 0, number(a) != nil {
            throw TemplateError.runtime("float division by zero (division by zero)")
        }
        guard let x = number(a), let y = number(b) else {
            throw TemplateError.runtime("unsupported operand types for \(op): '\(a.typeName)' and '\(b.typeName)'")
        }
        switch op {
        case "+": return .double(x + y)
        case "-": return .double(x - y)
        case "*": return .double(x * y)
        case "/": return .double(x / y)
        case "//": return .double((x / y).rounded(.down))
        case "%": return .double(x - y * (x / y).rounded(.down))
        case "**": return .double(pow(x, y))
        default: throw TemplateError.runtime("unknown operator \(op)")
        }
    }

    /// An integer result, or the error Python would not give (it has big integers; templates never need them).
    func exact(_ r: (partialValue: Int, overflow: Bool)) throws -> Int {
        guard !r.overflow else { throw TemplateError.runtime("integer result too large") }
        return r.partialValue
    }

    func number(_ v: Value) -> Double? {
        switch v {
        case .int(let i): Double(i)
        case .double(let d): d
        case .bool(let b): b ? 1 : 0
        default: nil
        }
    }

    /// `"%s ... %d" % args` for the simple conversions templates use.
    func percentFormat(_ fmt: String, _ arg: Value) -> String {
        var args: [Value] = { if case .array(let a) = arg { return a }; return [arg] }()
        var out = "", chars = Array(fmt), i = 0
        while i < chars.count {
            if chars[i] == "%", i + 1 < chars.count {
                let k = chars[i + 1]
                if k == "%" { out.append("%"); i += 2; continue }
                let v = args.isEmpty ? Value.none : args.removeFirst()
                out += k == "r" ? v.repr : (k == "d" ? (number(v).flatMap { Int(exactly: $0.rounded(.towardZero)) }.map(String.init) ?? v.text) : v.text)
                i += 2
                continue
            }
            out.append(chars[i])
            i += 1
        }
        return out
    }
}

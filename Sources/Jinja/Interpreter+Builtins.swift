import Foundation

/// The built-in behaviour of the template language: str/dict/list methods, calls of macros and globals, filters,
/// tests, and the globals transformers provides.
extension Interpreter {
    // MARK: Calls, members

    func call(_ callee: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value {
        switch callee {
        case .function(let f): return try f.call(args, kwargs)
        case .macro(let m):
            var vars: [String: Value] = [:]
            for (i, (name, def)) in m.parameters.enumerated() {
                if let kw = kwargs.first(where: { $0.0 == name }) { vars[name] = kw.1 }
                else if i < args.count { vars[name] = args[i] }
                else if let def { vars[name] = try eval(def) }
                else { vars[name] = .undefined(name) }
            }
            vars["varargs"] = .array(Array(args.dropFirst(m.parameters.count)))
            if let caller = lookup("caller") as Value?, !caller.isUndefined { vars["caller"] = caller }
            guard callDepth < Self.maximumCallDepth else {
                throw TemplateError.runtime("macro \(m.name) calls nest deeper than \(Self.maximumCallDepth) (recursion)")
            }
            callDepth += 1
            let saved = output
            output = ""
            defer { output = saved; callDepth -= 1 }
            try scoped(vars) { try run(m.body) }
            return .string(output)
        case .undefined(let what): throw TemplateError.runtime("'\(what)' is undefined (called)")
        default: throw TemplateError.runtime("'\(callee.typeName)' object is not callable")
        }
    }

    /// Methods of str, dict and list, and attributes of namespaces (nil: not a member; try an item).
    func member(_ marked: Value, _ name: String) throws -> Value? {
        let base = marked.plain
        func method(_ f: @escaping ([Value], [(String, Value)]) throws -> Value) -> Value {
            .function(Value.BuiltinFunction(name: name, call: f))
        }
        switch base {
        case .namespace(let ns): return ns[name] ?? .undefined(name)
        case .string(let s):
            func chars(_ args: [Value]) -> Set<Character>? { if case .string(let c)? = args.first { return Set(c) }; return nil }
            switch name {
            case "strip": return method { a, _ in .string(Self.strip(s, chars(a), leading: true, trailing: true)) }
            case "lstrip": return method { a, _ in .string(Self.strip(s, chars(a), leading: true, trailing: false)) }
            case "rstrip": return method { a, _ in .string(Self.strip(s, chars(a), leading: false, trailing: true)) }
            case "upper": return method { _, _ in .string(s.uppercased()) }
            case "lower": return method { _, _ in .string(s.lowercased()) }
            case "title": return method { _, _ in .string(Self.title(s)) }
            case "capitalize": return method { _, _ in .string(s.prefix(1).uppercased() + s.dropFirst().lowercased()) }
            case "startswith": return method { a, _ in
                if case .array(let options)? = a.first { return .bool(options.contains { s.hasPrefix($0.text) }) }
                return .bool(s.hasPrefix(a.first?.text ?? ""))
            }
            case "endswith": return method { a, _ in
                if case .array(let options)? = a.first { return .bool(options.contains { s.hasSuffix($0.text) }) }
                return .bool(s.hasSuffix(a.first?.text ?? ""))
            }
            case "split": return method { a, _ in
                let limit: Int? = { if a.count > 1, case .int(let n) = a[1], n >= 0 { return n }; return nil }()
                if let sep = a.first, case .string(let sepText) = sep {
                    var parts = s.components(separatedBy: sepText)
                    if let limit, parts.count > limit + 1 { parts = Array(parts[..<limit]) + [parts[limit...].joined(separator: sepText)] }
                    return .array(parts.map { .string($0) })
                }
                return .array(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
            }
            case "replace": return method { a, _ in
                guard a.count >= 2 else { throw TemplateError.runtime("replace needs two arguments") }
                return .string(s.replacingOccurrences(of: a[0].text, with: a[1].text))
            }
            case "find": return method { a, _ in
                guard let r = s.range(of: a.first?.text ?? "") else { return .int(-1) }
                return .int(s.distance(from: s.startIndex, to: r.lowerBound))
            }
            case "count": return method { a, _ in .int(s.components(separatedBy: a.first?.text ?? "").count - 1) }
            case "join": return method { a, _ in .string(try self.iterate(a.first ?? .array([])).map(\.text).joined(separator: s)) }
            case "format": return method { a, _ in
                var out = s
                for v in a { if let r = out.range(of: "{}") { out.replaceSubrange(r, with: v.text) } }
                return .string(out)
            }
            case "isdigit": return method { _, _ in .bool(!s.isEmpty && s.allSatisfy(\.isNumber)) }
            case "isspace": return method { _, _ in .bool(!s.isEmpty && s.allSatisfy(\.isWhitespace)) }
            default: return nil
            }
        case .object(let o):
            switch name {
            case "items": return method { _, _ in .array(o.map { .array([.string($0.0), $0.1]) }) }
            case "keys": return method { _, _ in .array(o.map { .string($0.0) }) }
            case "values": return method { _, _ in .array(o.map(\.1)) }
            case "get": return method { a, _ in
                let key = a.first?.text ?? ""
                return o.first { $0.0 == key }?.1 ?? (a.count > 1 ? a[1] : .none)
            }
            default: return nil
            }
        case .array(let items):
            switch name {
            case "index": return method { a, _ in
                guard let i = items.firstIndex(where: { Value.equal($0, a.first ?? .none) }) else { throw TemplateError.runtime("value is not in list") }
                return .int(i)
            }
            case "count": return method { a, _ in .int(items.filter { Value.equal($0, a.first ?? .none) }.count) }
            default: return nil
            }
        default: return nil
        }
    }

    static func strip(_ s: String, _ chars: Set<Character>?, leading: Bool, trailing: Bool) -> String {
        let drop: (Character) -> Bool = { c in chars.map { $0.contains(c) } ?? c.isWhitespace }
        var sub = Substring(s)
        if leading { sub = sub.drop(while: drop) }
        if trailing { while let last = sub.last, drop(last) { sub = sub.dropLast() } }
        return String(sub)
    }

    static func title(_ s: String) -> String {
        var out = "", startOfWord = true
        for c in s {
            out += startOfWord ? c.uppercased() : c.lowercased()
            startOfWord = !c.isLetter && !c.isNumber
        }
        return out
    }

    // MARK: Filters and tests

    func applyFilter(_ name: String, _ marked: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value {
        if name == "safe" { return .markup(marked.text) }
        let v = marked.plain
        func kw(_ key: String, _ position: Int) -> Value? { kwargs.first { $0.0 == key }?.1 ?? (position < args.count ? args[position] : nil) }
        switch name {
        case "tojson":
            var indent: Int?
            if case .int(let i)? = kw("indent", 0) { indent = i }
            var separators: (String, String)?
            if case .array(let s)? = kw("separators", 1), s.count == 2 { separators = (s[0].text, s[1].text) }
            return .string(try v.json(indent: indent, separators: separators, sortKeys: kw("sort_keys", 2)?.isTruthy ?? false))
        case "trim": return .string(Self.strip(v.text, nil, leading: true, trailing: true))
        case "upper": return .string(v.text.uppercased())
        case "lower": return .string(v.text.lowercased())
        case "title": return .string(Self.title(v.text))
        case "capitalize": return .string(v.text.prefix(1).uppercased() + v.text.dropFirst().lowercased())
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.count)
            case .array(let a): return .int(a.count)
            case .object(let o): return .int(o.count)
            case .undefined: return .int(0)
            default: throw TemplateError.runtime("object of type '\(v.typeName)' has no len()")
            }
        case "first": return try iterate(v).first ?? .undefined("first")
        case "last": return try iterate(v).last ?? .undefined("last")
        case "join":
            let sep = kw("d", 0)?.text ?? ""
            var items = try iterate(v)
            if let attr = kw("attribute", 1) { items = try items.map { try item($0, attr) } }
            return .string(items.map(\.text).joined(separator: sep))
        case "list": return .array(try iterate(v))
        case "string": return .string(v.text)
        case "int":
            switch v {
            case .int: return v
            case .double(let d): return .int(Int(d))
            case .string(let s): return .int(Int(s.trimmingCharacters(in: .whitespaces)) ?? (kw("default", 0).flatMap { if case .int(let i) = $0 { return i }; return nil } ?? 0))
            case .bool(let b): return .int(b ? 1 : 0)
            default: return .int(0)
            }
        case "float":
            if let d = number(v) { return .double(d) }
            return .double(Double(v.text) ?? 0)
        case "abs":
            if case .int(let i) = v { return .int(abs(i)) }
            return .double(abs(number(v) ?? 0))
        case "round":
            let precision: Int = { if case .int(let p)? = kw("precision", 0) { return p }; return 0 }()
            let scale = pow(10, Double(precision))
            return .double(((number(v) ?? 0) * scale).rounded() / scale)
        case "replace":
            guard args.count >= 2 else { throw TemplateError.runtime("replace needs two arguments") }
            return .string(v.text.replacingOccurrences(of: args[0].text, with: args[1].text))
        case "items":
            guard case .object(let o) = v else { return .array([]) }
            return .array(o.map { .array([.string($0.0), $0.1]) })
        case "dictsort":
            guard case .object(let o) = v else { return .array([]) }
            return .array(o.sorted { $0.0.lowercased() < $1.0.lowercased() }.map { .array([.string($0.0), $0.1]) })
        case "reverse":
            if case .string(let s) = v { return .string(String(s.reversed())) }
            return .array(try iterate(v).reversed())
        case "unique":
            var out: [Value] = []
            for x in try iterate(v) where !out.contains(where: { Value.equal($0, x) }) { out.append(x) }
            return .array(out)
        case "sort":
            let items = try iterate(v)
            let attribute = kw("attribute", 2)
            let reverse = kw("reverse", 0)?.isTruthy ?? false
            let keyed = try items.map { ($0, attribute != nil ? try item($0, attribute!) : $0) }
            let sorted = keyed.sorted { a, b in
                if let x = number(a.1), let y = number(b.1) { return x < y }
                return a.1.text < b.1.text
            }.map(\.0)
            return .array(reverse ? sorted.reversed() : sorted)
        case "sum":
            var total = 0.0, allInts = true
            for x in try iterate(v) { if case .double = x { allInts = false }; total += number(x) ?? 0 }
            return allInts ? .int(Int(total)) : .double(total)
        case "map":
            let items = try iterate(v)
            if let attr = kwargs.first(where: { $0.0 == "attribute" })?.1 {
                return .array(try items.map { try item($0, attr) })
            }
            guard case .string(let filter)? = args.first else { throw TemplateError.runtime("map needs a filter or attribute=") }
            return .array(try items.map { try applyFilter(filter, $0, Array(args.dropFirst()), []) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttr = name.hasSuffix("attr")
            var out: [Value] = []
            for x in v.isTruthy ? try iterate(v) : [] {   // jinja2 selects nothing from a false value (None)
                let subject = byAttr ? try item(x, args.first ?? .none) : x
                let testArgs = Array(args.dropFirst(byAttr ? 1 : 0))
                let passes: Bool
                if case .string(let t)? = testArgs.first {
                    passes = try test(t, subject, Array(testArgs.dropFirst()))
                } else {
                    passes = subject.isTruthy
                }
                if passes == name.hasPrefix("select") { out.append(x) }
            }
            return .array(out)
        case "indent":
            let width: Int = { if case .int(let w)? = kw("width", 0) { return w }; return 4 }()
            let pad = { if case .string(let p)? = kw("width", 0) { return p }; return String(repeating: " ", count: width) }()
            let first = kw("first", 1)?.isTruthy ?? false, blank = kw("blank", 2)?.isTruthy ?? false
            let lines = v.text.components(separatedBy: "\n")
            return .string(lines.enumerated().map { i, line in
                (i == 0 && !first) || (!blank && line.allSatisfy(\.isWhitespace)) ? line : pad + line
            }.joined(separator: "\n"))
        case "e", "escape", "forceescape":
            if case .markup = marked { return marked }
            return .markup(Value.htmlEscaped(v.text))
        case "wordcount": return .int(v.text.split(whereSeparator: { $0.isWhitespace }).count)
        case "batch", "slice":
            throw TemplateError.runtime("filter '\(name)' is not supported")
        default:
            throw TemplateError.runtime("no filter named '\(name)'")
        }
    }

    func test(_ name: String, _ marked: Value, _ args: [Value]) throws -> Bool {
        let v = marked.plain
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": if case .none = v { return true }; return false
        case "string": if case .string = v { return true }; return false
        case "number": switch v { case .int, .double: return true; default: return false }
        case "integer": if case .int = v { return true }; return false
        case "float": if case .double = v { return true }; return false
        case "boolean": if case .bool = v { return true }; return false
        case "true": if case .bool(true) = v { return true }; return false
        case "false": if case .bool(false) = v { return true }; return false
        case "mapping": switch v { case .object, .namespace: return true; default: return false }
        case "sequence", "iterable": switch v { case .array, .string, .object: return true; default: return false }
        case "callable": switch v { case .function, .macro: return true; default: return false }
        case "equalto", "eq", "==", "sameas": return Value.equal(v, args.first ?? .none)
        case "ne", "!=": return !Value.equal(v, args.first ?? .none)
        case "in": return try binary("in", v, args.first ?? .none).isTruthy
        case "odd": if case .int(let i) = v { return i % 2 != 0 }; return false
        case "even": if case .int(let i) = v { return i % 2 == 0 }; return false
        case "divisibleby": if case .int(let i) = v, case .int(let d)? = args.first, d != 0 { return i % d == 0 }; return false
        case "lower": return v.text == v.text.lowercased()
        case "upper": return v.text == v.text.uppercased()
        case "gt", ">": return try binary(">", v, args.first ?? .none).isTruthy
        case "ge", ">=": return try binary(">=", v, args.first ?? .none).isTruthy
        case "lt", "<": return try binary("<", v, args.first ?? .none).isTruthy
        case "le", "<=": return try binary("<=", v, args.first ?? .none).isTruthy
        default: throw TemplateError.runtime("no test named '\(name)'")
        }
    }

    // MARK: Globals

    static let builtins: [String: Value] = {
        func f(_ name: String, _ body: @escaping ([Value], [(String, Value)]) throws -> Value) -> (String, Value) {
            (name, .function(Value.BuiltinFunction(name: name, call: body)))
        }
        let entries: [(String, Value)] = [
            f("raise_exception") { args, _ in throw TemplateError.raised(args.first?.text ?? "") },
            f("range") { args, _ in
                let ints = args.map { v -> Int in if case .int(let i) = v { return i }; return 0 }
                let (start, stop, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints.count > 1 ? ints[1] : 0, ints.count > 2 ? ints[2] : 1)
                guard step != 0 else { throw TemplateError.runtime("range() step must not be zero") }
                let count = max(0, (Double(stop) - Double(start)) / Double(step)).rounded(.up)
                guard count <= Double(Interpreter.maximumRange) else {
                    throw TemplateError.runtime("range() of \(Int(count)) items is too large (the limit is \(Interpreter.maximumRange))")
                }
                return .array(stride(from: start, to: stop, by: step).map { .int($0) })
            },
            f("namespace") { args, kwargs in
                var values: [(String, Value)] = []
                if case .object(let o)? = args.first { values = o }
                values += kwargs
                return .namespace(Value.Namespace(values))
            },
            f("dict") { args, kwargs in
                var values: [(String, Value)] = []
                if case .object(let o)? = args.first { values = o }
                return .object(values + kwargs)
            },
        ]
        return Dictionary(uniqueKeysWithValues: entries)
    }()

    /// `strftime_now(format)`: transformers' `datetime.now().strftime(format)`, the moment and time zone taken from
    /// the rendering's options (the current local time unless a caller fixes them).
    static func strftimeNow(_ options: RenderOptions) -> Value {
        .function(Value.BuiltinFunction(name: "strftime_now") { args, _ in
            .string(Strftime.format(args.first?.text ?? "%Y-%m-%d", options.now(), in: options.timeZone))
        })
    }
}

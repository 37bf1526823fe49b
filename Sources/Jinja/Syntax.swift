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

// The syntax tree the parser builds and the interpreter walks.

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

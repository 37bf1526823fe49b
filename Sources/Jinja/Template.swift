import Foundation

/// A chat template (the Jinja of `tokenizer_config.json`'s `chat_template` or `chat_template.jinja`), rendered as
/// transformers' `apply_chat_template` renders it: jinja2 with trim_blocks and lstrip_blocks, loop controls, and the
/// globals it adds (`raise_exception`, `strftime_now`, `tojson` with `indent`).
///
/// ```swift
/// let template = try Template(tokenizerConfig.chatTemplate!)
/// let prompt = try template.render(["messages": try .fromJSON(messagesJSON), "add_generation_prompt": .bool(true),
///                                    "bos_token": .string("<s>")])
/// ```
public struct Template: Sendable {
    let nodes: [Node]

    public init(_ source: String) throws {
        var lexer = Lexer(source)
        var parser = Parser(try lexer.run())
        nodes = try parser.nodes()
    }

    /// The rendered text for these variables.
    public func render(_ variables: [String: Value]) throws -> String {
        try Interpreter(globals: variables).render(nodes)
    }
}

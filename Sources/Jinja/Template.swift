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
///
/// `strftime_now` formats the current local time by default; tests (and anything that must render the same text on
/// any day) pass ``RenderOptions`` with a fixed date and time zone.
public struct Template: Sendable {
    let nodes: [Node]

    public init(_ source: String) throws {
        var lexer = Lexer(source)
        var parser = Parser(try lexer.run())
        nodes = try parser.nodes()
    }

    /// The rendered text for these variables; `options` fixes what `strftime_now` reads (by default the current
    /// local time, as transformers).
    public func render(_ variables: [String: Value], options: RenderOptions = RenderOptions()) throws -> String {
        try Interpreter(globals: variables, options: options).render(nodes)
    }
}

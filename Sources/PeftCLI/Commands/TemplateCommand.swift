import ArgumentParser
import Foundation
import Jinja
import Tokenizer

/// `peft template`: the model's own chat template rendered for a conversation, exactly as transformers'
/// `apply_chat_template` renders it, so a user sees what the model gets.
struct TemplateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "template",
        abstract: "Print a conversation rendered by the model's own chat template (as transformers renders it).",
        discussion: """
        --messages is a JSON file holding a list of messages ({"role", "content", "tool_calls", ...}), or an object \
        with "messages" (and optionally "tools"). The template comes from tokenizer_config.json's chat_template or \
        chat_template.jinja; bos_token and eos_token from tokenizer_config.json.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "JSON file with the messages.") var messages: String
    @Option(help: "JSON file with the tools (OpenAI function schemas).") var tools: String?
    @Flag(help: "End with the assistant header, as for generation.") var addGenerationPrompt = false
    @Flag(help: "Print {\"text\": ...} instead of the raw text.") var json = false

    func run() throws {
        let config = try Tokenizer.load(directory: modelOptions.url).config
        guard let source = config.chatTemplate else {
            throw ValidationError("\(modelOptions.url.path) has no chat template (tokenizer_config.json chat_template or chat_template.jinja)")
        }
        func read(_ path: String, _ what: String) throws -> Value {
            guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(what) file \(path)") }
            do { return try Value.fromJSON(String(decoding: data, as: UTF8.self)) } catch {
                throw ValidationError("\(path): \(error)")
            }
        }
        var conversation = try read(messages, "--messages")
        var toolList: Value? = try tools.map { try read($0, "--tools") }
        if case .object(let fields) = conversation {
            guard let m = fields.first(where: { $0.0 == "messages" })?.1 else {
                throw ValidationError("\(messages): an object needs a \"messages\" list")
            }
            if toolList == nil { toolList = fields.first { $0.0 == "tools" }?.1 }
            conversation = m
        }
        guard case .array(let items) = conversation else { throw ValidationError("\(messages): expected a list of messages") }
        for (i, item) in items.enumerated() {
            guard case .object(let m) = item, m.contains(where: { $0.0 == "role" }) else {
                throw ValidationError("\(messages), message \(i + 1): expected an object with a \"role\"")
            }
        }
        let template: Template
        do { template = try Template(source) } catch { throw ValidationError("the chat template of \(modelOptions.url.path) does not parse: \(error)") }
        var variables: [String: Value] = ["messages": conversation, "add_generation_prompt": .bool(addGenerationPrompt)]
        if let toolList { variables["tools"] = toolList }
        if let bos = config.bosToken { variables["bos_token"] = .string(bos) }
        if let eos = config.eosToken { variables["eos_token"] = .string(eos) }
        let text: String
        do { text = try template.render(variables) } catch { throw ValidationError("\(error)") }
        if json { try Terminal.json(["text": text]) } else { FileHandle.standardOutput.write(Data(text.utf8)) }
    }
}

import Foundation

/// The parts of `tokenizer_config.json` (plus `chat_template.jinja`) that the library uses.
///
/// Special tokens may be written as strings or as `{"content": "...", ...}` objects; `chat_template` may be a
/// string or a list of `{"name", "template"}` (the one named "default", else the first, is used).
/// ```swift
/// let config = try TokenizerConfig(json: Data(#"{"eos_token": "<|im_end|>"}"#.utf8))
/// config.eosToken   // "<|im_end|>"
/// ```
public struct TokenizerConfig: Sendable, Equatable {
    /// The Jinja chat template text, if any (only inspected, never executed).
    public var chatTemplate: String?
    public var bosToken: String?
    public var eosToken: String?
    public var padToken: String?
    public var unknownToken: String?
    /// `add_bos_token`: whether the model expects its BOS token before every sequence.
    public var addBosToken: Bool?
    public var addEosToken: Bool?
    /// `model_max_length`; nil when absent or when it is Hugging Face's "no limit" placeholder (1e30).
    public var modelMaxLength: Int?
    /// `tokenizer_class`, e.g. "Qwen2Tokenizer".
    public var tokenizerClass: String?

    public init(chatTemplate: String? = nil, bosToken: String? = nil, eosToken: String? = nil,
                padToken: String? = nil, unknownToken: String? = nil, addBosToken: Bool? = nil,
                addEosToken: Bool? = nil, modelMaxLength: Int? = nil, tokenizerClass: String? = nil) {
        self.chatTemplate = chatTemplate
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.padToken = padToken
        self.unknownToken = unknownToken
        self.addBosToken = addBosToken
        self.addEosToken = addEosToken
        self.modelMaxLength = modelMaxLength
        self.tokenizerClass = tokenizerClass
    }

    /// Parses `tokenizer_config.json`; `file` names it in error messages. Unknown fields are ignored.
    public init(json data: Data, file: String = "tokenizer_config.json") throws {
        let root = JSONField(value: try JSONParser.parse(data, file: file), file: file)
        _ = try root.object()
        self.init()
        bosToken = try Self.tokenContent(root.optional("bos_token"))
        eosToken = try Self.tokenContent(root.optional("eos_token"))
        padToken = try Self.tokenContent(root.optional("pad_token"))
        unknownToken = try Self.tokenContent(root.optional("unk_token"))
        addBosToken = try root.optional("add_bos_token")?.bool()
        addEosToken = try root.optional("add_eos_token")?.bool()
        tokenizerClass = try root.optional("tokenizer_class")?.string()
        if let length = try root.optional("model_max_length") {
            guard case .number(let value) = length.value, value >= 1 else { throw length.invalid("expected a positive number") }
            modelMaxLength = value < 1e18 ? Int(value) : nil
        }
        if let template = try root.optional("chat_template") {
            chatTemplate = try Self.templateText(template)
        }
    }

    /// A special token written as `"<s>"` or as `{"content": "<s>", ...}`.
    private static func tokenContent(_ field: JSONField?) throws -> String? {
        guard let field else { return nil }
        switch field.value {
        case .string(let text): return text
        case .object: return try field.required("content").string()
        default: throw field.invalid("expected a string or {\"content\": ...}, found \(field.value.kindName)")
        }
    }

    private static func templateText(_ field: JSONField) throws -> String {
        if case .string(let text) = field.value { return text }
        let templates = try field.array()
        guard !templates.isEmpty else { throw field.invalid("the list of templates is empty") }
        let named = try templates.first { try $0.optional("name")?.string() == "default" }
        return try (named ?? templates[0]).required("template").string()
    }
}

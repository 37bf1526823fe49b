/// What `encode(_:addSpecialTokens: true)` wraps around a single sequence (`post_processor` field).
///
/// Supported: `TemplateProcessing` (e.g. Llama-3's `<|begin_of_text|> $A`), `ByteLevel` (only trims offsets,
/// so it adds nothing), `Sequence` of those, and `null`.
/// ```swift
/// let post = try PostProcessor(json: root.optional("post_processor"))
/// post.prefix   // [128000] for Llama-3, [] for Qwen
/// ```
struct PostProcessor: Sendable, Equatable {
    var prefix: [TokenID] = []
    var suffix: [TokenID] = []

    init(prefix: [TokenID] = [], suffix: [TokenID] = []) {
        self.prefix = prefix
        self.suffix = suffix
    }

    /// Reads the `post_processor` field (nil or `null` for none).
    init(json field: JSONField?) throws {
        guard let field else { return }
        let typeField = try field.required("type")
        switch try typeField.string() {
        case "ByteLevel":
            return
        case "Sequence":
            for step in try field.required("processors").array().map({ try PostProcessor(json: $0) }) {
                prefix = step.prefix + prefix  // each processor wraps the output of the previous one
                suffix += step.suffix
            }
        case "TemplateProcessing":
            try readTemplate(field)
        case let other:
            throw typeField.unsupported(other)
        }
    }

    /// `single` is a list of `{"SpecialToken": {"id": name}}` and one `{"Sequence": {"id": "A"}}`;
    /// `special_tokens[name].ids` gives the ids each special token stands for.
    private mutating func readTemplate(_ field: JSONField) throws {
        let specialTokens = try field.required("special_tokens")
        var seenSequence = false
        for item in try field.required("single").array() {
            if try item.optional("Sequence") != nil {
                seenSequence = true
                continue
            }
            guard let special = try item.optional("SpecialToken") else {
                throw item.invalid("expected a 'SpecialToken' or 'Sequence' item")
            }
            let name = try special.required("id").string()
            guard let entry = try specialTokens.optional(name) else {
                throw specialTokens.invalid("no entry for template token '\(name)'")
            }
            let ids = try entry.required("ids").array().map { try $0.tokenID() }
            if seenSequence { suffix += ids } else { prefix += ids }
        }
        guard seenSequence else { throw try field.required("single").invalid("the template has no $A sequence") }
    }
}

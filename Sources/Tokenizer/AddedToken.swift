/// One entry of `added_tokens` in `tokenizer.json`: a string that is cut out of the text before the model
/// sees it and always becomes this id (`<|im_start|>`, `<|eot_id|>`, Qwen3's `<think>`).
/// ```swift
/// AddedToken(id: 151644, content: "<|im_start|>", special: true)
/// ```
struct AddedToken: Sendable, Equatable {
    let id: TokenID
    let content: String
    /// Special tokens are dropped by `decode(skipSpecialTokens: true)`.
    var special: Bool
    /// Also swallow the whitespace on the left / right of a match.
    var leftStrip = false
    var rightStrip = false
    /// Only match when not touching a letter, digit or `_` on either side.
    var singleWord = false
    /// Matched against normalized text (true) or the raw input (false).
    var normalized = false

    init(id: TokenID, content: String, special: Bool) {
        self.id = id
        self.content = content
        self.special = special
    }

    /// Reads one item of `added_tokens`; `normalized` defaults to `!special`, as in Hugging Face.
    init(json field: JSONField) throws {
        let special = try field.optional("special")?.bool() ?? false
        self.init(id: try field.required("id").tokenID(), content: try field.required("content").string(),
                  special: special)
        leftStrip = try field.optional("lstrip")?.bool() ?? false
        rightStrip = try field.optional("rstrip")?.bool() ?? false
        singleWord = try field.optional("single_word")?.bool() ?? false
        normalized = try field.optional("normalized")?.bool() ?? !special
        guard !content.isEmpty else { throw try field.required("content").invalid("an added token cannot be empty") }
    }
}

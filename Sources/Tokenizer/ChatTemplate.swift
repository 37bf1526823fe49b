/// The prompt formats the library renders.
///
/// - `jinja`: the model's own chat template (tokenizer_config.json / chat_template.jinja), rendered as transformers
///   renders it; answer tokens are found by rendering (what each assistant turn adds after the generation prompt).
/// - `chatml`: Qwen chat models, `<|im_start|>role\n...<|im_end|>\n`.
/// - `llama3`: `<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>` after one BOS.
/// - `plain`: the tutorial format `Instruction: ...\nAnswer: ` with EOS after each answer.
/// - `none`: contents concatenated as they are, EOS after each answer.
/// ```swift
/// let template = ChatTemplate.detect(from: tokenizer.config)   // .chatml for Qwen
/// ```
public enum ChatTemplate: String, CaseIterable, Sendable {
    case chatml, llama3, plain, none, jinja

    /// Picks the format from the tokenizer's chat template text: `<|im_start|>` means chatml,
    /// `<|start_header_id|>` means llama3, anything else (or no template) plain.
    public static func detect(from config: TokenizerConfig) -> ChatTemplate {
        guard let text = config.chatTemplate else { return .plain }
        if text.contains("<|im_start|>") { return .chatml }
        if text.contains("<|start_header_id|>") { return .llama3 }
        return .plain
    }

    /// The system prompt a ChatML template inserts when the conversation has none: the first literal
    /// `<|im_start|>system\n...<|im_end|>` whose text has no template syntax ("You are a helpful
    /// assistant." for Qwen1.5/Qwen2; nil for Qwen3, whose system block only echoes the user's).
    public static func defaultSystemPrompt(inTemplate text: String?) -> String? {
        guard let text else { return nil }
        var searchStart = text.startIndex
        while let marker = text.range(of: "<|im_start|>system", range: searchStart..<text.endIndex) {
            searchStart = marker.upperBound
            var rest = text[marker.upperBound...]
            if rest.hasPrefix("\n") {
                rest = rest.dropFirst()
            } else if rest.hasPrefix("\\n") {
                rest = rest.dropFirst(2)
            } else {
                continue
            }
            guard let end = rest.range(of: "<|im_end|>") else { continue }
            if let prompt = unescapedLiteral(rest[..<end.lowerBound]) { return prompt }
        }
        return nil
    }

    /// The text of a Jinja string literal's inside, or nil when it is not pure literal text
    /// (it contains an unescaped quote that would close the literal, or template tags).
    private static func unescapedLiteral(_ literal: Substring) -> String? {
        guard !literal.isEmpty, !["{{", "}}", "{%", "%}"].contains(where: { literal.contains($0) }) else { return nil }
        var text = ""
        var characters = literal.makeIterator()
        while let character = characters.next() {
            switch character {
            case "'", "\"":
                return nil
            case "\\":
                guard let escaped = characters.next() else { return nil }
                switch escaped {
                case "n": text.append("\n")
                case "t": text.append("\t")
                default: text.append(escaped)
                }
            default:
                text.append(character)
            }
        }
        return text
    }
}

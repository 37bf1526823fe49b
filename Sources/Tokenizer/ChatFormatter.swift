/// Renders conversations in one `ChatTemplate` as ids for generation, or as ids plus a loss mask for
/// supervised fine-tuning.
///
/// Every conversation is cut into segments that are tokenized separately and concatenated:
/// `encode(prompt part) + encode(answer) + [end of turn]` for each assistant turn. The answer and the
/// end-of-turn id are trainable (so the model learns to stop); system, user, headers and separators are not.
/// `promptIDs` uses the same segments, so a generation prompt is an exact prefix of the training ids.
/// ```swift
/// let formatter = try ChatFormatter(template: .chatml, tokenizer: tokenizer)
/// let example = try formatter.trainingExample([
///     ChatMessage(role: .user, content: "板蓝根颗粒可以长期服用吗？"),
///     ChatMessage(role: .assistant, content: "不建议长期服用。"),
/// ])
/// let prompt = try formatter.promptIDs([ChatMessage(role: .user, content: "你好")])   // ends "<|im_start|>assistant\n"
/// ```
public struct ChatFormatter: Sendable {
    public let template: ChatTemplate
    public let tokenizer: Tokenizer
    /// Used when a conversation does not start with a system message (nil: no system block).
    public let defaultSystemPrompt: String?
    /// The id closing every assistant turn: `<|im_end|>` (chatml), `<|eot_id|>` (llama3), EOS (plain, none).
    public let endOfTurnID: TokenID
    /// Ids that end generation in this format (end of turn first, then the tokenizer's EOS and end-of-text).
    public let stopIDs: [TokenID]
    /// BOS put before every conversation: always for llama3, otherwise when the tokenizer asks for it.
    let beginID: TokenID?
    /// The model's own template (`jinja` format).
    let jinja: JinjaChat?

    /// - Parameter defaultSystemPrompt: `nil` derives it (chatml: the literal system prompt in the tokenizer's
    ///   chat template, e.g. Qwen1.5's "You are a helpful assistant."; other formats: none);
    ///   `.some(nil)` means no default; `.some(text)` uses `text`.
    /// - Throws: `TokenizerError.missingSpecialToken` when the tokenizer lacks a token the format needs.
    public init(template: ChatTemplate, tokenizer: Tokenizer, defaultSystemPrompt: String?? = nil) throws {
        func required(_ token: String) throws -> TokenID {
            guard let id = tokenizer.id(forToken: token) else {
                throw TokenizerError.missingSpecialToken(token: token, format: template.rawValue)
            }
            return id
        }
        self.template = template
        self.tokenizer = tokenizer
        var stops: [TokenID?] = []
        jinja = template == .jinja ? try JinjaChat(tokenizer: tokenizer) : nil
        switch template {
        case .jinja:
            endOfTurnID = try jinja!.endOfTurnID()
            stops = [endOfTurnID, tokenizer.eosTokenID]
            beginID = nil   // the template writes BOS itself when the model wants one
        case .chatml:
            _ = try required("<|im_start|>")
            endOfTurnID = try required("<|im_end|>")
            stops = [endOfTurnID, tokenizer.eosTokenID, tokenizer.id(forToken: "<|endoftext|>")]
            beginID = tokenizer.prependsBOS ? tokenizer.bosTokenID : nil
        case .llama3:
            _ = try required("<|start_header_id|>")
            _ = try required("<|end_header_id|>")
            endOfTurnID = try required("<|eot_id|>")
            beginID = try tokenizer.bosTokenID ?? required("<|begin_of_text|>")
            stops = [endOfTurnID, tokenizer.eosTokenID, tokenizer.id(forToken: "<|end_of_text|>")]
        case .plain, .none:
            guard let eos = tokenizer.eosTokenID else {
                throw TokenizerError.missingSpecialToken(token: "eos_token (tokenizer_config.json)", format: template.rawValue)
            }
            endOfTurnID = eos
            stops = [eos]
            beginID = tokenizer.prependsBOS ? tokenizer.bosTokenID : nil
        }
        var seen = Set<TokenID>()
        stopIDs = stops.compactMap { $0 }.filter { seen.insert($0).inserted }
        // jinja: the template supplies its own default system prompt; only an explicit one is added.
        let derived = template == .chatml ? ChatTemplate.defaultSystemPrompt(inTemplate: tokenizer.config.chatTemplate) : nil
        self.defaultSystemPrompt = defaultSystemPrompt ?? derived
    }

    /// Ids for generation: the whole conversation, then the assistant header (e.g. `<|im_start|>assistant\n`).
    /// - Throws: `TokenizerError.invalidConversation` when the model's own template refuses the messages.
    public func promptIDs(_ messages: [ChatMessage], tools: String? = nil) throws -> [TokenID] {
        encode(try segments(messages, endingWithHeader: true, tools: tools)).ids
    }

    /// A training example whose `trainable` mask is true exactly on every assistant answer and the
    /// end-of-turn id after it.
    /// - Throws: `TokenizerError.invalidConversation` when there is no assistant message or the last message
    ///   is not the assistant's.
    /// - Parameter tools: the conversation's tool schemas (a JSON list), for the model's own template.
    public func trainingExample(_ messages: [ChatMessage], tools: String? = nil) throws -> TokenizedConversation {
        guard let last = messages.last else { throw TokenizerError.invalidConversation(reason: "it has no messages") }
        guard last.role == .assistant else {
            throw TokenizerError.invalidConversation(
                reason: "it ends with a \(last.role.rawValue) message; the last message must be the assistant's answer")
        }
        return encode(try segments(messages, endingWithHeader: false, tools: tools))
    }

    /// The tutorial prompt `Instruction: {instruction}\nInput: {input}\nAnswer: `, without the `Input:` line
    /// when `input` is empty.
    public func plainPrompt(instruction: String, input: String) -> String {
        input.isEmpty
            ? "Instruction: \(instruction)\nAnswer: "
            : "Instruction: \(instruction)\nInput: \(input)\nAnswer: "
    }

    private func encode(_ segments: [Segment]) -> TokenizedConversation {
        var conversation = TokenizedConversation(ids: [], trainable: [])
        for segment in segments {
            let ids: [TokenID]
            switch segment.content {
            case .text(let text): ids = text.isEmpty ? [] : tokenizer.encode(text, addSpecialTokens: false)
            case .token(let id): ids = [id]
            }
            conversation.ids += ids
            conversation.trainable += repeatElement(segment.trainable, count: ids.count)
        }
        return conversation
    }
}

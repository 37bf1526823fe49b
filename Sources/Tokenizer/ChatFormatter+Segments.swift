extension ChatFormatter {
    /// A piece of a rendered conversation that is tokenized on its own.
    struct Segment {
        enum Content {
            case text(String)
            case token(TokenID)
        }

        let content: Content
        let trainable: Bool
    }

    /// Cuts a conversation into prompt / answer / end-of-turn segments. Text between two answers
    /// (the separator after an end-of-turn, the next user turn, the next assistant header) is one prompt
    /// segment. With `endingWithHeader`, a final prompt segment ends with the assistant header.
    ///
    /// chatml, system + one exchange:
    /// `[<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n] [A] [<|im_end|>]`
    func segments(_ messages: [ChatMessage], endingWithHeader: Bool, tools: String? = nil) throws -> [Segment] {
        if let jinja {
            var all = messages
            if messages.first?.role != .system, let defaultSystemPrompt { all.insert(ChatMessage(role: .system, content: defaultSystemPrompt), at: 0) }
            return try jinja.segments(all, endingWithHeader: endingWithHeader, tools: tools)
        }
        if tools != nil || messages.contains(where: \.involvesTools) {
            throw TokenizerError.invalidConversation(reason: "it has tool calls or tool results, which only the model's own chat template renders; use --template auto (the default) with a model that has a chat template")
        }
        var segments: [Segment] = []
        if let beginID { segments.append(Segment(content: .token(beginID), trainable: false)) }
        var prompt = ""
        if messages.first?.role != .system, let defaultSystemPrompt {
            prompt += turnText(ChatMessage(role: .system, content: defaultSystemPrompt))
        }
        for message in messages {
            guard message.role == .assistant else {
                prompt += turnText(message)
                continue
            }
            segments.append(Segment(content: .text(prompt + assistantHeader), trainable: false))
            segments.append(Segment(content: .text(message.content), trainable: true))
            segments.append(Segment(content: .token(endOfTurnID), trainable: true))
            prompt = separatorAfterTurn
        }
        if endingWithHeader { segments.append(Segment(content: .text(prompt + assistantHeader), trainable: false)) }
        return segments
    }

    /// A complete system or user turn.
    private func turnText(_ message: ChatMessage) -> String {
        let role = message.role.rawValue
        switch template {
        case .chatml: return "<|im_start|>\(role)\n\(message.content)<|im_end|>\n"
        case .llama3: return "<|start_header_id|>\(role)<|end_header_id|>\n\n\(message.content)<|eot_id|>"
        case .plain: return message.role == .system ? "\(message.content)\n" : "Instruction: \(message.content)\n"
        case .none, .jinja: return message.content
        }
    }

    /// What precedes an assistant answer.
    private var assistantHeader: String {
        switch template {
        case .chatml: return "<|im_start|>assistant\n"
        case .llama3: return "<|start_header_id|>assistant<|end_header_id|>\n\n"
        case .plain: return "Answer: "
        case .none, .jinja: return ""
        }
    }

    /// Text after an end-of-turn id, which belongs to the next prompt segment (never trained).
    private var separatorAfterTurn: String {
        template == .chatml ? "\n" : ""
    }
}

import Foundation
import Jinja

/// The model's own chat template (`jinja` format) as prompt and training segments. Answer tokens are found by
/// rendering: the conversation up to an assistant turn with the generation prompt, then with the turn; what the
/// turn adds (as far as the whole conversation's rendering keeps it) is its answer and end of turn, trainable, except
/// trailing whitespace (the separator before the next turn). Everything else is prompt.
struct JinjaChat: Sendable {
    let template: Template
    let tokenizer: Tokenizer

    init(tokenizer: Tokenizer) throws {
        guard let source = tokenizer.config.chatTemplate else {
            throw TokenizerError.invalidConversation(reason: "the model has no chat template (tokenizer_config.json chat_template or chat_template.jinja); choose --template chatml, llama3, plain or none")
        }
        do { template = try Template(source) } catch {
            throw TokenizerError.invalidConversation(reason: "its chat template does not parse: \(error)")
        }
        self.tokenizer = tokenizer
    }

    /// A message as transformers' templates read it: tool calls as `{"type": "function", "function": {"name",
    /// "arguments": {...}}}` (arguments as an object when they are JSON), tool results with their name and call id.
    static func value(_ m: ChatMessage) -> Value {
        var fields: [(String, Value)] = [("role", .string(m.role.rawValue)), ("content", .string(m.content))]
        if let calls = m.toolCalls, !calls.isEmpty {
            fields.append(("tool_calls", .array(calls.map { c in
                var call: [(String, Value)] = [("type", .string("function"))]
                if let id = c.id { call.append(("id", .string(id))) }
                let arguments = (try? Value.fromJSON(c.arguments)) ?? .string(c.arguments)
                call.append(("function", .object([("name", .string(c.name)), ("arguments", arguments)])))
                return .object(call)
            })))
        }
        if let name = m.name { fields.append(("name", .string(name))) }
        if let id = m.toolCallID { fields.append(("tool_call_id", .string(id))) }
        return .object(fields)
    }

    /// Tool schemas as templates expect them: `{"type": "function", "function": {...}}` (bare function schemas are
    /// wrapped).
    static func tools(_ json: String?) throws -> Value {
        guard let json else { return .none }
        let parsed: Value
        do { parsed = try Value.fromJSON(json) } catch { throw TokenizerError.invalidConversation(reason: "its tools are not valid JSON: \(error)") }
        guard case .array(let items) = parsed else { throw TokenizerError.invalidConversation(reason: "its tools are not a list") }
        return .array(items.map { item in
            if case .object(let f) = item, !f.contains(where: { $0.0 == "type" }) {
                return .object([("type", .string("function")), ("function", item)])
            }
            return item
        })
    }

    /// One moment for all the renderings of one conversation: `strftime_now` must write the same date in each, or a
    /// conversation cut across midnight would look as if the template rewrote earlier turns.
    static func pinnedNow() -> RenderOptions { RenderOptions(date: Date(), timeZone: .current) }

    func render(_ messages: [ChatMessage], generationPrompt: Bool, tools: String? = nil,
                options: RenderOptions = JinjaChat.pinnedNow()) throws -> String {
        var variables: [String: Value] = [
            "messages": .array(messages.map(Self.value)),
            "add_generation_prompt": .bool(generationPrompt), "tools": try Self.tools(tools), "documents": .none,
        ]
        if let bos = tokenizer.config.bosToken { variables["bos_token"] = .string(bos) }
        if let eos = tokenizer.config.eosToken { variables["eos_token"] = .string(eos) }
        do { return try template.render(variables, options: options) } catch {
            throw TokenizerError.invalidConversation(reason: "the model's chat template refused it: \(error)")
        }
    }

    /// The id closing an assistant turn: the first special token the template writes after an answer (EOS when it
    /// writes none).
    func endOfTurnID() throws -> TokenID {
        let probe = [ChatMessage(role: .user, content: "x"), ChatMessage(role: .assistant, content: "y")]
        let now = Self.pinnedNow()
        let before = try render(Array(probe.dropLast()), generationPrompt: true, options: now)
        let after = try render(probe, generationPrompt: false, options: now)
        if after.hasPrefix(before), let r = after.dropFirst(before.count).range(of: "y") {
            let tail = String(after.dropFirst(before.count)[r.upperBound...])
            if let id = tokenizer.encode(tail, addSpecialTokens: false).first(where: { tokenizer.isSpecial($0) }) { return id }
        }
        guard let eos = tokenizer.eosTokenID else {
            throw TokenizerError.missingSpecialToken(token: "eos_token (tokenizer_config.json)", format: "jinja")
        }
        return eos
    }

    func segments(_ messages: [ChatMessage], endingWithHeader: Bool, tools: String? = nil) throws -> [ChatFormatter.Segment] {
        // The whole conversation as the template writes it; each answer is located in it from its own rendering
        // (a template may write something only after the last turn, e.g. Phi-3's EOS, so turn renderings need not
        // be prefixes of each other, but every turn's prompt is a prefix of the whole).
        let now = Self.pinnedNow()
        let full = Array(try render(messages, generationPrompt: endingWithHeader, tools: tools, options: now))
        var segments: [ChatFormatter.Segment] = []
        var cursor = 0
        func text(_ range: Range<Int>, _ trainable: Bool) {
            if !range.isEmpty { segments.append(.init(content: .text(String(full[range])), trainable: trainable)) }
        }
        for (i, message) in messages.enumerated() where message.role == .assistant {
            let prompt = Array(try render(Array(messages[..<i]), generationPrompt: true, tools: tools, options: now))
            let turn = Array(try render(Array(messages[...i]), generationPrompt: false, tools: tools, options: now))
            guard prompt.count >= cursor, full.starts(with: prompt), turn.starts(with: prompt) else {
                throw TokenizerError.invalidConversation(reason: "the model's chat template does not render assistant turn \(i + 1) after the conversation before it (it rewrites earlier turns), so its answer tokens cannot be found; choose --template chatml, llama3 or plain")
            }
            // What the turn adds, as far as the whole conversation keeps it; trailing whitespace after the turn's
            // end is the separator before the next turn and is not trained.
            var end = prompt.count
            while end < full.count, end < turn.count, full[end] == turn[end] { end += 1 }
            while end > prompt.count, full[end - 1].isWhitespace { end -= 1 }
            text(cursor..<prompt.count, false)
            text(prompt.count..<end, true)
            cursor = end
        }
        text(cursor..<full.count, false)
        return segments
    }
}

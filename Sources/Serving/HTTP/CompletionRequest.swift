import Foundation
import Generation
import Tokenizer
import Transformer

/// A parsed `/v1/chat/completions` or `/v1/completions` request, ready for the engine.
struct CompletionRequest {
    var modelName: String
    var adapter: ModelAdapter?
    var prompt: [Int32]
    var options: SamplingOptions
    var stopStrings: [String]
    var stream: Bool
    var includeUsage: Bool
    var chat: Bool
    /// The request sent `tools` and the model's template writes calls as Hermes blocks: parse them into `tool_calls`.
    var parsesToolCalls = false
    /// vLLM's `ignore_eos`: generate `max_tokens` whatever the model says (benchmarks).
    var ignoreEOS: Bool

    /// Reads and checks every field; the errors are the 400/404 answers.
    init(body: RequestBody, chat: Bool, served: ServedModel, maxModelLength: Int) throws {
        self.chat = chat
        guard let name = try body.string("model") else { throw APIError.badRequest("'model' is required", param: "model") }
        guard let resolved = served.resolve(name) else {
            throw APIError(.notFound, "the model '\(name)' does not exist; GET /v1/models lists the base model and its adapters", param: "model")
        }
        modelName = name
        adapter = resolved
        if chat {
            guard let formatter = served.formatter else {
                throw APIError.badRequest("this model has no chat format; use /v1/completions or start the server with --template")
            }
            guard let raw = try body.array("messages") else { throw APIError.badRequest("'messages' is required", param: "messages") }
            guard !raw.isEmpty else { throw APIError.badRequest("'messages' must not be empty", param: "messages") }
            let messages = try raw.enumerated().map { try Self.message($1, index: $0) }
            var tools: String?
            if let t = try body.array("tools"), !t.isEmpty {
                // OpenAI's [{"type": "function", "function": {...}}]; templates take the same list.
                tools = JSON.string(t)
                parsesToolCalls = HermesToolCalls.templateUses(served.tokenizer.config.chatTemplate)
                    && (body.object["tool_choice"] as? String) != "none"
            }
            do { prompt = try formatter.promptIDs(messages, tools: tools) } catch {
                throw APIError.badRequest("the messages cannot be rendered with the model's chat template: \(error)", param: "messages")
            }
        } else {
            prompt = try Self.prompt(body, tokenizer: served.tokenizer)
        }
        guard !prompt.isEmpty else { throw APIError.badRequest("the prompt is empty", param: chat ? "messages" : "prompt") }
        let vocabulary = served.model.config.vocabSize
        if let bad = prompt.firstIndex(where: { $0 < 0 || Int($0) >= vocabulary }) {
            throw APIError.badRequest("prompt token \(bad) (id \(prompt[bad])) is outside the vocabulary of \(vocabulary)", param: "prompt")
        }

        if let n = try body.int("n"), n != 1 { throw APIError.badRequest("only n = 1 is supported", param: "n") }
        if let b = try body.int("best_of"), b != 1 { throw APIError.badRequest("only best_of = 1 is supported", param: "best_of") }
        if try body.bool("echo") == true { throw APIError.badRequest("'echo' is not supported", param: "echo") }
        if chat, try body.bool("logprobs") == true { throw APIError.badRequest("'logprobs' is not supported", param: "logprobs") }
        if !chat, try body.int("logprobs") != nil { throw APIError.badRequest("'logprobs' is not supported", param: "logprobs") }

        var o = served.defaults
        if let t = try body.number("temperature") {
            guard (0...2).contains(t) else { throw APIError.badRequest("'temperature' must be in [0, 2]", param: "temperature") }
            o.temperature = Float(t)
        }
        if let p = try body.number("top_p") {
            guard p > 0 && p <= 1 else { throw APIError.badRequest("'top_p' must be in (0, 1]", param: "top_p") }
            o.topP = Float(p)
        }
        if let k = try body.int("top_k") {
            guard k >= -1 else { throw APIError.badRequest("'top_k' must be -1 (off) or positive", param: "top_k") }
            o.topK = max(0, k)
        }
        if let m = try body.number("min_p") {
            guard (0...1).contains(m) else { throw APIError.badRequest("'min_p' must be in [0, 1]", param: "min_p") }
            o.minP = Float(m)
        }
        if let r = try body.number("repetition_penalty") {
            guard r > 0 && r <= 10 else { throw APIError.badRequest("'repetition_penalty' must be in (0, 10]", param: "repetition_penalty") }
            o.repetitionPenalty = Float(r)
        }
        for (key, path) in [("frequency_penalty", \SamplingOptions.frequencyPenalty), ("presence_penalty", \SamplingOptions.presencePenalty)] {
            if let v = try body.number(key) {
                guard (-2...2).contains(v) else { throw APIError.badRequest("'\(key)' must be in [-2, 2]", param: key) }
                o[keyPath: path] = Float(v)
            }
        }
        if let seed = try body.int("seed") {
            o.seed = UInt64(bitPattern: Int64(seed))
        } else if !o.isGreedy {
            o.seed = UInt64.random(in: 0...UInt64.max)
        }
        // An adapter's virtual tokens or prefix take positions in front of the prompt.
        let lead = adapter?.leadingRows ?? 0
        let context = min(maxModelLength, served.model.config.maxPositionEmbeddings - lead)
        let room = context - prompt.count
        let key = body.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens"
        if let m = try body.int(key) {
            guard m >= 1 else { throw APIError.badRequest("'\(key)' must be at least 1", param: key) }
            guard m <= room else {
                throw APIError.badRequest("this model's context is \(context) tokens\(lead > 0 ? " after the adapter's \(lead) virtual tokens" : ""); the prompt has \(prompt.count) and '\(key)' asks for \(m) more (\(prompt.count + m) in all)", param: key)
            }
            o.maxNewTokens = m
        } else {
            guard room >= 1 else {
                throw APIError.badRequest("the prompt has \(prompt.count) tokens, which fills this model's context of \(context)\(lead > 0 ? " after the adapter's \(lead) virtual tokens" : "")", param: chat ? "messages" : "prompt")
            }
            o.maxNewTokens = room
        }
        options = o
        stopStrings = try body.stopStrings()
        stream = try body.bool("stream") ?? false
        ignoreEOS = try body.bool("ignore_eos") ?? false
        includeUsage = try body.object("stream_options").map { opts in
            guard let v = opts["include_usage"] else { return false }
            guard let b = v as? Bool else { throw APIError.badRequest("'stream_options.include_usage' must be true or false", param: "stream_options") }
            return b
        } ?? false
    }

    /// `prompt`: a string, a list holding one string, or a list of token ids.
    private static func prompt(_ body: RequestBody, tokenizer: Tokenizer) throws -> [Int32] {
        guard body.has("prompt") else { throw APIError.badRequest("'prompt' is required", param: "prompt") }
        if let s = try? body.string("prompt") { return tokenizer.encode(s) }
        guard let list = try? body.array("prompt") else {
            throw APIError.badRequest("'prompt' must be a string, a list of one string or a list of token ids", param: "prompt")
        }
        if list.count == 1, let s = list[0] as? String { return tokenizer.encode(s) }
        if list.count > 1, list.allSatisfy({ $0 is String }) {
            throw APIError.badRequest("only one prompt per request is supported", param: "prompt")
        }
        let ids = list.compactMap { ($0 as? NSNumber).flatMap { Int32(exactly: $0.doubleValue) } }
        guard ids.count == list.count, !list.contains(where: { $0 is Bool }) else {
            throw APIError.badRequest("'prompt' must be a string, a list of one string or a list of token ids", param: "prompt")
        }
        return ids
    }

    /// One OpenAI message: `content` a string, a list of text parts or null (an assistant turn with `tool_calls`).
    private static func message(_ raw: Any, index i: Int) throws -> ChatMessage {
        let param = "messages[\(i)]"
        guard let m = raw as? [String: Any] else { throw APIError.badRequest("\(param) must be an object", param: param) }
        guard let roleName = m["role"] as? String else { throw APIError.badRequest("\(param).role is required (a string)", param: param) }
        let role: ChatMessage.Role
        switch roleName {
        case "system", "developer": role = .system
        case "user": role = .user
        case "assistant": role = .assistant
        case "tool", "function": role = .tool
        default: throw APIError.badRequest("\(param).role '\(roleName)' is not one of system, developer, user, assistant, tool", param: param)
        }
        var content = ""
        switch m["content"] {
        case nil, is NSNull: content = ""
        case let s as String: content = s
        case let parts as [Any]:
            for (j, part) in parts.enumerated() {
                guard let p = part as? [String: Any], let type = p["type"] as? String else {
                    throw APIError.badRequest("\(param).content[\(j)] must be an object with a 'type'", param: param)
                }
                guard type == "text", let text = p["text"] as? String else {
                    throw APIError.badRequest("\(param).content[\(j)]: only text parts are supported (got '\(type)')", param: param)
                }
                content += text
            }
        default: throw APIError.badRequest("\(param).content must be a string or a list of text parts", param: param)
        }
        var calls: [ChatMessage.ToolCall]?
        if let rawCalls = m["tool_calls"], !(rawCalls is NSNull) {
            guard let list = rawCalls as? [Any] else { throw APIError.badRequest("\(param).tool_calls must be a list", param: param) }
            calls = try list.enumerated().map { j, c in
                guard let call = c as? [String: Any], let f = call["function"] as? [String: Any], let name = f["name"] as? String else {
                    throw APIError.badRequest("\(param).tool_calls[\(j)] needs function.name", param: param)
                }
                let args: String
                switch f["arguments"] {
                case let s as String: args = s
                case nil, is NSNull: args = "{}"
                case let other?: args = JSON.string(other)
                }
                return ChatMessage.ToolCall(name: name, arguments: args, id: call["id"] as? String)
            }
        }
        return ChatMessage(role: role, content: content, toolCalls: calls, name: m["name"] as? String,
                           toolCallID: m["tool_call_id"] as? String)
    }
}

/// Reads an OpenAI request body exactly as `peft serve` does before generating: the JSON, every field's type and
/// range, the model and adapter names, the messages through the chat template, the prompt's length against the
/// context. Throws the error the server answers with (400 / 404); returns the prompt's token count.
public enum OpenAIRequestDecoder {
    public static func decode(_ body: Data, chat: Bool, served: ServedModel, maxModelLength: Int) throws -> Int {
        try CompletionRequest(body: RequestBody(body), chat: chat, served: served, maxModelLength: maxModelLength).prompt.count
    }
}

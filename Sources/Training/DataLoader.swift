import Tokenizer
import Foundation

/// Reads instruction data: Alpaca (`instruction`, `input`, `output`, optional `system`, `history`), ShareGPT
/// (`conversations` of `from`/`value`) and OpenAI-style `messages` (`role`/`content`), from a JSON array or
/// JSON Lines. The format is detected per file from its first record.
///
/// ```swift
/// let set = try DataLoader.load(url, skipInvalid: false)
/// set.conversations.count
/// ```
public enum DataLoader {
    public enum Format: String, Sendable { case alpaca, sharegpt, messages }

    public struct Loaded: Sendable {
        public var conversations: [Conversation]
        public var format: Format
        /// Records dropped by `skipInvalid`, with their reasons.
        public var skipped: [String]
    }

    public static func load(_ url: URL, skipInvalid: Bool = false) throws -> Loaded {
        try load(url, skipInvalid: skipInvalid, transform: nil)
    }

    /// `transform` maps each record to this loader's field names first (a LLaMA-Factory dataset's columns and tags).
    static func load(_ url: URL, skipInvalid: Bool, transform: (([String: Any]) -> [String: Any])?) throws -> Loaded {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.data(file: path, record: nil, field: nil, reason: "file not found or unreadable")
        }
        var records = try parseRecords(data, path: path)
        if let transform { records = records.map { ($0.0, $0.1.map(transform)) } }
        guard let first = records.first(where: { $0.1 != nil })?.1 else {
            throw TrainingError.data(file: path, record: nil, field: nil, reason: "no records")
        }
        let format = try detect(first, path: path)
        var out: [Conversation] = []
        var skipped: [String] = []
        for (number, object) in records {
            do {
                guard let object else {
                    throw TrainingError.data(file: path, record: number, field: nil, reason: "not a JSON object")
                }
                out.append(try convert(object, format: format, path: path, record: number))
            } catch let error as TrainingError {
                if !skipInvalid { throw error }
                skipped.append(error.description)
            }
        }
        if out.isEmpty {
            throw TrainingError.data(file: path, record: nil, field: nil, reason: "no valid records (\(skipped.count) invalid)")
        }
        return Loaded(conversations: out, format: format, skipped: skipped)
    }

    /// A data set of a LLaMA-Factory data folder: `dataset_info.json`'s entry `name` gives the file (`file_name`),
    /// `formatting` (alpaca or sharegpt), `columns` (alpaca: prompt, query, response, system, history; sharegpt:
    /// messages, system, tools) and sharegpt `tags` (role_tag, content_tag, user_tag, assistant_tag,
    /// observation_tag, function_tag, system_tag), so such folders work unchanged. A `"ranking": true` entry holds
    /// preference pairs (`PreferenceData.examples(dataset:)`).
    public static func load(dataset name: String, directory: URL, skipInvalid: Bool = false) throws -> Loaded {
        let entry = try DatasetEntry(name: name, directory: directory)
        if entry.ranking {
            throw TrainingError.data(file: entry.info.path, record: nil, field: name,
                                     reason: "is a ranking (preference) data set: train it with --stage dpo, orpo, simpo or kto")
        }
        return try load(entry.file, skipInvalid: skipInvalid, transform: entry.transform)
    }

    /// (1-based record number, object or nil when the record is not an object). Malformed JSON is an error
    /// naming the line (JSON Lines) even with skipInvalid: a broken file is not a bad record.
    static func parseRecords(_ data: Data, path: String) throws -> [(Int, [String: Any]?)] {
        let text = String(decoding: data, as: UTF8.self)
        let trimmed = text.drop { $0.isWhitespace || $0 == "\u{FEFF}" }
        if trimmed.first == "[" {
            guard let array = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [Any] else {
                throw TrainingError.data(file: path, record: nil, field: nil, reason: "malformed JSON array (for one record per line use .jsonl)")
            }
            return array.enumerated().map { ($0.offset + 1, $0.element as? [String: Any]) }
        }
        var out: [(Int, [String: Any]?)] = []
        var number = 0
        for (lineIndex, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let s = line.trimmingCharacters(in: .whitespacesAndNewlines.union(CharacterSet(charactersIn: "\u{FEFF}")))
            if s.isEmpty { continue }
            number += 1
            guard let obj = try? JSONSerialization.jsonObject(with: Data(s.utf8)) else {
                throw TrainingError.data(file: path, record: number, field: nil, reason: "malformed JSON on line \(lineIndex + 1)")
            }
            out.append((number, obj as? [String: Any]))
        }
        return out
    }

    static func detect(_ object: [String: Any], path: String) throws -> Format {
        if object["conversations"] != nil { return .sharegpt }
        if object["messages"] != nil { return .messages }
        if object["instruction"] != nil || object["output"] != nil { return .alpaca }
        throw TrainingError.data(file: path, record: 1, field: nil,
                                 reason: "unknown record format with keys \(object.keys.sorted()); expected Alpaca (instruction/input/output), ShareGPT (conversations) or messages (role/content)")
    }

    static func convert(_ o: [String: Any], format: Format, path: String, record: Int) throws -> Conversation {
        func fail(_ field: String?, _ reason: String) -> TrainingError {
            .data(file: path, record: record, field: field, reason: reason)
        }
        func string(_ key: String, required: Bool) throws -> String? {
            guard let v = o[key], !(v is NSNull) else {
                if required { throw fail(key, "missing") }
                return nil
            }
            guard let s = v as? String else { throw fail(key, "must be a string") }
            return s
        }
        switch format {
        case .alpaca:
            let instruction = try string("instruction", required: true)!
            let input = try string("input", required: false) ?? ""
            guard let output = try string("output", required: true), !output.isEmpty else {
                throw fail("output", "empty answer")
            }
            if instruction.isEmpty && input.isEmpty { throw fail("instruction", "empty prompt (instruction and input are both empty)") }
            var turns: [Conversation.Turn] = []
            if let history = o["history"], !(history is NSNull) {
                guard let pairs = history as? [Any] else { throw fail("history", "must be a list of [instruction, answer] pairs") }
                for (i, pair) in pairs.enumerated() {
                    guard let p = pair as? [Any], p.count == 2, let q = p[0] as? String, let a = p[1] as? String else {
                        throw fail("history", "entry \(i + 1) must be a pair of strings [instruction, answer]")
                    }
                    turns.append(.init(instruction: q, answer: a))
                }
            }
            turns.append(.init(instruction: instruction, input: input, answer: output))
            let system = try string("system", required: false)
            return Conversation(system: system?.isEmpty == true ? nil : system, turns: turns)
        case .sharegpt:
            guard let list = o["conversations"] as? [Any] else { throw fail("conversations", "must be a list") }
            if list.contains(where: { ["function_call", "observation"].contains(($0 as? [String: Any])?["from"] as? String ?? "") }) || hasTools(o) {
                return try toolConversation(o, list: list, format: .sharegpt, fail: fail)
            }
            let messages = try list.enumerated().map { i, item -> (String, String) in
                guard let m = item as? [String: Any], let from = m["from"] as? String, let value = m["value"] as? String else {
                    throw fail("conversations", "message \(i + 1) needs string fields 'from' and 'value'")
                }
                let role: String
                switch from {
                case "human", "user": role = "user"
                case "gpt", "assistant", "model": role = "assistant"
                case "system": role = "system"
                default: throw fail("conversations", "message \(i + 1) has unknown role '\(from)' (expected human, gpt or system)")
                }
                return (role, value)
            }
            return try pairUp(messages, systemField: try string("system", required: false), fail: { fail("conversations", $0) })
        case .messages:
            guard let list = o["messages"] as? [Any] else { throw fail("messages", "must be a list") }
            if list.contains(where: { ($0 as? [String: Any])?["role"] as? String == "tool" || ($0 as? [String: Any])?["tool_calls"] != nil }) || hasTools(o) {
                return try toolConversation(o, list: list, format: .messages, fail: fail)
            }
            let messages = try list.enumerated().map { i, item -> (String, String) in
                guard let m = item as? [String: Any], let role = m["role"] as? String, let content = m["content"] as? String else {
                    throw fail("messages", "message \(i + 1) needs string fields 'role' and 'content'")
                }
                guard ["system", "user", "assistant"].contains(role) else {
                    throw fail("messages", "message \(i + 1) has unknown role '\(role)' (expected system, user or assistant)")
                }
                return (role, content)
            }
            return try pairUp(messages, systemField: nil, fail: { fail("messages", $0) })
        }
    }

    /// A record's `tools` field holds something (empty strings and lists, as some data sets write for records
    /// without tools, do not count).
    static func hasTools(_ o: [String: Any]) -> Bool {
        guard let t = o["tools"], !(t is NSNull) else { return false }
        if let s = t as? String { return !s.trimmingCharacters(in: .whitespaces).isEmpty && s != "[]" }
        if let a = t as? [Any] { return !a.isEmpty }
        return true
    }

    /// Tool-calling records as whole message lists:
    /// - ShareGPT (LLaMA-Factory): `human` / `gpt` / `function_call` (a JSON `{"name", "arguments"}` or a list of them)
    ///   / `observation` (the tool's result) / `system`, and a `tools` field (a JSON list, or its text);
    /// - OpenAI `messages`: assistant `tool_calls` (`{"id", "type": "function", "function": {"name", "arguments"}}`,
    ///   arguments as JSON text or an object, `content` may be null), `tool` messages, and `tools`.
    /// The record must end with an assistant turn (text or function calls).
    static func toolConversation(_ o: [String: Any], list: [Any], format: Format,
                                 fail: (String?, String) -> TrainingError) throws -> Conversation {
        let field = format == .sharegpt ? "conversations" : "messages"
        func json(_ v: Any) -> String? {
            if let s = v as? String { return s }
            guard JSONSerialization.isValidJSONObject(v), let d = try? JSONSerialization.data(withJSONObject: v, options: [.sortedKeys]) else { return nil }
            return String(decoding: d, as: UTF8.self)
        }
        func call(_ object: Any, _ i: Int) throws -> ChatMessage.ToolCall {
            guard let c = object as? [String: Any] else { throw fail(field, "message \(i + 1): a function call must be an object") }
            let f = (c["function"] as? [String: Any]) ?? c
            guard let name = f["name"] as? String, !name.isEmpty else { throw fail(field, "message \(i + 1): a function call needs a 'name'") }
            let arguments = f["arguments"].flatMap(json) ?? "{}"
            guard (try? JSONSerialization.jsonObject(with: Data(arguments.utf8))) is [String: Any] else {
                throw fail(field, "message \(i + 1): the arguments of '\(name)' are not a JSON object")
            }
            return .init(name: name, arguments: arguments, id: c["id"] as? String)
        }
        var messages: [ChatMessage] = []
        if let system = o["system"] as? String, !system.isEmpty { messages.append(ChatMessage(role: .system, content: system)) }
        for (i, item) in list.enumerated() {
            guard let m = item as? [String: Any] else { throw fail(field, "message \(i + 1) is not an object") }
            if format == .sharegpt {
                guard let from = m["from"] as? String, let value = m["value"] as? String else {
                    throw fail(field, "message \(i + 1) needs string fields 'from' and 'value'")
                }
                switch from {
                case "human", "user": messages.append(ChatMessage(role: .user, content: value))
                case "gpt", "assistant", "model": messages.append(ChatMessage(role: .assistant, content: value))
                case "system": messages.append(ChatMessage(role: .system, content: value))
                case "observation": messages.append(ChatMessage(role: .tool, content: value))
                case "function_call":
                    guard let parsed = try? JSONSerialization.jsonObject(with: Data(value.utf8)) else {
                        throw fail(field, "message \(i + 1): a function_call value must be JSON {\"name\", \"arguments\"}")
                    }
                    let calls = try ((parsed as? [Any]) ?? [parsed]).map { try call($0, i) }
                    messages.append(ChatMessage(role: .assistant, content: "", toolCalls: calls))
                default:
                    throw fail(field, "message \(i + 1) has unknown role '\(from)' (expected human, gpt, function_call, observation or system)")
                }
            } else {
                guard let role = m["role"] as? String else { throw fail(field, "message \(i + 1) needs a string field 'role'") }
                let content = m["content"] as? String ?? ""
                if !(m["content"] is String || m["content"] == nil || m["content"] is NSNull) {
                    throw fail(field, "message \(i + 1): 'content' must be a string or null")
                }
                switch role {
                case "system", "user": messages.append(ChatMessage(role: role == "system" ? .system : .user, content: content))
                case "assistant":
                    var calls: [ChatMessage.ToolCall]?
                    if let list = m["tool_calls"], !(list is NSNull) {
                        guard let items = list as? [Any] else { throw fail(field, "message \(i + 1): 'tool_calls' must be a list") }
                        calls = try items.map { try call($0, i) }
                    }
                    messages.append(ChatMessage(role: .assistant, content: content, toolCalls: calls))
                case "tool":
                    messages.append(ChatMessage(role: .tool, content: content, name: m["name"] as? String, toolCallID: m["tool_call_id"] as? String))
                default:
                    throw fail(field, "message \(i + 1) has unknown role '\(role)' (expected system, user, assistant or tool)")
                }
            }
        }
        guard messages.last?.role == .assistant else { throw fail(field, "the last message must be the assistant's (an answer or a function call)") }
        guard messages.contains(where: { $0.role == .user }) else { throw fail(field, "no user message") }
        var tools: String?
        if hasTools(o), let t = o["tools"] {
            guard let text = json(t), (try? JSONSerialization.jsonObject(with: Data(text.utf8))) is [Any] else {
                throw fail("tools", "must be a JSON list of tool schemas")
            }
            tools = text
        }
        return Conversation(messages: messages, tools: tools)
    }

    /// [system] (user assistant)+ -> Conversation; anything else is an error.
    static func pairUp(_ messages: [(String, String)], systemField: String?,
                       fail: (String) -> TrainingError) throws -> Conversation {
        var rest = messages[...]
        var system = systemField
        if let first = rest.first, first.0 == "system" {
            system = first.1
            rest = rest.dropFirst()
        }
        var turns: [Conversation.Turn] = []
        while let user = rest.first {
            guard user.0 == "user" else { throw fail("expected a user message, found \(user.0)") }
            rest = rest.dropFirst()
            guard let answer = rest.first, answer.0 == "assistant" else {
                throw fail("user message without an assistant answer after it")
            }
            guard !answer.1.isEmpty else { throw fail("empty assistant answer") }
            rest = rest.dropFirst()
            turns.append(.init(instruction: user.1, answer: answer.1))
        }
        guard !turns.isEmpty else { throw fail("no user/assistant turns") }
        return Conversation(system: system?.isEmpty == true ? nil : system, turns: turns)
    }
}

/// One entry of a LLaMA-Factory `dataset_info.json`: its file, whether it holds preference pairs (`ranking`), and the
/// map from its records to the loader's field names (its `columns`, and for sharegpt its `tags`, also inside
/// `chosen` / `rejected` messages; `kto_tag` under its column name).
struct DatasetEntry {
    let info: URL
    let file: URL
    let ranking: Bool
    let transform: ([String: Any]) -> [String: Any]

    init(name: String, directory: URL) throws {
        info = directory.appendingPathComponent("dataset_info.json")
        let path = info.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.data(file: path, record: nil, field: nil, reason: "not found (--dataset-dir must hold LLaMA-Factory's dataset_info.json)")
        }
        let all = try DatasetCatalog.object(data, path: path)
        guard let entry = all[name] as? [String: Any] else {
            throw TrainingError.data(file: path, record: nil, field: name, reason: "no data set named '\(name)' (it has \(all.keys.sorted().joined(separator: ", ")))")
        }
        guard let fileName = entry["file_name"] as? String else {
            let source = ["hf_hub_url", "ms_hub_url", "script_url"].first { entry[$0] != nil }
            throw TrainingError.data(file: path, record: nil, field: name, reason: source.map { "data sets from \($0) are not supported; only local file_name entries" } ?? "no file_name")
        }
        let formatting = (entry["formatting"] as? String) ?? "alpaca"
        guard formatting == "alpaca" || formatting == "sharegpt" else {
            throw TrainingError.data(file: path, record: nil, field: "\(name).formatting", reason: "'\(formatting)' is not supported (alpaca or sharegpt)")
        }
        file = directory.appendingPathComponent(fileName)
        ranking = (entry["ranking"] as? Bool) ?? false
        let columns = (entry["columns"] as? [String: String]) ?? [:]
        let tags = (entry["tags"] as? [String: String]) ?? [:]
        // Preference columns: the answers of a pair and KTO's tag.
        let preference = ["chosen", "rejected", "kto_tag"]
        if formatting == "alpaca" {
            let names = ["prompt": "instruction", "query": "input", "response": "output", "system": "system", "history": "history",
                         "tools": "tools"].merging(preference.map { ($0, $0) }) { a, _ in a }
            transform = { record in
                var out: [String: Any] = [:]
                for (column, canonical) in names {
                    if let v = record[columns[column] ?? canonical] { out[canonical] = v }
                }
                return out
            }
        } else {
            let roleTag = tags["role_tag"] ?? "from", contentTag = tags["content_tag"] ?? "value"
            let roles = [(tags["user_tag"] ?? "human", "human"), (tags["assistant_tag"] ?? "gpt", "gpt"),
                         (tags["observation_tag"] ?? "observation", "observation"), (tags["function_tag"] ?? "function_call", "function_call"),
                         (tags["system_tag"] ?? "system", "system")]
            func message(_ item: Any) -> Any {
                guard let m = item as? [String: Any] else { return item }
                let role = (m[roleTag] as? String).map { r in roles.first { $0.0 == r }?.1 ?? r } as Any
                return ["from": role, "value": m[contentTag] as Any]
            }
            transform = { record in
                var out: [String: Any] = [:]
                if let list = record[columns["messages"] ?? "conversations"] as? [Any] {
                    out["conversations"] = list.map(message)
                } else {
                    out["conversations"] = record[columns["messages"] ?? "conversations"] as Any
                }
                if let system = columns["system"].flatMap({ record[$0] }) { out["system"] = system }
                if let tools = record[columns["tools"] ?? "tools"], !((tools as? String)?.isEmpty ?? false) { out["tools"] = tools }
                for key in preference {
                    if let v = record[columns[key] ?? key] { out[key] = key == "kto_tag" ? v : message(v) }
                }
                return out
            }
        }
    }
}

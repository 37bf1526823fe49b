import Foundation
import Tokenizer

/// Preference pairs in LLaMA-Factory's ranking formats and TRL's: each record becomes two ordinary records (the
/// prompt with the chosen answer, the prompt with the rejected one) read as SFT records are.
/// - Alpaca ranking: `instruction`, `input`, `system`, `history` with string `chosen` and `rejected`.
/// - ShareGPT ranking: `conversations` ending on a user turn, `chosen` and `rejected` messages
///   (`{"from": "gpt", "value": ...}`).
/// - TRL: `prompt` (a string or a message list) with `chosen` and `rejected` (strings or message lists), or
///   implicit-prompt `chosen` / `rejected` conversations.
public enum PreferenceData {
    public struct Pair: Sendable {
        public var chosen: Conversation
        public var rejected: Conversation
    }

    public static func load(_ url: URL) throws -> [Pair] {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.data(file: path, record: nil, field: nil, reason: "file not found or unreadable")
        }
        var pairs: [Pair] = []
        for (number, object) in try DataLoader.parseRecords(data, path: path) {
            guard let o = object else { throw TrainingError.data(file: path, record: number, field: nil, reason: "not a JSON object") }
            let (c, r) = try split(o, path: path, record: number)
            let format = try DataLoader.detect(c, path: path)
            pairs.append(Pair(chosen: try DataLoader.convert(c, format: format, path: path, record: number),
                              rejected: try DataLoader.convert(r, format: format, path: path, record: number)))
        }
        guard !pairs.isEmpty else { throw TrainingError.data(file: path, record: nil, field: nil, reason: "no records") }
        return pairs
    }

    /// The two SFT records of a preference record.
    static func split(_ o: [String: Any], path: String, record: Int) throws -> ([String: Any], [String: Any]) {
        func fail(_ field: String, _ reason: String) -> TrainingError { .data(file: path, record: record, field: field, reason: reason) }
        guard let chosen = o["chosen"], !(chosen is NSNull) else { throw fail("chosen", "missing (a preference record needs chosen and rejected)") }
        guard let rejected = o["rejected"], !(rejected is NSNull) else { throw fail("rejected", "missing (a preference record needs chosen and rejected)") }
        var base = o
        base["chosen"] = nil
        base["rejected"] = nil
        func with(_ answer: Any, field: String) throws -> [String: Any] {
            var r = base
            if let list = o["conversations"] as? [Any] {
                // ShareGPT ranking: the answer message after the conversation.
                guard let message = answer as? [String: Any] else { throw fail(field, "must be a message object like {\"from\": \"gpt\", \"value\": ...}") }
                r["conversations"] = list + [message]
            } else if o["instruction"] != nil {
                guard let text = answer as? String else { throw fail(field, "must be a string (Alpaca ranking)") }
                r["output"] = text
            } else if let prompt = o["prompt"] {
                r["prompt"] = nil
                switch (prompt, answer) {
                case (let p as String, let a as String):
                    r["instruction"] = p
                    r["output"] = a
                case (let p as [Any], let a as [Any]):
                    r["messages"] = p + a
                case (let p as [Any], let a as String):
                    r["messages"] = p + [["role": "assistant", "content": a]]
                default:
                    throw fail(field, "prompt and \(field) must both be strings or message lists")
                }
            } else if let messages = answer as? [Any] {
                // TRL's implicit prompt: whole conversations whose last message is the answer.
                r["messages"] = messages
            } else {
                throw fail(field, "needs a prompt (prompt, instruction or conversations) or a whole conversation")
            }
            return r
        }
        return (try with(chosen, field: "chosen"), try with(rejected, field: "rejected"))
    }

    /// The examples of the pairs, chosen then rejected, labels on the final answer only (its tokens and end of
    /// turn); a pair either of whose answers keeps no token within `builder.maxLength` is dropped (counted).
    public static func examples(_ pairs: [Pair], builder: ExampleBuilder) throws -> (examples: [TrainingExample], dropped: Int) {
        var out: [TrainingExample] = [], dropped = 0
        for (i, p) in pairs.enumerated() {
            do {
                guard let c = try lastAnswer(p.chosen, builder), let r = try lastAnswer(p.rejected, builder) else {
                    dropped += 1
                    continue
                }
                out += [c, r]
            } catch let error as TokenizerError {
                throw TrainingError.options("record \(i + 1): \(error)")
            }
        }
        return (out, dropped)
    }

    static func lastAnswer(_ c: Conversation, _ builder: ExampleBuilder) throws -> TrainingExample? {
        guard let full = try builder.example(c) else { return nil }
        let prompt = try builder.promptIDs(c)
        // Rows before the last answer's first token carry no label.
        let start = max(0, prompt.count - 1)
        var labels = full.labels
        for t in 0..<min(start, labels.count) { labels[t] = -100 }
        let e = TrainingExample(ids: full.ids, labels: labels)
        return e.labelCount > 0 ? e : nil
    }
}

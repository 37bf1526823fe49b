import Foundation
import Tokenizer

/// Preference pairs in LLaMA-Factory's ranking formats and TRL's: each record becomes two ordinary records (the
/// prompt with the chosen answer, the prompt with the rejected one) read as SFT records are.
/// - Alpaca ranking: `instruction`, `input`, `system`, `history` with string `chosen` and `rejected`.
/// - ShareGPT ranking: `conversations` ending on a user turn, `chosen` and `rejected` messages
///   (`{"from": "gpt", "value": ...}`).
/// - TRL: `prompt` (a string or a message list) with `chosen` and `rejected` (strings or message lists), or
///   implicit-prompt `chosen` / `rejected` conversations.
/// KTO's unpaired answers (`loadUnpaired`): LLaMA-Factory's alpaca or sharegpt rows with a boolean `kto_tag`, TRL's
/// `prompt` / `completion` / `label`, or any of the pair formats above, unpaired as TRL does.
public enum PreferenceData {
    public struct Pair: Sendable {
        public var chosen: Conversation
        public var rejected: Conversation
    }

    /// One KTO answer: the conversation that ends on it and whether it is desirable.
    public struct Unpaired: Sendable {
        public var conversation: Conversation
        public var desirable: Bool
    }

    public static func load(_ url: URL) throws -> [Pair] { try load(url, transform: nil) }

    /// `transform` maps each record to the loader's field names first (a LLaMA-Factory data set's columns and tags).
    static func load(_ url: URL, transform: (([String: Any]) -> [String: Any])?) throws -> [Pair] {
        let path = url.path
        var pairs: [Pair] = []
        for (number, object) in try records(url, transform: transform) {
            guard let o = object else { throw TrainingError.data(file: path, record: number, field: nil, reason: "not a JSON object") }
            let (c, r) = try split(o, path: path, record: number)
            let format = try DataLoader.detect(c, path: path)
            pairs.append(Pair(chosen: try DataLoader.convert(c, format: format, path: path, record: number),
                              rejected: try DataLoader.convert(r, format: format, path: path, record: number)))
        }
        guard !pairs.isEmpty else { throw TrainingError.data(file: path, record: nil, field: nil, reason: "no records") }
        return pairs
    }

    /// KTO's answers. Pair records are unpaired as TRL's `unpair_preference_dataset` does with its default map
    /// batches: per 1,000 records, their chosen answers (desirable) and then their rejected ones.
    public static func loadUnpaired(_ url: URL) throws -> [Unpaired] { try loadUnpaired(url, transform: nil).answers }

    /// The answers of the first `limit` records (a pair record gives two), and how many records that was.
    static func loadUnpaired(_ url: URL, transform: (([String: Any]) -> [String: Any])?,
                             limit: Int? = nil) throws -> (answers: [Unpaired], records: Int) {
        let path = url.path
        var out: [Unpaired] = [], chosen: [Unpaired] = [], rejected: [Unpaired] = []
        func flush() { out += chosen + rejected; chosen = []; rejected = [] }
        let all = try records(url, transform: transform).prefix(limit ?? Int.max)
        for (number, object) in all {
            guard let o = object else { throw TrainingError.data(file: path, record: number, field: nil, reason: "not a JSON object") }
            func fail(_ field: String, _ reason: String) -> TrainingError { .data(file: path, record: number, field: field, reason: reason) }
            func convert(_ r: [String: Any]) throws -> Conversation {
                try DataLoader.convert(r, format: try DataLoader.detect(r, path: path), path: path, record: number)
            }
            if o["chosen"] != nil || o["rejected"] != nil {
                let (c, r) = try split(o, path: path, record: number)
                chosen.append(Unpaired(conversation: try convert(c), desirable: true))
                rejected.append(Unpaired(conversation: try convert(r), desirable: false))
                if chosen.count == 1000 { flush() }
                continue
            }
            flush()
            let field = o["kto_tag"] != nil ? "kto_tag" : "label"
            guard let tag = o[field] else { throw fail("label", "missing (a KTO record needs a boolean label or kto_tag, or chosen and rejected)") }
            guard let desirable = tag as? Bool else {
                throw fail(field, "must be true or false")
            }
            var base = o
            base[field] = nil
            if let completion = o["completion"] {
                base["completion"] = nil
                out.append(Unpaired(conversation: try convert(try record(base, answer: completion, field: "completion", path: path, number: number)),
                                    desirable: desirable))
            } else {
                out.append(Unpaired(conversation: try convert(base), desirable: desirable))
            }
        }
        flush()
        guard !out.isEmpty else { throw TrainingError.data(file: path, record: nil, field: nil, reason: "no records") }
        return (out, all.count)
    }

    /// The file's records (1-based number, object or nil), mapped by `transform`.
    static func records(_ url: URL, transform: (([String: Any]) -> [String: Any])?) throws -> [(Int, [String: Any]?)] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TrainingError.data(file: url.path, record: nil, field: nil, reason: "file not found or unreadable")
        }
        let records = try DataLoader.parseRecords(data, path: url.path)
        guard let transform else { return records }
        return records.map { ($0.0, $0.1.map(transform)) }
    }

    /// The two SFT records of a preference record.
    static func split(_ o: [String: Any], path: String, record: Int) throws -> ([String: Any], [String: Any]) {
        func fail(_ field: String, _ reason: String) -> TrainingError { .data(file: path, record: record, field: field, reason: reason) }
        guard let chosen = o["chosen"], !(chosen is NSNull) else { throw fail("chosen", "missing (a preference record needs chosen and rejected)") }
        guard let rejected = o["rejected"], !(rejected is NSNull) else { throw fail("rejected", "missing (a preference record needs chosen and rejected)") }
        var base = o
        base["chosen"] = nil
        base["rejected"] = nil
        return (try Self.record(base, answer: chosen, field: "chosen", path: path, number: record),
                try Self.record(base, answer: rejected, field: "rejected", path: path, number: record))
    }

    /// The SFT record of a prompt (`base`, without its answer field) and one answer (`field` names it in errors).
    static func record(_ base: [String: Any], answer: Any, field: String, path: String, number: Int) throws -> [String: Any] {
        func fail(_ field: String, _ reason: String) -> TrainingError { .data(file: path, record: number, field: field, reason: reason) }
        let o = base
        do {
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

    /// The examples of a preference file for `loss`, from its first `limit` records: pairs (chosen, rejected), or
    /// KTO's answers; also the count of pairs or answers dropped (no answer token within `builder.maxLength`) and of
    /// records read. A record the tokenizer refuses is named with the file.
    public static func examples(file url: URL, for loss: PreferenceLoss, builder: ExampleBuilder,
                                limit: Int? = nil) throws -> (examples: [TrainingExample], dropped: Int, records: Int) {
        try examples(url, transform: nil, for: loss, builder: builder, limit: limit)
    }

    /// The same from a data set of a LLaMA-Factory folder (`dataset_info.json`): pairs need a `"ranking": true`
    /// entry, KTO an entry whose records carry `kto_tag` (under its column name) or a ranking one (unpaired).
    public static func examples(dataset name: String, directory: URL, for loss: PreferenceLoss, builder: ExampleBuilder,
                                limit: Int? = nil) throws -> (examples: [TrainingExample], dropped: Int, records: Int) {
        let entry = try DatasetEntry(name: name, directory: directory)
        if loss.isPaired && !entry.ranking {
            throw TrainingError.data(file: entry.info.path, record: nil, field: name,
                                     reason: "is not a ranking data set (preference pairs need \"ranking\": true and chosen/rejected columns)")
        }
        return try examples(entry.file, transform: entry.transform, for: loss, builder: builder, limit: limit)
    }

    static func examples(_ url: URL, transform: (([String: Any]) -> [String: Any])?, for loss: PreferenceLoss,
                         builder: ExampleBuilder, limit: Int?) throws -> (examples: [TrainingExample], dropped: Int, records: Int) {
        do {
            if loss.isPaired {
                let pairs = try load(url, transform: transform)
                let built = try examples(Array(pairs.prefix(limit ?? pairs.count)), builder: builder)
                return (built.examples, built.dropped, min(pairs.count, limit ?? pairs.count))
            }
            let loaded = try loadUnpaired(url, transform: transform, limit: limit)
            let built = try examples(loaded.answers, builder: builder)
            return (built.examples, built.dropped, loaded.records)
        } catch TrainingError.options(let message) {
            throw TrainingError.options("\(url.path): \(message)")
        }
    }

    /// KTO's examples, labels on the final answer only; an answer that keeps no token within `builder.maxLength` is
    /// dropped (counted).
    public static func examples(_ answers: [Unpaired], builder: ExampleBuilder) throws -> (examples: [TrainingExample], dropped: Int) {
        var out: [TrainingExample] = [], dropped = 0
        for (i, a) in answers.enumerated() {
            do {
                guard var e = try lastAnswer(a.conversation, builder) else { dropped += 1; continue }
                e.desirable = a.desirable
                out.append(e)
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

import Foundation

/// Tool calls in the Hermes format that Qwen2.5, Qwen3 and other chat templates teach their models:
/// `<tool_call>\n{"name": "...", "arguments": {...}}\n</tool_call>`, one block per call, after any text. vLLM's
/// `hermes` parser reads the same blocks. Used when a request sends `tools` and the model's template writes them
/// this way; the calls come back as OpenAI `tool_calls` with `finish_reason: "tool_calls"`.
struct HermesToolCalls {
    static let open = "<tool_call>", close = "</tool_call>"

    struct Call: Equatable {
        var name: String
        /// JSON text of an object.
        var arguments: String
    }

    /// True when a chat template renders tool calls as Hermes blocks.
    static func templateUses(_ template: String?) -> Bool { template?.contains(open) ?? false }

    /// Splits an answer into its text and its calls; nil when a block is not a call (the answer stays text).
    static func parse(_ text: String) -> (content: String, calls: [Call])? {
        guard let first = text.range(of: open) else { return (text, []) }
        var calls: [Call] = []
        var rest = text[first.lowerBound...]
        while let start = rest.range(of: open) {
            let after = rest[start.upperBound...]
            let end = after.range(of: close)
            let body = after[..<(end?.lowerBound ?? after.endIndex)]
            guard let call = Self.call(String(body)) else { return nil }
            calls.append(call)
            rest = end.map { after[$0.upperBound...] } ?? after[after.endIndex...]
        }
        guard rest.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return nil }
        return (String(text[..<first.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines), calls)
    }

    private static func call(_ body: String) -> Call? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any],
              let name = object["name"] as? String, !name.isEmpty else { return nil }
        switch object["arguments"] ?? object["parameters"] {
        case nil, is NSNull: return Call(name: name, arguments: "{}")
        case let s as String: return Call(name: name, arguments: s)
        case let o?:
            guard JSONSerialization.isValidJSONObject(o) else { return nil }
            return Call(name: name, arguments: JSON.string(o))
        }
    }

    /// Streaming: text before the first block is released at once (all but a tail that may begin `<tool_call>`);
    /// from the block on, everything is held for `finish`.
    struct Splitter {
        private var held = ""
        private var inCalls = false

        /// The text that may stream now.
        mutating func feed(_ piece: String) -> String {
            if inCalls { held += piece; return "" }
            held += piece
            if let r = held.range(of: HermesToolCalls.open) {
                inCalls = true
                let text = String(held[..<r.lowerBound])
                held = String(held[r.lowerBound...])
                return text
            }
            return StopMatcher.release(&held, keepingStartsOf: [HermesToolCalls.open])
        }

        /// At the end: the calls, or (when there are none or they do not parse) the held text to send as content.
        mutating func finish() -> (calls: [Call], text: String) {
            defer { held = "" }
            guard inCalls, let parsed = HermesToolCalls.parse(held), !parsed.calls.isEmpty else { return ([], held) }
            return (parsed.calls, "")
        }
    }
}

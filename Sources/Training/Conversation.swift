import Tokenizer

/// One training record in a format-neutral shape: an optional system prompt and user/assistant turns.
/// Alpaca's instruction and input stay apart so the `plain` template can lay them out as the tutorial does.
public struct Conversation: Sendable, Equatable {
    public struct Turn: Sendable, Equatable {
        public var instruction: String
        public var input: String
        public var answer: String

        public init(instruction: String, input: String = "", answer: String) {
            self.instruction = instruction
            self.input = input
            self.answer = answer
        }

        /// The user message for chat templates: instruction and a non-empty input joined by "\n".
        public var userText: String { input.isEmpty ? instruction : instruction + "\n" + input }
    }

    public var system: String?
    public var turns: [Turn]
    /// Tool-calling records: the whole message list (assistant function calls, tool results), rendered by the
    /// model's own template; `turns` is then empty.
    public var messages: [ChatMessage]?
    /// The record's tool schemas (a JSON list).
    public var tools: String?

    public init(system: String? = nil, turns: [Turn]) {
        self.system = system
        self.turns = turns
    }

    public init(messages: [ChatMessage], tools: String?) {
        system = nil
        turns = []
        self.messages = messages
        self.tools = tools
    }
}

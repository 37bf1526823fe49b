/// One turn of a conversation.
/// ```swift
/// let turn = ChatMessage(role: .user, content: "六味地黄丸的功效是什么？")
/// let call = ChatMessage(role: .assistant, content: "", toolCalls: [.init(name: "get_weather", arguments: #"{"city": "北京"}"#)])
/// let result = ChatMessage(role: .tool, content: #"{"temperature": 21}"#, name: "get_weather")
/// ```
public struct ChatMessage: Sendable, Codable, Equatable {
    public enum Role: String, Codable, Sendable {
        case system, user, assistant
        /// A tool's result (OpenAI `tool`, ShareGPT `observation`): prompt, never trained.
        case tool
    }

    /// A function the assistant calls; `arguments` is JSON text (an object).
    public struct ToolCall: Sendable, Codable, Equatable {
        public var name: String
        public var arguments: String
        public var id: String?

        public init(name: String, arguments: String, id: String? = nil) {
            self.name = name
            self.arguments = arguments
            self.id = id
        }
    }

    public var role: Role
    public var content: String
    /// The assistant's function calls (trained like its text).
    public var toolCalls: [ToolCall]?
    /// The tool a `tool` message answers for, and the call it answers.
    public var name: String?
    public var toolCallID: String?

    public init(role: Role, content: String, toolCalls: [ToolCall]? = nil, name: String? = nil, toolCallID: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.name = name
        self.toolCallID = toolCallID
    }

    /// True for a tool result or a message with function calls (which only the model's own template can render).
    public var involvesTools: Bool { role == .tool || !(toolCalls ?? []).isEmpty }
}

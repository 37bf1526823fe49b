/// One turn of a conversation.
/// ```swift
/// let turn = ChatMessage(role: .user, content: "六味地黄丸的功效是什么？")
/// ```
public struct ChatMessage: Sendable, Codable, Equatable {
    public enum Role: String, Codable, Sendable {
        case system, user, assistant
    }

    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }
}

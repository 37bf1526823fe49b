import Tokenizer
import Transformer

/// A tokenized training example: `ids` [T] and next-token `labels` [T] (labels[t] = ids[t+1] when that token is
/// trained, -100 otherwise; the last row never has a label).
public struct TrainingExample: Sendable, Equatable {
    public var ids: [Int32]
    public var labels: [Int32]
    /// KTO: whether the answer is desirable (nil for every other objective).
    public var desirable: Bool?

    public init(ids: [Int32], labels: [Int32], desirable: Bool? = nil) {
        self.ids = ids
        self.labels = labels
        self.desirable = desirable
    }

    /// Builds shifted labels from a per-token trainable mask.
    public init(ids: [Int32], trainable: [Bool]) {
        self.ids = ids
        labels = (0..<ids.count).map { t in t + 1 < ids.count && trainable[t + 1] ? ids[t + 1] : -100 }
    }

    /// Tokens that carry a loss.
    public var labelCount: Int { labels.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    /// Tokens before the first labelled one (the prompt, when only the answer is labelled).
    public var promptLength: Int { (labels.firstIndex { $0 >= 0 } ?? ids.count - 1) + 1 }

    /// Throws when an example holds an id the model has no embedding for (a tokenizer larger than the model) or is
    /// longer than the model's context; the message names the example.
    public static func validate(_ examples: [TrainingExample], for model: TransformerModel) throws {
        for (i, e) in examples.enumerated() {
            do {
                try model.validate(tokens: e.ids, maxPosition: e.ids.count)
            } catch {
                throw TrainingError.options("example \(i + 1): \(error)")
            }
        }
    }
}

/// Turns conversations into training examples with a chat format: prompt and answer tokenized separately and
/// concatenated, the end-of-turn id kept in the labels, everything else masked; truncation to `maxLength`
/// drops (and counts) examples that would keep no answer token.
public struct ExampleBuilder: Sendable {
    public let formatter: ChatFormatter
    public let maxLength: Int
    /// Replaces a record's missing system prompt (nil: the format's default).
    public let system: String?

    /// - Parameter maxLength: tokens kept per example (at least 2).
    public init(formatter: ChatFormatter, maxLength: Int, system: String? = nil) {
        self.formatter = formatter
        self.maxLength = max(2, maxLength)
        self.system = system
    }

    /// Chat messages for a conversation in this builder's format.
    public func messages(_ c: Conversation, includeLastAnswer: Bool = true) -> [ChatMessage] {
        if var all = c.messages {
            if all.first?.role != .system, let system { all.insert(ChatMessage(role: .system, content: system), at: 0) }
            if !includeLastAnswer, all.last?.role == .assistant { all.removeLast() }
            return all
        }
        var out: [ChatMessage] = []
        if let s = c.system ?? system { out.append(ChatMessage(role: .system, content: s)) }
        for (i, turn) in c.turns.enumerated() {
            out.append(ChatMessage(role: .user, content: userContent(turn)))
            if includeLastAnswer || i < c.turns.count - 1 {
                out.append(ChatMessage(role: .assistant, content: turn.answer))
            }
        }
        return out
    }

    /// The user text of a turn: `plain` renders Alpaca's input on its own `Input:` line, chat formats join
    /// instruction and input with a newline.
    public func userContent(_ turn: Conversation.Turn) -> String {
        if formatter.template == .plain && !turn.input.isEmpty { return turn.instruction + "\nInput: " + turn.input }
        return turn.userText
    }

    /// Prompt ids for generating the last turn's answer.
    public func promptIDs(_ c: Conversation) throws -> [Int32] {
        try formatter.promptIDs(messages(c, includeLastAnswer: false), tools: c.tools)
    }

    /// The example, or nil when truncation to `maxLength` would leave no trained token.
    public func example(_ c: Conversation) throws -> TrainingExample? {
        var t = try formatter.trainingExample(messages(c), tools: c.tools)
        if t.ids.count > maxLength {
            t.ids.removeLast(t.ids.count - maxLength)
            t.trainable.removeLast(t.trainable.count - maxLength)
        }
        let example = TrainingExample(ids: t.ids, trainable: t.trainable)
        return example.labelCount > 0 ? example : nil
    }

    public struct Built: Sendable {
        public var examples: [TrainingExample]
        /// Examples dropped because truncation left no answer token.
        public var dropped: Int
    }

    public func build(_ conversations: [Conversation]) throws -> Built {
        var out: [TrainingExample] = []
        var dropped = 0
        for (i, c) in conversations.enumerated() {
            do {
                if let e = try example(c) { out.append(e) } else { dropped += 1 }
            } catch let error as TokenizerError {
                throw TrainingError.options("record \(i + 1): \(error)")
            }
        }
        return Built(examples: out, dropped: dropped)
    }
}

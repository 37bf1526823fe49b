/// A conversation as model input for training: ids plus, per id, whether its label is kept.
/// `trainable[i] == false` means label -100 (ignored by the loss).
/// ```swift
/// let example = try formatter.trainingExample(messages)
/// let labels = zip(example.ids, example.trainable).map { $1 ? Int($0) : -100 }
/// ```
public struct TokenizedConversation: Sendable, Equatable {
    public var ids: [TokenID]
    public var trainable: [Bool]

    public init(ids: [TokenID], trainable: [Bool]) {
        self.ids = ids
        self.trainable = trainable
    }
}

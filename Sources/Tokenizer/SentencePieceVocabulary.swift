/// A SentencePiece BPE vocabulary as `tokenizer.model` or a GGUF `llama` tokenizer holds it: every piece with its
/// score and type, and the options that shape encoding. `Tokenizer(sentencePiece:config:)` turns it into a tokenizer
/// that encodes as SentencePiece does (merges by score, "▁" for spaces, byte fallback).
/// ```swift
/// let vocabulary = try SentencePieceVocabulary(modelFile: Data(contentsOf: url), file: url.path)
/// let tokenizer = try Tokenizer(sentencePiece: vocabulary, config: TokenizerConfig())
/// ```
public struct SentencePieceVocabulary: Sendable, Equatable {
    /// SentencePiece's piece types, numbered as in its model proto and in GGUF's `tokenizer.ggml.token_type`.
    public enum PieceType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public struct Piece: Sendable, Equatable {
        public var text: String
        public var score: Float
        public var type: PieceType

        public init(text: String, score: Float, type: PieceType) {
            self.text = text
            self.score = score
            self.type = type
        }
    }

    /// By id.
    public var pieces: [Piece]
    /// Put "▁" in front of the text (`add_dummy_prefix`, GGUF `add_space_prefix`).
    public var addsDummyPrefix = true
    /// Drop leading and trailing spaces and collapse runs of spaces before encoding (`remove_extra_whitespaces`).
    public var removesExtraWhitespaces = false
    /// Characters missing from the vocabulary become `<0xAB>` byte pieces (`byte_fallback`).
    public var byteFallback = true
    public var unknownID: TokenID?
    public var bosID: TokenID?
    public var eosID: TokenID?
    public var padID: TokenID?
    /// Whether encoding with special tokens starts with BOS / ends with EOS.
    public var addsBOS = true
    public var addsEOS = false

    public init(pieces: [Piece]) {
        self.pieces = pieces
    }
}

/// Turns token strings back into text (`decoder` field). Supported: `ByteLevel`, the decoder of every
/// byte-level BPE tokenizer: each token's characters are mapped back to bytes; a token with a character
/// outside the byte alphabet (an added token such as "你好") contributes its own UTF-8 instead.
/// ```swift
/// TokenDecoder.byteLevel.bytes(of: "Ġhi")   // [0x20, 0x68, 0x69]
/// ```
enum TokenDecoder: Sendable {
    case byteLevel

    /// Reads the `decoder` field; a missing or `null` decoder is rejected because Hugging Face would then
    /// join raw token strings with spaces, which is never what a byte-level model wants.
    init(json field: JSONField?, file: String) throws {
        guard let field else { throw TokenizerError.unsupported(file: file, field: "decoder", value: "null") }
        let typeField = try field.required("type")
        switch try typeField.string() {
        case "ByteLevel": self = .byteLevel
        case let other: throw typeField.unsupported(other)
        }
    }

    /// The bytes one token contributes to the decoded text.
    func bytes(of token: String) -> [UInt8] {
        switch self {
        case .byteLevel: return ByteLevelAlphabet.bytes(fromToken: token) ?? Array(token.utf8)
        }
    }
}

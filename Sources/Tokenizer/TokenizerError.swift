/// Everything that can go wrong while loading a tokenizer or rendering a conversation.
///
/// Each case names the file (or the conversation) and the field involved, so the message alone
/// tells the user what to fix:
/// ```swift
/// do { _ = try Tokenizer.load(directory: url) } catch { print(error) }
/// // tokenizer.json: field 'pre_tokenizer.type' has unsupported value 'Whitespace'
/// ```
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The model directory does not exist or is not a directory.
    case directoryNotFound(path: String)
    /// The directory has none of `tokenizer.json`, `tokenizer.model` and `qwen.tiktoken`.
    case noTokenizerFile(directory: String)
    /// A file exists but could not be read.
    case unreadableFile(path: String, reason: String)
    /// A JSON file is not valid JSON.
    case malformedJSON(file: String, line: Int, column: Int, reason: String)
    /// A required field is absent.
    case missingField(file: String, field: String)
    /// A field is present but has the wrong type or an impossible value.
    case invalidField(file: String, field: String, reason: String)
    /// A field names a feature this implementation does not support.
    case unsupported(file: String, field: String, value: String)
    /// A line of a tiktoken rank file is not `base64 rank`.
    case malformedRankFile(file: String, line: Int, reason: String)
    /// A SentencePiece `tokenizer.model` is not a valid model proto.
    case malformedModelFile(file: String, offset: Int, reason: String)
    /// A chat format needs a special token that the tokenizer does not have.
    case missingSpecialToken(token: String, format: String)
    /// A conversation cannot be turned into a training example.
    case invalidConversation(reason: String)

    public var description: String {
        switch self {
        case .directoryNotFound(let path):
            return "tokenizer directory not found: \(path)"
        case .noTokenizerFile(let directory):
            return "no tokenizer.json, tokenizer.model or qwen.tiktoken in \(directory)"
        case .unreadableFile(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .malformedJSON(let file, let line, let column, let reason):
            return "\(file): malformed JSON at line \(line), column \(column): \(reason)"
        case .missingField(let file, let field):
            return "\(file): missing field '\(field)'"
        case .invalidField(let file, let field, let reason):
            return "\(file): field '\(field)' is invalid: \(reason)"
        case .unsupported(let file, let field, let value):
            return "\(file): field '\(field)' has unsupported value '\(value)'"
        case .malformedRankFile(let file, let line, let reason):
            return "\(file): line \(line): \(reason) (expected 'base64-token rank')"
        case .malformedModelFile(let file, let offset, let reason):
            return "\(file): not a SentencePiece model (byte \(offset)): \(reason)"
        case .missingSpecialToken(let token, let format):
            return "chat format '\(format)' needs the token \(token), which the tokenizer does not have"
        case .invalidConversation(let reason):
            return "invalid conversation: \(reason)"
        }
    }
}

/// Turns ids into text one at a time, emitting only complete UTF-8 characters: a Chinese character split
/// over two byte-level tokens comes out whole with the second token, never as U+FFFD.
/// ```swift
/// var stream = StreamingDecoder(tokenizer: tokenizer)
/// for id in generatedIDs { print(stream.append(id), terminator: "") }
/// print(stream.flush())
/// ```
public struct StreamingDecoder: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    /// Bytes of an unfinished character, waiting for the tokens that complete it (at most 3).
    private var pending: [UInt8] = []
    private var isFirstToken = true
    /// Leading characters the decoder may still strip (Llama-2's `Strip` decoder).
    private var stripBudget: Int

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = true) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        stripBudget = tokenizer.decoder.leadingStripCount
    }

    /// Adds one id and returns the text that is now complete (often empty mid-character).
    public mutating func append(_ id: TokenID) -> String {
        guard let token = tokenizer.decodedToken(id, skipSpecialTokens: skipSpecialTokens) else { return "" }
        var bytes = tokenizer.decoder.bytes(of: token, isFirst: isFirstToken)
        isFirstToken = false
        tokenizer.decoder.stripLeading(&bytes, budget: &stripBudget)
        pending += bytes
        let complete = Self.completeLength(of: pending)
        guard complete > 0 else { return "" }
        let text = String(decoding: pending[..<complete], as: UTF8.self)
        pending.removeFirst(complete)
        return text
    }

    /// Returns whatever is left (an unfinished character becomes U+FFFD) and resets the stream.
    public mutating func flush() -> String {
        defer {
            pending.removeAll()
            isFirstToken = true
            stripBudget = tokenizer.decoder.leadingStripCount
        }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The length of the longest prefix that does not end inside a multi-byte character. Bytes that can never
    /// become valid are released at once (they decode to U+FFFD either way).
    static func completeLength(of bytes: [UInt8]) -> Int {
        var index = bytes.count - 1
        while index >= 0, index >= bytes.count - 4 {
            let byte = bytes[index]
            if byte & 0xC0 != 0x80 {  // ASCII or a lead byte
                let width: Int
                switch byte {
                case 0xC2...0xDF: width = 2
                case 0xE0...0xEF: width = 3
                case 0xF0...0xF4: width = 4
                default: width = 1  // ASCII or a byte that cannot start a character
                }
                return bytes.count - index >= width ? bytes.count : index
            }
            index -= 1
        }
        return bytes.count
    }
}

/// Turns token strings back into text (`decoder` field of `tokenizer.json`).
///
/// Supported: `ByteLevel` (GPT-2, Qwen, Llama-3: token characters map back to bytes; a token with a character
/// outside the byte alphabet contributes its own UTF-8), `Metaspace`, and a `Sequence` of `Replace` (string
/// pattern), `ByteFallback`, `Fuse` and `Strip` after `Fuse` (Llama-2's decoder).
/// ```swift
/// decoder.bytes(of: "Ġhi", isFirst: true)   // [0x20, 0x68, 0x69] for ByteLevel
/// ```
struct TokenDecoder: Sendable {
    /// One `Replace` step: every occurrence of `pattern` becomes `content`.
    struct Replacement: Sendable {
        let pattern: [UInt8]
        let content: [UInt8]
    }

    private(set) var isByteLevel = false
    private(set) var replacements: [Replacement] = []
    /// `ByteFallback`: a token spelled `<0xAB>` stands for the byte 0xAB.
    private(set) var byteFallback = false
    /// `Metaspace` with a prepend scheme: these characters vanish from the first token instead of becoming spaces.
    private(set) var firstTokenDrops: [UInt8]?
    /// `Strip` after `Fuse`: up to `leadingStripCount` copies of `leadingStrip` are removed from the start of the text.
    private(set) var leadingStrip: [UInt8] = []
    private(set) var leadingStripCount = 0

    static let byteLevel = TokenDecoder(isByteLevel: true)

    private init(isByteLevel: Bool) {
        self.isByteLevel = isByteLevel
    }

    /// SentencePiece's decoding, as Llama 2's `[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)]`: "▁" becomes
    /// a space, `<0xAB>` pieces become bytes, and the space of the dummy prefix is dropped from the start.
    static func sentencePiece(stripsLeadingSpace: Bool) -> TokenDecoder {
        var decoder = TokenDecoder(isByteLevel: false)
        decoder.replacements = [Replacement(pattern: Array("\u{2581}".utf8), content: [0x20])]
        decoder.byteFallback = true
        if stripsLeadingSpace {
            decoder.leadingStrip = [0x20]
            decoder.leadingStripCount = 1
        }
        return decoder
    }

    /// Reads the `decoder` field; a missing or `null` decoder is rejected because Hugging Face would then
    /// join raw token strings with spaces, which is never what these models want.
    init(json field: JSONField?, file: String) throws {
        guard let field else { throw TokenizerError.unsupported(file: file, field: "decoder", value: "null") }
        self.init(isByteLevel: false)
        let typeField = try field.required("type")
        switch try typeField.string() {
        case "ByteLevel":
            isByteLevel = true
        case "Metaspace":
            let metaspace = try Metaspace(json: field)
            replacements = [Replacement(pattern: metaspace.replacement, content: [0x20])]
            firstTokenDrops = metaspace.prependScheme == .never ? nil : metaspace.replacement
        case "Sequence":
            var fused = false
            for step in try field.required("decoders").array() {
                try addSequenceStep(step, fused: &fused)
            }
        case let other:
            throw typeField.unsupported(other)
        }
    }

    private mutating func addSequenceStep(_ step: JSONField, fused: inout Bool) throws {
        let typeField = try step.required("type")
        switch try typeField.string() {
        case "Replace":
            guard let literal = try step.required("pattern").optional("String") else {
                throw try step.required("pattern").unsupported("Regex")
            }
            replacements.append(Replacement(pattern: Array(try literal.string().utf8),
                                            content: Array(try step.required("content").string().utf8)))
        case "ByteFallback":
            byteFallback = true
        case "Fuse":
            fused = true
        case "Strip":
            guard fused, try step.required("stop").int() == 0 else { throw typeField.unsupported("Strip before Fuse or with stop > 0") }
            leadingStrip = Array(try step.required("content").string().utf8)
            leadingStripCount = try step.required("start").int()
        case let other:
            throw typeField.unsupported(other)
        }
    }

    /// The bytes one token contributes; `isFirst` marks the first token of the decoded text.
    func bytes(of token: String, isFirst: Bool) -> [UInt8] {
        if isByteLevel { return ByteLevelAlphabet.bytes(fromToken: token) ?? Array(token.utf8) }
        if byteFallback, let byte = Self.fallbackByte(token) { return [byte] }
        var bytes = Array(token.utf8)
        if isFirst, let drops = firstTokenDrops { bytes = Self.replacing(drops, with: [], in: bytes) }
        for replacement in replacements {
            bytes = Self.replacing(replacement.pattern, with: replacement.content, in: bytes)
        }
        return bytes
    }

    /// Removes leading `Strip` characters from decoded bytes while `budget` lasts; the budget drops to zero
    /// once the text has started with anything else (so streaming can call this chunk by chunk).
    func stripLeading(_ bytes: inout [UInt8], budget: inout Int) {
        guard budget > 0, !leadingStrip.isEmpty else { return }
        var start = 0
        while budget > 0, bytes[start...].starts(with: leadingStrip) {
            start += leadingStrip.count
            budget -= 1
        }
        if start < bytes.count { budget = 0 }
        bytes.removeFirst(start)
    }

    /// `<0x0A>` -> 0x0A.
    private static func fallbackByte(_ token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, utf8.starts(with: Array("<0x".utf8)), utf8[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }

    private static func replacing(_ pattern: [UInt8], with content: [UInt8], in bytes: [UInt8]) -> [UInt8] {
        guard !pattern.isEmpty, bytes.count >= pattern.count else { return bytes }
        var result: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if bytes[index...].starts(with: pattern) {
                result += content
                index += pattern.count
            } else {
                result.append(bytes[index])
                index += 1
            }
        }
        return result
    }
}

/// SentencePiece-style spaces (`Metaspace` pre-tokenizer): every " " becomes the replacement character
/// (normally "▁"), one is put in front of the text depending on `prependScheme`, and with `split` the text is
/// cut before each replacement character (`"▁Hello▁world"` -> `"▁Hello"`, `"▁world"`).
/// ```swift
/// let metaspace = Metaspace(replacement: "▁", prependScheme: .first, split: true)
/// metaspace.split(Array("Hi you".utf8)[...], startsText: true)   // "▁Hi", "▁you"
/// ```
struct Metaspace: Sendable {
    enum PrependScheme: String, Sendable {
        /// Prepend to every piece of text (between added tokens).
        case always
        /// Prepend only to the piece that starts the input.
        case first
        case never
    }

    let replacement: [UInt8]
    let prependScheme: PrependScheme
    let split: Bool

    init(replacement: String, prependScheme: PrependScheme, split: Bool) {
        self.replacement = Array(replacement.utf8)
        self.prependScheme = prependScheme
        self.split = split
    }

    /// Reads a `Metaspace` pre-tokenizer or decoder; old files say `add_prefix_space` instead of `prepend_scheme`.
    init(json field: JSONField) throws {
        let replacement = try field.required("replacement").string()
        guard replacement.unicodeScalars.count == 1 else {
            throw try field.required("replacement").invalid("expected one character")
        }
        var scheme = PrependScheme.always
        if let schemeField = try field.optional("prepend_scheme") {
            let name = try schemeField.string()
            guard let parsed = PrependScheme(rawValue: name) else { throw schemeField.unsupported(name) }
            scheme = parsed
        } else if let addPrefixSpace = try field.optional("add_prefix_space"), try !addPrefixSpace.bool() {
            scheme = .never
        }
        self.init(replacement: replacement, prependScheme: scheme, split: try field.optional("split")?.bool() ?? true)
    }

    /// Applies the replacement and prefix to one piece; `startsText` says whether it begins the input.
    func split(_ piece: ArraySlice<UInt8>, startsText: Bool) -> [ArraySlice<UInt8>] {
        var text: [UInt8] = []
        text.reserveCapacity(piece.count + replacement.count)
        let prepends = prependScheme == .always || (prependScheme == .first && startsText)
        if prepends, !piece.starts(with: [0x20]), !piece.starts(with: replacement) { text += replacement }
        for byte in piece {
            if byte == 0x20 { text += replacement } else { text.append(byte) }
        }
        guard split else { return [text[...]] }
        var words: [ArraySlice<UInt8>] = []
        var start = 0
        var index = 0
        while index < text.count {
            if index > start, text[index...].starts(with: replacement) {
                words.append(text[start..<index])
                start = index
            }
            index += 1
        }
        if start < text.count { words.append(text[start...]) }
        return words
    }
}

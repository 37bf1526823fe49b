/// A piece of input after added tokens have been cut out: either plain text for the model, or a token id.
enum TextSegment {
    case text(ArraySlice<UInt8>)
    case token(TokenID)
}

/// Finds added tokens in text the way Hugging Face's `AddedVocabulary` does: leftmost-longest matches
/// (Aho-Corasick semantics), then `single_word`, `lstrip` and `rstrip` applied to each match.
/// ```swift
/// let matcher = AddedTokenMatcher(tokens: [AddedToken(id: 7, content: "<|im_end|>", special: true)])
/// matcher.split(Array("hi<|im_end|>".utf8)[...])   // [.text("hi"), .token(7)]
/// ```
struct AddedTokenMatcher: Sendable {
    private struct Pattern {
        let bytes: [UInt8]
        let token: AddedToken
    }

    /// Patterns bucketed by first byte, longest first, so the first hit at a position is the longest.
    private let buckets: [[Pattern]]
    let isEmpty: Bool

    /// `spell` gives the text to look for (the content, or its normalized form for normalized tokens).
    init(tokens: [AddedToken], spell: (AddedToken) -> [UInt8] = { Array($0.content.utf8) }) {
        var buckets = [[Pattern]](repeating: [], count: 256)
        for token in tokens {
            let bytes = spell(token)
            guard let first = bytes.first else { continue }
            buckets[Int(first)].append(Pattern(bytes: bytes, token: token))
        }
        self.buckets = buckets.map { $0.sorted { $0.bytes.count > $1.bytes.count } }
        isEmpty = tokens.isEmpty
    }

    /// Cuts `text` at every accepted match; text segments are never empty.
    func split(_ text: ArraySlice<UInt8>) -> [TextSegment] {
        guard !isEmpty else { return text.isEmpty ? [] : [.text(text)] }
        var segments: [TextSegment] = []
        var segmentStart = text.startIndex
        var position = text.startIndex
        while let (pattern, start) = nextMatch(in: text, from: position) {
            var matchStart = start
            var matchEnd = start + pattern.bytes.count
            position = matchEnd
            let token = pattern.token
            if token.singleWord, !Self.isWordBoundary(text, before: matchStart, after: matchEnd) { continue }
            if token.leftStrip {
                while matchStart > segmentStart, let (scalar, width) = Self.scalar(in: text, endingAt: matchStart),
                      scalar.properties.isWhitespace {
                    matchStart -= width
                }
            }
            if token.rightStrip {
                while let (scalar, width) = Self.scalar(in: text, startingAt: matchEnd), scalar.properties.isWhitespace {
                    matchEnd += width
                }
            }
            if segmentStart < matchStart { segments.append(.text(text[segmentStart..<matchStart])) }
            segments.append(.token(token.id))
            segmentStart = matchEnd
            position = matchEnd
        }
        if segmentStart < text.endIndex { segments.append(.text(text[segmentStart...])) }
        return segments
    }

    private func nextMatch(in text: ArraySlice<UInt8>, from start: Int) -> (Pattern, Int)? {
        var index = start
        while index < text.endIndex {
            for pattern in buckets[Int(text[index])] where text[index...].starts(with: pattern.bytes) {
                return (pattern, index)
            }
            index += 1
        }
        return nil
    }

    /// `single_word`: the match must not touch a letter, number or `_` (Rust's `is_alphanumeric`) on either side.
    private static func isWordBoundary(_ text: ArraySlice<UInt8>, before start: Int, after end: Int) -> Bool {
        func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
            if scalar == "_" || scalar.properties.isAlphabetic { return true }
            switch scalar.properties.generalCategory {
            case .decimalNumber, .letterNumber, .otherNumber: return true
            default: return false
            }
        }
        if let (scalar, _) = scalar(in: text, endingAt: start), isWordCharacter(scalar) { return false }
        if let (scalar, _) = scalar(in: text, startingAt: end), isWordCharacter(scalar) { return false }
        return true
    }

    /// The scalar that starts at `index`, and its width in bytes.
    private static func scalar(in text: ArraySlice<UInt8>, startingAt index: Int) -> (Unicode.Scalar, Int)? {
        guard index < text.endIndex else { return nil }
        var iterator = text[index...].makeIterator()
        var decoder = UTF8()
        guard case .scalarValue(let scalar) = decoder.decode(&iterator) else { return nil }
        return (scalar, UTF8.width(scalar))
    }

    /// The scalar that ends just before `index`, and its width in bytes.
    private static func scalar(in text: ArraySlice<UInt8>, endingAt index: Int) -> (Unicode.Scalar, Int)? {
        var start = index - 1
        while start > text.startIndex, text[start] & 0xC0 == 0x80 { start -= 1 }
        guard start >= text.startIndex, let (scalar, width) = scalar(in: text, startingAt: start),
              start + width == index else { return nil }
        return (scalar, width)
    }
}

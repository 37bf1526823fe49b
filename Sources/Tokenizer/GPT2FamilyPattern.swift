/// A hand-written matcher for the pre-tokenizer regexes of GPT-2, Qwen2 and Llama-3, which are one family:
///
/// - GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// - Qwen2: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// - Llama-3: as Qwen2 with `\p{N}{1,3}` (this matcher accepts any `\p{N}{1,k}` and `\p{N}+`).
///
/// It gives the same matches as the regex engine's leftmost-first alternation with backtracking, about four
/// times faster than `NSRegularExpression` (24 vs 6 MB/s on mixed Chinese/English text, release build).
/// ```swift
/// let pattern = GPT2FamilyPattern(recognizing: qwen2Regex)!
/// pattern.matches(in: Array("Hello  world".utf8)[...])   // [0..<5, 5..<6, 6..<12]: "Hello", " ", " world"
/// ```
struct GPT2FamilyPattern: Sendable, Equatable {
    enum Flavor: Sendable {
        /// GPT-2: case-sensitive contractions, ` ?` before letters and numbers, no line-break alternatives.
        case gpt2
        /// Qwen2 / Llama-3: case-insensitive contractions, any non-letter/number/line-break before letters,
        /// bounded digit runs, line breaks kept after punctuation and `\s*[\r\n]+`.
        case qwen
    }

    let flavor: Flavor
    /// The longest run of `\p{N}` one match may take (`Int.max` for `\p{N}+`).
    let maximumDigits: Int

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    private static let qwenPrefix = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"#
    private static let qwenSuffix = #"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Recognises one of the family's patterns from its source text; nil for any other regex.
    init?(recognizing source: String) {
        if source == Self.gpt2Source {
            self.init(flavor: .gpt2, maximumDigits: .max)
            return
        }
        guard source.hasPrefix(Self.qwenPrefix), source.hasSuffix(Self.qwenSuffix),
              source.utf8.count >= Self.qwenPrefix.utf8.count + Self.qwenSuffix.utf8.count else { return nil }
        let quantifier = source.dropFirst(Self.qwenPrefix.count).dropLast(Self.qwenSuffix.count)
        if quantifier.isEmpty {
            self.init(flavor: .qwen, maximumDigits: 1)
        } else if quantifier == "+" {
            self.init(flavor: .qwen, maximumDigits: .max)
        } else if quantifier.hasPrefix("{1,"), quantifier.hasSuffix("}"),
                  let limit = Int(quantifier.dropFirst(3).dropLast()), limit >= 1 {
            self.init(flavor: .qwen, maximumDigits: limit)
        } else {
            return nil
        }
    }

    init(flavor: Flavor, maximumDigits: Int) {
        self.flavor = flavor
        self.maximumDigits = maximumDigits
    }

    /// The byte ranges (indices of `bytes`) of successive non-overlapping matches, leftmost first.
    func matches(in bytes: ArraySlice<UInt8>) -> [Range<Int>] {
        let text = ScalarText(bytes)
        var ranges: [Range<Int>] = []
        var index = 0
        while index < text.count {
            if let end = matchEnd(at: index, in: text) {
                ranges.append(text.byteOffsets[index]..<text.byteOffsets[end])
                index = end
            } else {
                index += 1
            }
        }
        return ranges
    }

    /// The end (scalar index) of the match starting at `i`, trying the alternatives in pattern order.
    private func matchEnd(at i: Int, in text: ScalarText) -> Int? {
        let classes = text.classes
        let n = text.count
        if let end = contractionEnd(at: i, in: text) { return end }
        // Letters: ` ?\p{L}+` (GPT-2) or `[^\r\n\p{L}\p{N}]?\p{L}+` (Qwen).
        if classes[i] == .letter { return runEnd(from: i, in: classes, where: .letter) }
        if i + 1 < n, classes[i + 1] == .letter {
            let prefixAllowed = flavor == .gpt2
                ? classes[i] == .space
                : classes[i] != .number && classes[i] != .lineBreak
            if prefixAllowed { return runEnd(from: i + 1, in: classes, where: .letter) }
        }
        // Numbers: ` ?\p{N}+` (GPT-2) or `\p{N}{1,k}` (Qwen).
        if classes[i] == .number { return i + min(runEnd(from: i, in: classes, where: .number) - i, maximumDigits) }
        if flavor == .gpt2, classes[i] == .space, i + 1 < n, classes[i + 1] == .number {
            return runEnd(from: i + 1, in: classes, where: .number)
        }
        // Punctuation: ` ?[^\s\p{L}\p{N}]+`, followed by `[\r\n]*` in Qwen.
        var start = i
        if classes[i] == .space, i + 1 < n, classes[i + 1] == .other { start = i + 1 }
        if classes[start] == .other {
            let end = runEnd(from: start, in: classes, where: .other)
            return flavor == .qwen ? runEnd(from: end, in: classes, where: .lineBreak) : end
        }
        guard classes[i].isWhitespace else { return nil }
        var end = i
        while end < n, classes[end].isWhitespace { end += 1 }
        // Qwen's `\s*[\r\n]+`: backtracking stops right after the run's last line break.
        if flavor == .qwen, let lastBreak = classes[i..<end].lastIndex(of: .lineBreak) { return lastBreak + 1 }
        // `\s+(?!\S)` leaves the last space to the next word, unless the run ends the text; then `\s+`.
        if end < n, end - i >= 2 { return end - 1 }
        return end
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d`, case-insensitive in the Qwen flavor (where "ſ" folds to "s").
    private func contractionEnd(at i: Int, in text: ScalarText) -> Int? {
        guard text.scalars[i] == "'", i + 1 < text.count else { return nil }
        let first = folded(text.scalars[i + 1])
        if first == "s" || first == "t" || first == "m" || first == "d" { return i + 2 }
        guard i + 2 < text.count else { return nil }
        let second = folded(text.scalars[i + 2])
        switch (first, second) {
        case ("r", "e"), ("v", "e"), ("l", "l"): return i + 3
        default: return nil
        }
    }

    private func folded(_ scalar: Unicode.Scalar) -> Unicode.Scalar {
        guard flavor == .qwen else { return scalar }
        if ("A"..."Z").contains(scalar) { return Unicode.Scalar(scalar.value + 32) ?? scalar }
        return scalar == "\u{017F}" ? "s" : scalar
    }

    private func runEnd(from start: Int, in classes: [ScalarClass], where kind: ScalarClass) -> Int {
        var end = start
        while end < classes.count, classes[end] == kind { end += 1 }
        return end
    }
}

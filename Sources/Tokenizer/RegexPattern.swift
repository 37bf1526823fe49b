import Foundation

/// Any other `Split` regex, run with `NSRegularExpression` (ICU). ICU and Oniguruma agree on the constructs
/// tokenizer files use (classes, `\p{..}`, lookahead, `(?i:..)`, possessive quantifiers) except `\s`, which ICU
/// limits to `[\t\n\f\r\p{Z}]`, and `\b`, which ICU draws skipping combining marks and format characters; they are
/// rewritten to Oniguruma's meaning: Unicode White_Space (adding U+000B and U+0085), `\w` as letters, marks, numbers
/// and connector punctuation (ICU's leaves out numbers such as "½"), and `\b` as a plain change between `\w` and `\W`
/// (`[\b]`, a backspace in a class, is not used by tokenizer files and not told apart).
/// Match positions are mapped back to UTF-8.
/// ```swift
/// let pattern = try RegexPattern(source: #"\w+|[^\w\s]+"#, field: field)
/// pattern.matches(in: Array("hi, you".utf8)[...])   // [0..<2, 2..<3, 4..<7]
/// ```
struct RegexPattern: @unchecked Sendable {  // NSRegularExpression is immutable and thread-safe once built
    private let expression: NSRegularExpression

    init(source: String, field: JSONField) throws {
        do {
            expression = try NSRegularExpression(pattern: Self.classesAsOniguruma(source))
        } catch {
            throw field.invalid("cannot compile regex '\(source)': \(error.localizedDescription)")
        }
    }

    init(literal: String, field: JSONField) throws {
        try self.init(source: NSRegularExpression.escapedPattern(for: literal), field: field)
    }

    /// `\s`, `\S`, `\w`, `\W` and `\b` spelled out as Oniguruma means them, leaving escaped backslashes alone.
    static func classesAsOniguruma(_ source: String) -> String {
        let word = #"[\p{L}\p{M}\p{N}\p{Pc}]"#
        var result = ""
        var escaped = false
        for character in source {
            if escaped {
                switch character {
                case "s": result += "p{White_Space}"
                case "S": result += "P{White_Space}"
                case "w":
                    result.removeLast()
                    result += word
                case "W":
                    result.removeLast()
                    result += "[^" + word.dropFirst()
                case "b":
                    result.removeLast()
                    result += "(?:(?<=\(word))(?!\(word))|(?<!\(word))(?=\(word)))"
                default: result.append(character)
                }
                escaped = false
            } else {
                escaped = character == "\\"
                result.append(character)
            }
        }
        return result
    }

    /// The byte ranges (indices of `bytes`) of successive non-overlapping matches; empty matches only when
    /// `keepingEmpty` (a `Split` cuts the text at them, as Hugging Face does).
    func matches(in bytes: ArraySlice<UInt8>, keepingEmpty: Bool = false) -> [Range<Int>] {
        let text = String(decoding: bytes, as: UTF8.self)
        // utf8Offsets[k] is the byte index of UTF-16 offset k.
        var utf8Offsets: [Int] = []
        utf8Offsets.reserveCapacity(bytes.count + 1)
        var offset = bytes.startIndex
        for scalar in text.unicodeScalars {
            for _ in 0..<UTF16.width(scalar) { utf8Offsets.append(offset) }
            offset += UTF8.width(scalar)
        }
        utf8Offsets.append(offset)
        let whole = NSRange(location: 0, length: utf8Offsets.count - 1)
        return expression.matches(in: text, range: whole).compactMap { match in
            let range = match.range
            guard range.location != NSNotFound, range.length > 0 || keepingEmpty else { return nil }
            return utf8Offsets[range.location]..<utf8Offsets[range.location + range.length]
        }
    }
}

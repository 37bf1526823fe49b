import Foundation

/// Any other `Split` regex, run with `NSRegularExpression` (ICU). ICU and Oniguruma agree on the constructs
/// tokenizer files use (classes, `\p{..}`, lookahead, `(?i:..)`, possessive quantifiers) except `\s`, which ICU
/// limits to `[\t\n\f\r\p{Z}]`; it is rewritten to Oniguruma's Unicode White_Space (adding U+000B and U+0085).
/// Match positions are mapped back to UTF-8.
/// ```swift
/// let pattern = try RegexPattern(source: #"\w+|[^\w\s]+"#, field: field)
/// pattern.matches(in: Array("hi, you".utf8)[...])   // [0..<2, 2..<3, 4..<7]
/// ```
struct RegexPattern: @unchecked Sendable {  // NSRegularExpression is immutable and thread-safe once built
    private let expression: NSRegularExpression

    init(source: String, field: JSONField) throws {
        do {
            expression = try NSRegularExpression(pattern: Self.whiteSpaceAsOniguruma(source))
        } catch {
            throw field.invalid("cannot compile regex '\(source)': \(error.localizedDescription)")
        }
    }

    init(literal: String, field: JSONField) throws {
        try self.init(source: NSRegularExpression.escapedPattern(for: literal), field: field)
    }

    /// `\s` and `\S` spelled as the White_Space property, leaving escaped backslashes alone.
    static func whiteSpaceAsOniguruma(_ source: String) -> String {
        var result = ""
        var escaped = false
        for character in source {
            if escaped {
                switch character {
                case "s": result += "p{White_Space}"
                case "S": result += "P{White_Space}"
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

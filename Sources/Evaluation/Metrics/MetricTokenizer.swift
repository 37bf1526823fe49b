import Foundation

/// Splits text into the tokens that BLEU and ROUGE count, for Chinese, Japanese, Korean and space-separated text alike.
///
/// The rule, applied to the Unicode scalars of the NFC-normalised text (`scripts/make_metric_fixtures.py` holds a
/// Python port of it; the golden test checks that both produce the same token lists):
/// 1. A scalar with the Unicode `White_Space` property separates tokens and is dropped.
/// 2. A CJK scalar (Han ideographs and radicals, Hiragana, Katakana, Bopomofo, Hangul, CJK symbols and
///    punctuation such as `。`, `、`, `「`, full-width/half-width forms, see ``cjkRanges``) is a token on its own.
/// 3. A maximal run of the other letters, digits and combining marks (general category `L*`, `N*`, `M*`) is one word
///    token: `Aspirin`, `500mg`, `café`.
/// 4. Every other scalar (ASCII and Unicode punctuation, symbols, emoji, controls) is a token on its own.
///
/// No lowercasing and no stemming: the metrics are case-sensitive.
///
/// ```swift
/// MetricTokenizer.tokens("推荐用药：银翘解毒片500mg。")
/// // ["推", "荐", "用", "药", "：", "银", "翘", "解", "毒", "片", "500mg", "。"]
/// MetricTokenizer.tokens("Take 2 tablets, twice a day.")
/// // ["Take", "2", "tablets", ",", "twice", "a", "day", "."]
/// ```
public enum MetricTokenizer {
    /// Scalar ranges that are tokenised one character at a time (rule 2). Sorted, non-overlapping.
    public static let cjkRanges: [ClosedRange<UInt32>] = [
        0x1100...0x11FF,   // Hangul Jamo
        0x2E80...0x2FDF,   // CJK Radicals Supplement, Kangxi Radicals
        0x2FF0...0x2FFF,   // Ideographic Description Characters
        0x3000...0x303F,   // CJK Symbols and Punctuation (U+3000 itself is White_Space, rule 1 wins)
        0x3040...0x30FF,   // Hiragana, Katakana
        0x3100...0x312F,   // Bopomofo
        0x3130...0x318F,   // Hangul Compatibility Jamo
        0x3190...0x31FF,   // Kanbun, Bopomofo Extended, CJK Strokes, Katakana Phonetic Extensions
        0x3200...0x33FF,   // Enclosed CJK Letters and Months, CJK Compatibility
        0x3400...0x4DBF,   // CJK Unified Ideographs Extension A
        0x4E00...0x9FFF,   // CJK Unified Ideographs
        0xA960...0xA97F,   // Hangul Jamo Extended-A
        0xAC00...0xD7FF,   // Hangul Syllables, Hangul Jamo Extended-B
        0xF900...0xFAFF,   // CJK Compatibility Ideographs
        0xFE30...0xFE4F,   // CJK Compatibility Forms
        0xFF00...0xFFEF,   // Halfwidth and Fullwidth Forms (full-width `：`, `（`, `Ａ`, half-width Katakana)
        0x20000...0x3FFFD, // Supplementary and Tertiary Ideographic Planes (Extensions B..H, compatibility)
    ]

    /// The tokens of `text`; see the type documentation for the rule. Empty or all-space text gives `[]`.
    public static func tokens(_ text: String) -> [String] {
        var result: [String] = []
        var word = String.UnicodeScalarView()
        func flushWord() {
            if !word.isEmpty {
                result.append(String(word))
                word = String.UnicodeScalarView()
            }
        }
        for scalar in text.precomposedStringWithCanonicalMapping.unicodeScalars {
            switch kind(of: scalar) {
            case .space:
                flushWord()
            case .wordPart:
                word.append(scalar)
            case .single:
                flushWord()
                result.append(String(scalar))
            }
        }
        flushWord()
        return result
    }

    /// Whether `scalar` lies in one of ``cjkRanges``.
    public static func isCJK(_ scalar: Unicode.Scalar) -> Bool {
        let v = scalar.value
        // Binary search over the sorted ranges.
        var lo = 0, hi = cjkRanges.count - 1
        while lo <= hi {
            let mid = (lo + hi) / 2
            let r = cjkRanges[mid]
            if v < r.lowerBound { hi = mid - 1 } else if v > r.upperBound { lo = mid + 1 } else { return true }
        }
        return false
    }

    private enum Kind { case space, wordPart, single }

    private static func kind(of scalar: Unicode.Scalar) -> Kind {
        let props = scalar.properties
        if props.isWhitespace { return .space }
        if isCJK(scalar) { return .single }
        switch props.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter,
             .decimalNumber, .letterNumber, .otherNumber,
             .nonspacingMark, .spacingMark, .enclosingMark:
            return .wordPart
        default:
            return .single
        }
    }
}

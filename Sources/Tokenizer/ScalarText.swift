/// The classes of characters that the GPT-2 family of pre-tokenizer patterns tells apart.
enum ScalarClass: UInt8 {
    /// `\p{L}`
    case letter
    /// `\p{N}`
    case number
    /// U+0020, the only space the patterns' ` ?` accepts.
    case space
    /// `\r` or `\n`.
    case lineBreak
    /// Any other `\s` (Unicode White_Space): tab, U+00A0, U+3000, U+2028...
    case otherWhitespace
    /// Everything else: punctuation, symbols, emoji, controls.
    case other

    var isWhitespace: Bool { self == .space || self == .lineBreak || self == .otherWhitespace }

    static func of(_ scalar: Unicode.Scalar) -> ScalarClass {
        if scalar.isASCII { return asciiTable[Int(scalar.value)] }
        let properties = scalar.properties
        if properties.isWhitespace { return .otherWhitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    private static let asciiTable: [ScalarClass] = (0..<128).map { (value: Int) -> ScalarClass in
        switch value {
        case 0x41...0x5A, 0x61...0x7A: return .letter
        case 0x30...0x39: return .number
        case 0x20: return .space
        case 0x0A, 0x0D: return .lineBreak
        case 0x09, 0x0B, 0x0C: return .otherWhitespace
        default: return .other
        }
    }
}

/// UTF-8 text decoded once into scalars, their classes and their byte offsets, for the hand-written matchers.
/// ```swift
/// let text = ScalarText(Array("hi 你".utf8)[...])
/// text.count            // 4 scalars
/// text.byteOffsets[3]   // 3: "你" starts at index 3
/// ```
struct ScalarText {
    private(set) var scalars: [Unicode.Scalar] = []
    private(set) var classes: [ScalarClass] = []
    /// `byteOffsets[i]` is where scalar `i` starts, as an index of the slice it was made from; the last entry is the end.
    private(set) var byteOffsets: [Int] = []

    var count: Int { scalars.count }

    init(_ bytes: ArraySlice<UInt8>) {
        scalars.reserveCapacity(bytes.count)
        classes.reserveCapacity(bytes.count)
        byteOffsets.reserveCapacity(bytes.count + 1)
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var offset = bytes.startIndex
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                append(scalar, at: offset)
                offset += UTF8.width(scalar)
            case .error:
                append("\u{FFFD}", at: offset)  // cannot happen for text that came from a Swift String
                offset += 1
            case .emptyInput:
                break loop
            }
        }
        byteOffsets.append(bytes.endIndex)
    }

    private mutating func append(_ scalar: Unicode.Scalar, at offset: Int) {
        scalars.append(scalar)
        classes.append(ScalarClass.of(scalar))
        byteOffsets.append(offset)
    }
}

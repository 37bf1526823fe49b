import Foundation

/// What a `tokenizer.json` does to text before pre-tokenization (`normalizer` field).
/// Supported: `null`, `NFC`, `NFD`, `NFKC`, `NFKD`, `Prepend`, `Replace` (string or regex pattern) and a
/// `Sequence` of those (Llama-2's is `[Prepend("▁"), Replace(" ", "▁")]`); anything else is rejected at load.
/// ```swift
/// let nfkc = Normalizer(steps: [.unicode(.nfkc)])
/// String(decoding: nfkc.apply(Array("ＡＢＣ".utf8)[...]), as: UTF8.self)   // "ABC"
/// ```
struct Normalizer: Sendable {
    enum Form: String, Sendable {
        case nfc = "NFC", nfd = "NFD", nfkc = "NFKC", nfkd = "NFKD"
    }

    enum Step: Sendable {
        case unicode(Form)
        /// Put this text in front of any non-empty text.
        case prepend([UInt8])
        /// Replace every occurrence of a literal.
        case replaceLiteral([UInt8], with: [UInt8])
        /// Replace every match of a regex.
        case replaceRegex(RegexPattern, with: [UInt8])
        /// SentencePiece's `remove_extra_whitespaces`, first half: drop leading and trailing spaces, collapse runs to one.
        case collapseSpaces
        /// Its second half, after spaces became "▁": drop every trailing copy of this text (a "▁" typed as such too).
        case dropTrailing([UInt8])
    }

    /// Applied in order; empty means the text is used as is.
    let steps: [Step]

    init(steps: [Step]) {
        self.steps = steps
    }

    /// Reads the `normalizer` field (nil or `null` for none).
    init(json field: JSONField?) throws {
        guard let field else {
            self.init(steps: [])
            return
        }
        let typeField = try field.required("type")
        let type = try typeField.string()
        switch type {
        case "Sequence":
            self.init(steps: try field.required("normalizers").array().flatMap { try Normalizer(json: $0).steps })
        case "Prepend":
            self.init(steps: [.prepend(Array(try field.required("prepend").string().utf8))])
        case "Replace":
            let content = Array(try field.required("content").string().utf8)
            let pattern = try field.required("pattern")
            if let literal = try pattern.optional("String") {
                let bytes = Array(try literal.string().utf8)
                guard !bytes.isEmpty else { throw literal.invalid("the pattern is empty") }
                self.init(steps: [.replaceLiteral(bytes, with: content)])
            } else {
                let regex = try pattern.required("Regex")
                self.init(steps: [.replaceRegex(try RegexPattern(source: regex.string(), field: regex), with: content)])
            }
        default:
            guard let form = Form(rawValue: type) else { throw typeField.unsupported(type) }
            self.init(steps: [.unicode(form)])
        }
    }

    /// The normalized UTF-8 of `bytes`.
    func apply(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        guard !steps.isEmpty else { return bytes }
        var text = bytes
        for step in steps {
            switch step {
            case .unicode(let form):
                text = Self.normalize(text, form)
            case .prepend(let prefix):
                if !text.isEmpty { text = (prefix + text)[...] }
            case .replaceLiteral(let literal, let content):
                text = Self.replace(text, ranges: Self.occurrences(of: literal, in: text), with: content)
            case .replaceRegex(let pattern, let content):
                text = Self.replace(text, ranges: pattern.matches(in: text), with: content)
            case .collapseSpaces:
                text = Self.collapseSpaces(text)
            case .dropTrailing(let suffix):
                while !suffix.isEmpty, text.count >= suffix.count, text.suffix(suffix.count).elementsEqual(suffix) {
                    text = text.dropLast(suffix.count)
                }
            }
        }
        return text
    }

    /// Unicode normalization; ASCII text is unchanged by every form.
    private static func normalize(_ bytes: ArraySlice<UInt8>, _ form: Form) -> ArraySlice<UInt8> {
        guard bytes.contains(where: { $0 >= 0x80 }) else { return bytes }
        let text = String(decoding: bytes, as: UTF8.self)
        switch form {
        case .nfc: return Array(text.precomposedStringWithCanonicalMapping.utf8)[...]
        case .nfd: return Array(text.decomposedStringWithCanonicalMapping.utf8)[...]
        case .nfkc: return Array(text.precomposedStringWithCompatibilityMapping.utf8)[...]
        case .nfkd: return Array(text.decomposedStringWithCompatibilityMapping.utf8)[...]
        }
    }

    private static func collapseSpaces(_ text: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var result: [UInt8] = []
        result.reserveCapacity(text.count)
        var pendingSpace = false
        for byte in text {
            if byte == 0x20 {
                pendingSpace = !result.isEmpty
                continue
            }
            if pendingSpace { result.append(0x20) }
            pendingSpace = false
            result.append(byte)
        }
        return result[...]
    }

    private static func occurrences(of literal: [UInt8], in text: ArraySlice<UInt8>) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var index = text.startIndex
        while index + literal.count <= text.endIndex {
            if text[index] == literal[0], text[index..<(index + literal.count)].elementsEqual(literal) {
                ranges.append(index..<(index + literal.count))
                index += literal.count
            } else {
                index += 1
            }
        }
        return ranges
    }

    private static func replace(_ text: ArraySlice<UInt8>, ranges: [Range<Int>], with content: [UInt8]) -> ArraySlice<UInt8> {
        guard !ranges.isEmpty else { return text }
        var result: [UInt8] = []
        result.reserveCapacity(text.count + ranges.count * content.count)
        var position = text.startIndex
        for range in ranges {
            result += text[position..<range.lowerBound]
            result += content
            position = range.upperBound
        }
        result += text[position...]
        return result[...]
    }
}

/// How normalized text is cut into words before BPE (`pre_tokenizer` field of `tokenizer.json`).
///
/// Supported: `ByteLevel` (with or without GPT-2's regex and the prefix space), `Split` with a regex or a
/// literal string and behavior `Isolated` or `Removed`, `Metaspace`, `Sequence` of those, and `null`.
/// ```swift
/// let words = preTokenizer.split([Array("Hello world".utf8)[...]], firstStartsText: true)   // "Hello", " world"
/// ```
indirect enum PreTokenizer: Sendable {
    case byteLevel(addPrefixSpace: Bool, pattern: GPT2FamilyPattern?)
    case split(SplitMatcher, keepsMatches: Bool)
    case metaspace(Metaspace)
    case sequence([PreTokenizer])

    /// A compiled `Split` pattern: the hand-written matcher when the regex is one of the GPT-2 family, else ICU.
    enum SplitMatcher: Sendable {
        case family(GPT2FamilyPattern)
        case regex(RegexPattern)

        func matches(in bytes: ArraySlice<UInt8>) -> [Range<Int>] {
            switch self {
            case .family(let pattern): return pattern.matches(in: bytes)
            case .regex(let pattern): return pattern.matches(in: bytes, keepingEmpty: true)
            }
        }
    }

    /// Reads the `pre_tokenizer` field (nil or `null` for none).
    init(json field: JSONField?) throws {
        guard let field else {
            self = .sequence([])
            return
        }
        let typeField = try field.required("type")
        switch try typeField.string() {
        case "ByteLevel":
            let addPrefixSpace = try field.optional("add_prefix_space")?.bool() ?? true
            let useRegex = try field.optional("use_regex")?.bool() ?? true
            self = .byteLevel(addPrefixSpace: addPrefixSpace,
                              pattern: useRegex ? GPT2FamilyPattern(flavor: .gpt2, maximumDigits: .max) : nil)
        case "Split":
            self = try Self.parseSplit(field)
        case "Metaspace":
            self = .metaspace(try Metaspace(json: field))
        case "Sequence":
            self = .sequence(try field.required("pretokenizers").array().map { try PreTokenizer(json: $0) })
        case let other:
            throw typeField.unsupported(other)
        }
    }

    private static func parseSplit(_ field: JSONField) throws -> PreTokenizer {
        if let invert = try field.optional("invert"), try invert.bool() { throw invert.unsupported("true") }
        let behaviorField = try field.required("behavior")
        let keepsMatches: Bool
        switch try behaviorField.string() {
        case "Isolated": keepsMatches = true
        case "Removed": keepsMatches = false
        case let other: throw behaviorField.unsupported(other)
        }
        let patternField = try field.required("pattern")
        let matcher: SplitMatcher
        if let regex = try patternField.optional("Regex") {
            let source = try regex.string()
            if let family = GPT2FamilyPattern(recognizing: source) {
                matcher = .family(family)
            } else {
                matcher = .regex(try RegexPattern(source: source, field: regex))
            }
        } else if let literal = try patternField.optional("String") {
            matcher = .regex(try RegexPattern(literal: try literal.string(), field: literal))
        } else {
            throw patternField.invalid("expected a 'Regex' or 'String' member")
        }
        return .split(matcher, keepsMatches: keepsMatches)
    }

    /// True when a `ByteLevel` step is present: the BPE model then works on raw bytes.
    var isByteLevel: Bool {
        switch self {
        case .byteLevel: return true
        case .split, .metaspace: return false
        case .sequence(let steps): return steps.contains(where: \.isByteLevel)
        }
    }

    /// Cuts every piece into words; empty words are dropped, as Hugging Face does.
    /// `firstStartsText` says whether `pieces[0]` begins the input (Metaspace's `prepend_scheme: first`).
    func split(_ pieces: [ArraySlice<UInt8>], firstStartsText: Bool) -> [ArraySlice<UInt8>] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(pieces) { $1.split($0, firstStartsText: firstStartsText) }
        case .metaspace(let metaspace):
            return pieces.enumerated().flatMap { metaspace.split($1, startsText: firstStartsText && $0 == 0) }
        case .byteLevel(let addPrefixSpace, let pattern):
            return pieces.flatMap { piece -> [ArraySlice<UInt8>] in
                let spaced = addPrefixSpace && piece.first != 0x20 ? ([0x20] + piece)[...] : piece
                guard let pattern else { return [spaced] }
                return Self.cut(spaced, at: pattern.matches(in: spaced), keepingMatches: true)
            }
        case .split(let matcher, let keepsMatches):
            return pieces.flatMap { Self.cut($0, at: matcher.matches(in: $0), keepingMatches: keepsMatches) }
        }
    }

    /// The gaps between `matches`, and the matches themselves when `keepingMatches` (behavior `Isolated`).
    private static func cut(_ piece: ArraySlice<UInt8>, at matches: [Range<Int>],
                            keepingMatches: Bool) -> [ArraySlice<UInt8>] {
        var words: [ArraySlice<UInt8>] = []
        var position = piece.startIndex
        for match in matches {
            if position < match.lowerBound { words.append(piece[position..<match.lowerBound]) }
            if keepingMatches { words.append(piece[match]) }
            position = match.upperBound
        }
        if position < piece.endIndex { words.append(piece[position...]) }
        return words
    }
}

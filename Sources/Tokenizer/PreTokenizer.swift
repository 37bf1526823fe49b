/// How normalized text is cut into words before BPE (`pre_tokenizer` field of `tokenizer.json`).
///
/// Supported: `ByteLevel` (with or without GPT-2's regex and the prefix space), `Split` with a regex or a
/// literal string, any behavior (`Isolated`, `Removed`, `MergedWithPrevious` as Gemma's files have it,
/// `MergedWithNext`, `Contiguous`) and `invert`, `Metaspace`, `Sequence` of those, and `null`.
/// ```swift
/// let words = preTokenizer.split([Array("Hello world".utf8)[...]], firstStartsText: true)   // "Hello", " world"
/// ```
indirect enum PreTokenizer: Sendable {
    case byteLevel(addPrefixSpace: Bool, pattern: GPT2FamilyPattern?)
    case split(SplitMatcher, Behavior, invert: Bool = false)
    case metaspace(Metaspace)
    case sequence([PreTokenizer])

    /// What a `Split` does with the stretches its pattern matches (Hugging Face's SplitDelimiterBehavior).
    enum Behavior: String, Sendable {
        /// Matches dropped, the text between them kept.
        case removed = "Removed"
        /// Matches and the text between them, each its own word.
        case isolated = "Isolated"
        /// Each match joined to the word before it ("a b" split on " ": "a ", "b").
        case mergedWithPrevious = "MergedWithPrevious"
        /// Each match joined to the word after it ("a b": "a", " b").
        case mergedWithNext = "MergedWithNext"
        /// Adjacent matches joined into one word, as are adjacent stretches between them.
        case contiguous = "Contiguous"
    }

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
        let invert = try field.optional("invert")?.bool() ?? false
        let behaviorField = try field.required("behavior")
        let name = try behaviorField.string()
        guard let behavior = Behavior(rawValue: name) else { throw behaviorField.unsupported(name) }
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
        return .split(matcher, behavior, invert: invert)
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
                return Self.cut(spaced, at: pattern.matches(in: spaced), behavior: .isolated)
            }
        case .split(let matcher, let behavior, let invert):
            return pieces.flatMap { Self.cut($0, at: matcher.matches(in: $0), behavior: behavior, invert: invert) }
        }
    }

    /// `piece` cut at `matches` as Hugging Face's `split` does: the piece as alternating stretches (between matches,
    /// and matches, the flags swapped when `invert`), combined by `behavior`; empty words dropped.
    private static func cut(_ piece: ArraySlice<UInt8>, at matches: [Range<Int>], behavior: Behavior,
                            invert: Bool = false) -> [ArraySlice<UInt8>] {
        var stretches: [(range: Range<Int>, isMatch: Bool)] = []
        var position = piece.startIndex
        for match in matches {
            if position < match.lowerBound { stretches.append((position..<match.lowerBound, invert)) }
            stretches.append((match, !invert))
            position = match.upperBound
        }
        if position < piece.endIndex { stretches.append((position..<piece.endIndex, invert)) }
        let words: [Range<Int>]
        switch behavior {
        case .removed: words = stretches.filter { !$0.isMatch }.map(\.range)
        case .isolated: words = stretches.map(\.range)
        case .mergedWithPrevious: words = joined(stretches) { isMatch, previousMatch in isMatch && !previousMatch }
        case .mergedWithNext: words = joined(stretches.reversed()) { isMatch, previousMatch in isMatch && !previousMatch }.reversed()
        case .contiguous: words = joined(stretches) { isMatch, previousMatch in isMatch == previousMatch }
        }
        return words.filter { !$0.isEmpty }.map { piece[$0] }
    }

    /// The stretches in order, each joined to the word before it when `joins(isMatch, previous stretch's isMatch)`
    /// (the first stretch starts a word).
    private static func joined(_ stretches: some Sequence<(range: Range<Int>, isMatch: Bool)>,
                               when joins: (Bool, Bool) -> Bool) -> [Range<Int>] {
        var words: [Range<Int>] = []
        var previousMatch = false
        for (range, isMatch) in stretches {
            if joins(isMatch, previousMatch), let last = words.last {
                words[words.count - 1] = min(last.lowerBound, range.lowerBound)..<max(last.upperBound, range.upperBound)
            } else {
                words.append(range)
            }
            previousMatch = isMatch
        }
        return words
    }
}

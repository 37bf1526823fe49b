/// A byte-pair-encoding model: vocabulary, merge rules and how a word becomes its first symbols.
///
/// For byte-level vocabularies (GPT-2, Qwen, Llama-3, tiktoken) the symbols are raw bytes and the vocabulary
/// is keyed by each token's raw bytes, so words never need to be re-spelled in the "Ġ" alphabet.
/// Otherwise the symbols are the word's characters and tokens are keyed by their UTF-8.
/// ```swift
/// var ids: [TokenID] = []
/// model.tokenize(Array(" hello".utf8)[...], into: &ids)
/// ```
struct BPEModel: Sendable {
    /// Token spelling (raw bytes, or UTF-8 when `symbolsAreBytes` is false) to id.
    let index: TokenIndex
    /// Token spelling as written in the vocabulary file, by id (nil for unused ids).
    let tokens: [String?]
    let merges: BPEMergeTable
    /// Hugging Face `ignore_merges` / tiktoken: a word that is itself a token is emitted whole.
    let ignoreMerges: Bool
    let symbolsAreBytes: Bool
    /// `unk_token` id for symbols missing from the vocabulary (when nil they are dropped, as in Hugging Face).
    let unknownID: TokenID?
    let fusesUnknown: Bool
    /// `byte_fallback`: ids of the `<0x00>`...`<0xFF>` tokens (-1 when absent), which spell characters missing
    /// from the vocabulary byte by byte (Llama-2, Mistral). Character-level models only.
    let byteFallbackIDs: [TokenID]?
    /// `byteIDs[b]` is the id of the single-byte token `b`, or -1 (byte-level models only).
    private let byteIDs: [TokenID]

    init(index: TokenIndex, tokens: [String?], merges: BPEMergeTable, ignoreMerges: Bool,
         symbolsAreBytes: Bool, unknownID: TokenID? = nil, fusesUnknown: Bool = false, byteFallback: Bool = false) {
        self.index = index
        self.tokens = tokens
        self.merges = merges
        self.ignoreMerges = ignoreMerges
        self.symbolsAreBytes = symbolsAreBytes
        self.unknownID = unknownID
        self.fusesUnknown = fusesUnknown
        byteIDs = (0..<256).map { index.id(of: [UInt8($0)][...]) ?? -1 }
        byteFallbackIDs = byteFallback ? (0..<256).map { index.id(of: Array(Self.byteToken($0).utf8)[...]) ?? -1 } : nil
    }

    /// The id of a token as spelled in the vocabulary file ("Ġhello"), or nil.
    func id(forToken token: String) -> TokenID? {
        guard symbolsAreBytes else { return index.id(of: Array(token.utf8)[...]) }
        return ByteLevelAlphabet.bytes(fromToken: token).flatMap { index.id(of: $0[...]) }
    }

    /// Appends the ids of one pre-tokenized word.
    func tokenize(_ word: ArraySlice<UInt8>, into output: inout [TokenID]) {
        guard !word.isEmpty else { return }
        if ignoreMerges, let id = index.id(of: word) {
            output.append(id)
            return
        }
        output.append(contentsOf: BPEMerger.merge(initialSymbols(of: word), using: merges))
    }

    /// The spelling of a byte-fallback token: `<0x0A>`.
    static func byteToken(_ byte: Int) -> String {
        let hex = String(byte, radix: 16, uppercase: true)
        return "<0x\(hex.count == 1 ? "0" + hex : hex)>"
    }

    /// One symbol per byte (byte-level) or per character; unknown characters are spelled with byte-fallback
    /// tokens when possible, else become `unk` (fused if asked) or vanish, as in Hugging Face.
    private func initialSymbols(of word: ArraySlice<UInt8>) -> [TokenID] {
        var symbols: [TokenID] = []
        symbols.reserveCapacity(word.count)
        var previousWasUnknown = false
        func appendUnknown() {
            guard let unknownID else { return }
            if !(fusesUnknown && previousWasUnknown) { symbols.append(unknownID) }
            previousWasUnknown = true
        }
        if symbolsAreBytes {
            for byte in word {
                let id = byteIDs[Int(byte)]
                if id >= 0 {
                    symbols.append(id)
                    previousWasUnknown = false
                } else {
                    appendUnknown()
                }
            }
            return symbols
        }
        var start = word.startIndex
        while start < word.endIndex {
            var end = start + 1
            while end < word.endIndex, word[end] & 0xC0 == 0x80 { end += 1 }
            if let id = index.id(of: word[start..<end]) {
                symbols.append(id)
                previousWasUnknown = false
            } else if let fallback = byteFallbackIDs, word[start..<end].allSatisfy({ fallback[Int($0)] >= 0 }) {
                symbols += word[start..<end].map { fallback[Int($0)] }
                previousWasUnknown = false
            } else {
                appendUnknown()
            }
            start = end
        }
        return symbols
    }
}

import Foundation

extension Tokenizer {
    /// Qwen v1's special tokens, numbered from the first id after the ranks (151643 for the real file).
    static let qwenTiktokenSpecialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        + (0..<205).map { "<|extra_\($0)|>" }

    /// GLM-4's remote-code tokenizer (`ChatGLM4Tokenizer`): its special tokens, numbered from the first id after the
    /// ranks of its `tokenizer.model` (151329 for the real file).
    static let glm4TiktokenSpecialTokens = ["<|endoftext|>", "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<|system|>",
                                            "<|user|>", "<|assistant|>", "<|observation|>", "<|begin_of_image|>",
                                            "<|end_of_image|>", "<|begin_of_video|>", "<|end_of_video|>"]

    /// The two tiktoken families we read: Qwen v1 (`qwen.tiktoken`, Qwen2's split) and GLM-4 (a rank file named
    /// `tokenizer.model`, Llama-3's split with digits in threes, `[gMASK]<sop>` before every encoded text).
    enum TiktokenFamily: Sendable {
        case qwen, glm4

        var specials: [String] { self == .qwen ? Tokenizer.qwenTiktokenSpecialTokens : Tokenizer.glm4TiktokenSpecialTokens }
        var maximumDigits: Int { self == .qwen ? 1 : 3 }
        var prefix: [String] { self == .qwen ? [] : ["[gMASK]", "<sop>"] }
    }

    /// Whether a `tokenizer.model` is a tiktoken rank file (`base64 rank` lines) rather than a SentencePiece protobuf.
    static func isTiktokenRankFile(_ data: Data) -> Bool {
        let line = data.prefix(while: { $0 != UInt8(ascii: "\n") })
        let fields = line.split(separator: UInt8(ascii: " "))
        guard fields.count == 2, !fields[0].isEmpty, !fields[1].isEmpty else { return false }
        let base64 = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=".utf8)
        return fields[0].allSatisfy(base64.contains) && fields[1].allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") || $0 == UInt8(ascii: "\r") }
    }

    /// Builds a tokenizer from a Qwen v1 `qwen.tiktoken` rank file: one `base64(token bytes) rank` per line.
    /// Encoding is tiktoken's: the Qwen pre-tokenizer pattern, then byte-pair merges where joining two parts
    /// has the rank of the joined bytes. `eos_token` defaults to `<|endoftext|>`.
    /// ```swift
    /// let tokenizer = try Tokenizer(tiktokenRanks: Data(contentsOf: ranksURL), config: TokenizerConfig())
    /// ```
    public convenience init(tiktokenRanks data: Data, config: TokenizerConfig) throws {
        try self.init(tiktokenRanks: data, config: config, file: "qwen.tiktoken")
    }

    convenience init(tiktokenRanks data: Data, config: TokenizerConfig, file: String, family: TiktokenFamily = .qwen) throws {
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        var index = TokenIndex(expectedCount: lines.count)
        var spellings: [[UInt8]?] = []
        for (number, line) in lines.enumerated() {
            let fields = (line.last == UInt8(ascii: "\r") ? line.dropLast() : line).split(separator: UInt8(ascii: " "))
            guard !fields.isEmpty else { continue }  // blank line
            func fail(_ reason: String) -> TokenizerError { .malformedRankFile(file: file, line: number + 1, reason: reason) }
            guard fields.count == 2 else { throw fail("expected two fields") }
            guard let bytes = Data(base64Encoded: Data(fields[0])).map(Array.init), !bytes.isEmpty else {
                throw fail("invalid base64 token")
            }
            guard let rank = Int(String(decoding: fields[1], as: UTF8.self)),
                  let id = TokenID(exactly: rank), id >= 0 else { throw fail("invalid rank") }
            // Ranks are dense (0..<n); bounding them keeps a corrupt file from allocating gigabytes.
            guard rank < lines.count else { throw fail("rank \(rank) is not below the number of lines") }
            if Int(id) >= spellings.count { spellings += repeatElement(nil, count: Int(id) + 1 - spellings.count) }
            guard spellings[Int(id)] == nil else { throw fail("duplicate rank \(rank)") }
            guard index.insert(bytes[...], id: id) else { throw fail("duplicate token") }
            spellings[Int(id)] = bytes
        }
        guard index.count > 0 else { throw TokenizerError.malformedRankFile(file: file, line: 1, reason: "no ranks") }
        let model = BPEModel(index: index, tokens: spellings.map { $0.map(ByteLevelAlphabet.token(fromBytes:)) },
                             merges: Self.tiktokenMerges(spellings: spellings, index: index),
                             ignoreMerges: true, symbolsAreBytes: true)
        let firstSpecial = spellings.count
        let specials = family.specials.enumerated().map {
            AddedToken(id: TokenID(firstSpecial + $0), content: $1, special: true)
        }
        var config = config
        if config.eosToken == nil { config.eosToken = "<|endoftext|>" }
        let prefix = family.prefix.compactMap { name in specials.first { $0.content == name }?.id }
        self.init(config: config, normalizer: Normalizer(steps: []),
                  preTokenizer: .split(.family(GPT2FamilyPattern(flavor: .qwen, maximumDigits: family.maximumDigits)), .isolated),
                  model: model, addedTokens: specials, postProcessor: PostProcessor(prefix: prefix), decoder: .byteLevel)
    }

    /// A `qwen.tiktoken` file as a byte-level BPE vocabulary (what llama.cpp's converter writes for Qwen v1): the
    /// tokens in rank order in the byte-level alphabet, then the special tokens; and for every multi-byte token the
    /// one merge that makes it (byte-pair merging of its bytes with only lower-ranked pairs ends in two parts).
    public static func tiktokenVocabulary(ranks data: Data, file: String = "qwen.tiktoken") throws
        -> (tokens: [String], specials: [String], merges: [String]) {
        // Building the tokenizer validates the file (dense ranks, no duplicates; errors name the line).
        _ = try Tokenizer(tiktokenRanks: data, config: TokenizerConfig(), file: file)
        // Placed by their rank field (the lines may come in any order; the ranks are dense, as validated above).
        var byRank: [Int: [UInt8]] = [:]
        for line in data.split(separator: UInt8(ascii: "\n")) {
            let fields = (line.last == UInt8(ascii: "\r") ? line.dropLast() : line).split(separator: UInt8(ascii: " "))
            guard fields.count == 2, let bytes = Data(base64Encoded: Data(fields[0])),
                  let rank = Int(String(decoding: fields[1], as: UTF8.self)) else { continue }
            byRank[rank] = Array(bytes)
        }
        let spellings = (0..<byRank.count).map { byRank[$0] ?? [] }
        var rank: [[UInt8]: Int] = [:]
        for (r, bytes) in spellings.enumerated() { rank[bytes] = r }
        var merges: [String] = []
        for (r, bytes) in spellings.enumerated() where bytes.count > 1 {
            var parts = bytes.map { [$0] }
            while parts.count > 2 {
                var best: (index: Int, rank: Int)?
                for i in 0..<(parts.count - 1) {
                    if let pr = rank[parts[i] + parts[i + 1]], pr < r, pr < (best?.rank ?? .max) { best = (i, pr) }
                }
                guard let b = best else { break }
                parts[b.index] += parts[b.index + 1]
                parts.remove(at: b.index + 1)
            }
            guard parts.count == 2 else { continue }
            merges.append(ByteLevelAlphabet.token(fromBytes: parts[0]) + " " + ByteLevelAlphabet.token(fromBytes: parts[1]))
        }
        return (spellings.map { ByteLevelAlphabet.token(fromBytes: $0) }, qwenTiktokenSpecialTokens, merges)
    }

    /// tiktoken merges any two adjacent parts whose concatenation is a token, with that token's rank: as a
    /// merge table, every split of every token into two tokens.
    private static func tiktokenMerges(spellings: [[UInt8]?], index: TokenIndex) -> BPEMergeTable {
        var table = BPEMergeTable(capacity: spellings.count * 2)
        for case let (rank, bytes?) in spellings.enumerated() where bytes.count > 1 {
            for cut in 1..<bytes.count {
                guard let left = index.id(of: bytes[..<cut]), let right = index.id(of: bytes[cut...]) else { continue }
                table.insert(left: left, right: right, rank: rank, result: TokenID(rank))
            }
        }
        return table
    }
}

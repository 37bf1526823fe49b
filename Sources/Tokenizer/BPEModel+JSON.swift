extension BPEModel {
    /// Reads the `model` field of `tokenizer.json`: `type` "BPE", `vocab` (token -> id), `merges` as
    /// `"a b"` strings or `["a", "b"]` pairs (rank = position), `ignore_merges`, `unk_token`, `fuse_unk`.
    /// `byte_fallback` is honoured for character-level (SentencePiece-style) models. Options that change
    /// tokenization in ways not implemented (`dropout`, subword prefix/suffix, byte fallback on a byte-level
    /// model) are rejected rather than ignored.
    init(json field: JSONField, symbolsAreBytes: Bool) throws {
        if let type = try field.optional("type"), try type.string() != "BPE" { throw type.unsupported(try type.string()) }
        for name in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let option = try field.optional(name), !(try option.string()).isEmpty {
                throw option.unsupported(try option.string())
            }
        }
        if let dropout = try field.optional("dropout"), case .number(let p) = dropout.value, p > 0 {
            throw dropout.unsupported("\(p)")
        }
        let byteFallbackField = try field.optional("byte_fallback")
        let byteFallback = try byteFallbackField?.bool() ?? false
        if let byteFallbackField, byteFallback, symbolsAreBytes { throw byteFallbackField.unsupported("true with ByteLevel") }
        let (index, tokens) = try Self.readVocabulary(try field.required("vocab"), symbolsAreBytes: symbolsAreBytes)
        let merges = try Self.readMerges(try field.required("merges"), index: index, symbolsAreBytes: symbolsAreBytes)
        var unknownID: TokenID?
        if let unknown = try field.optional("unk_token") {
            let token = try unknown.string()
            var spelling: [UInt8] = []
            guard Self.appendSpelling(token, symbolsAreBytes: symbolsAreBytes, to: &spelling),
                  let id = index.id(of: spelling[...]) else { throw unknown.invalid("'\(token)' is not in model.vocab") }
            unknownID = id
        }
        self.init(index: index, tokens: tokens, merges: merges,
                  ignoreMerges: try field.optional("ignore_merges")?.bool() ?? false,
                  symbolsAreBytes: symbolsAreBytes, unknownID: unknownID,
                  fusesUnknown: try field.optional("fuse_unk")?.bool() ?? false, byteFallback: byteFallback)
    }

    /// Appends how the model spells `token` internally: raw bytes for byte-level models, else UTF-8.
    /// False when a byte-level token has a character outside the byte alphabet.
    private static func appendSpelling(_ token: Substring, symbolsAreBytes: Bool, to bytes: inout [UInt8]) -> Bool {
        guard symbolsAreBytes else {
            bytes += token.utf8
            return true
        }
        return ByteLevelAlphabet.appendBytes(fromToken: token, to: &bytes)
    }

    private static func appendSpelling(_ token: String, symbolsAreBytes: Bool, to bytes: inout [UInt8]) -> Bool {
        appendSpelling(token[...], symbolsAreBytes: symbolsAreBytes, to: &bytes)
    }

    private static func readVocabulary(_ field: JSONField, symbolsAreBytes: Bool) throws -> (TokenIndex, [String?]) {
        let vocabulary = try field.object()
        var index = TokenIndex(expectedCount: vocabulary.keys.count)
        var tokens: [String?] = []
        tokens.reserveCapacity(vocabulary.keys.count)
        var spelling: [UInt8] = []
        for (token, value) in zip(vocabulary.keys, vocabulary.values) {
            guard case .number(let number) = value, let id = TokenID(exactly: number), id >= 0 else {
                throw field.invalid("token '\(token)' has id \(value), expected an integer in 0...\(Int32.max)")
            }
            // Ids are dense in real files; the bound keeps a corrupt one from allocating gigabytes.
            guard Int(id) < vocabulary.keys.count + 1_000_000 else {
                throw field.invalid("token '\(token)' has id \(id), far beyond the vocabulary size")
            }
            if Int(id) >= tokens.count { tokens += repeatElement(nil, count: Int(id) + 1 - tokens.count) }
            tokens[Int(id)] = token
            // A token outside the byte alphabet can never be produced from bytes; it stays decodable by id.
            spelling.removeAll(keepingCapacity: true)
            if appendSpelling(token, symbolsAreBytes: symbolsAreBytes, to: &spelling) {
                index.insert(spelling[...], id: id)
            }
        }
        return (index, tokens)
    }

    private static func readMerges(_ field: JSONField, index: TokenIndex, symbolsAreBytes: Bool) throws -> BPEMergeTable {
        let items = try field.arrayValues()
        var table = BPEMergeTable(capacity: items.count)
        // Built only when an item is bad, so the 300k good ones cost no path strings.
        func itemField(_ rank: Int) -> JSONField {
            JSONField(value: items[rank], file: field.file, path: "\(field.path)[\(rank)]")
        }
        var joined: [UInt8] = []  // left spelling, then right spelling, reused for every merge
        for (rank, item) in items.enumerated() {
            let left: Substring, right: Substring
            switch item {
            case .string(let line):
                guard let space = line.utf8.firstIndex(of: 0x20) else {
                    throw itemField(rank).invalid("a merge needs two tokens")
                }
                (left, right) = (line[..<space], line[line.utf8.index(after: space)...])
                guard !right.utf8.contains(0x20) else { throw itemField(rank).invalid("a merge needs exactly two tokens") }
            case .array(let parts):
                guard parts.count == 2, case .string(let first) = parts[0], case .string(let second) = parts[1] else {
                    throw itemField(rank).invalid("expected two strings")
                }
                (left, right) = (first[...], second[...])
            default:
                throw itemField(rank).invalid("expected \"left right\" or [\"left\", \"right\"], found \(item.kindName)")
            }
            joined.removeAll(keepingCapacity: true)
            guard appendSpelling(left, symbolsAreBytes: symbolsAreBytes, to: &joined),
                  let leftID = index.id(of: joined[...]) else {
                throw itemField(rank).invalid("token '\(left)' is not in model.vocab")
            }
            let split = joined.count
            guard appendSpelling(right, symbolsAreBytes: symbolsAreBytes, to: &joined),
                  let rightID = index.id(of: joined[split...]) else {
                throw itemField(rank).invalid("token '\(right)' is not in model.vocab")
            }
            guard let result = index.id(of: joined[...]) else {
                throw itemField(rank).invalid("the merged token '\(left)\(right)' is not in model.vocab")
            }
            table.insert(left: leftID, right: rightID, rank: rank, result: result)
        }
        return table
    }
}

extension Tokenizer {
    /// Builds a tokenizer that encodes a SentencePiece BPE vocabulary as SentencePiece and llama.cpp do, which is
    /// also what Hugging Face `tokenizers` does with Llama 2's tokenizer.json layout:
    ///
    /// - control and unknown pieces (`<s>`, `</s>`, `<unk>`) are special tokens and user-defined pieces plain added
    ///   tokens, all recognised in the raw text first;
    /// - each stretch of text between them gets the dummy prefix "▁" (when `addsDummyPrefix`), even one that already
    ///   starts with a space, and every space becomes "▁";
    /// - the characters are merged pair by pair, always the adjacent pair whose merged piece has the highest score,
    ///   the leftmost on ties (as a merge table: pairs ranked by the score of what they make, equal scores equal rank);
    /// - characters missing from the vocabulary become `<0xAB>` byte pieces, or the unknown piece without byte fallback.
    ///
    /// Decoding turns "▁" back into spaces, reassembles byte pieces into UTF-8 and drops the dummy prefix's space.
    /// ```swift
    /// let tokenizer = try Tokenizer(sentencePiece: vocabulary, config: TokenizerConfig())
    /// tokenizer.encode("Hello world")   // [bos, ▁Hello, ▁world]
    /// ```
    public convenience init(sentencePiece vocabulary: SentencePieceVocabulary, config: TokenizerConfig) throws {
        try self.init(sentencePiece: vocabulary, config: config, file: "tokenizer.model")
    }

    convenience init(sentencePiece vocabulary: SentencePieceVocabulary, config: TokenizerConfig, file: String) throws {
        let pieces = vocabulary.pieces
        var index = TokenIndex(expectedCount: pieces.count)
        var added: [AddedToken] = []
        for (id, piece) in pieces.enumerated() {
            guard index.insert(Array(piece.text.utf8)[...], id: TokenID(id)) else {
                throw TokenizerError.invalidField(file: file, field: "pieces[\(id)]", reason: "'\(piece.text)' is also piece \(index.id(of: Array(piece.text.utf8)[...]) ?? -1)")
            }
            switch piece.type {
            case .control, .unknown: added.append(AddedToken(id: TokenID(id), content: piece.text, special: true))
            case .userDefined: added.append(AddedToken(id: TokenID(id), content: piece.text, special: false))
            case .normal, .unused, .byte: break
            }
        }
        for (name, id) in [("unk", vocabulary.unknownID), ("bos", vocabulary.bosID), ("eos", vocabulary.eosID), ("pad", vocabulary.padID)] {
            if let id, id < 0 || Int(id) >= pieces.count {
                throw TokenizerError.invalidField(file: file, field: "\(name) id", reason: "\(id) is not below the \(pieces.count) pieces")
            }
        }
        let model = BPEModel(index: index, tokens: pieces.map(\.text), merges: Self.sentencePieceMerges(pieces, index: index),
                             ignoreMerges: false, symbolsAreBytes: false, unknownID: vocabulary.unknownID,
                             fusesUnknown: true, byteFallback: vocabulary.byteFallback)
        var steps: [Normalizer.Step] = vocabulary.removesExtraWhitespaces ? [.collapseSpaces] : []
        if vocabulary.addsDummyPrefix { steps.append(.prepend(Array("\u{2581}".utf8))) }
        steps.append(.replaceLiteral([0x20], with: Array("\u{2581}".utf8)))
        if vocabulary.removesExtraWhitespaces { steps.append(.dropTrailing(Array("\u{2581}".utf8))) }
        var config = config
        func text(_ id: TokenID?) -> String? { id.map { pieces[Int($0)].text } }
        config.bosToken = config.bosToken ?? text(vocabulary.bosID)
        config.eosToken = config.eosToken ?? text(vocabulary.eosID)
        config.unknownToken = config.unknownToken ?? text(vocabulary.unknownID)
        config.padToken = config.padToken ?? text(vocabulary.padID)
        let bos = vocabulary.addsBOS ? vocabulary.bosID.map { [$0] } ?? [] : []
        let eos = vocabulary.addsEOS ? vocabulary.eosID.map { [$0] } ?? [] : []
        config.addBosToken = !bos.isEmpty
        config.addEosToken = !eos.isEmpty
        self.init(config: config, normalizer: Normalizer(steps: steps), preTokenizer: .sequence([]), model: model,
                  addedTokens: added, postProcessor: PostProcessor(prefix: bos, suffix: eos),
                  decoder: .sentencePiece(stripsLeadingSpace: vocabulary.addsDummyPrefix))
    }

    /// Every way of writing a mergeable piece (normal, user-defined or unused, as SentencePiece merges only into
    /// those) as two pieces split at a character boundary, ranked by the merged piece's score: the highest score
    /// first, equal scores sharing a rank so that the merger takes the leftmost pair.
    private static func sentencePieceMerges(_ pieces: [SentencePieceVocabulary.Piece], index: TokenIndex) -> BPEMergeTable {
        let mergeable = pieces.indices.filter { id in
            pieces[id].type == .normal || pieces[id].type == .userDefined || pieces[id].type == .unused
        }
        let scores = Set(mergeable.map { pieces[$0].score }).sorted(by: >)
        let rank = Dictionary(uniqueKeysWithValues: scores.enumerated().map { ($1, $0) })
        var table = BPEMergeTable(capacity: pieces.count * 4)
        for id in mergeable {
            let bytes = Array(pieces[id].text.utf8)
            guard bytes.count > 1, let order = rank[pieces[id].score] else { continue }
            for cut in 1..<bytes.count where bytes[cut] & 0xC0 != 0x80 {
                guard let left = index.id(of: bytes[..<cut]), let right = index.id(of: bytes[cut...]) else { continue }
                table.insert(left: left, right: right, rank: order, result: TokenID(id))
            }
        }
        return table
    }
}

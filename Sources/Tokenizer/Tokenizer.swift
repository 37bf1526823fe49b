/// A token id, as Hugging Face and the model's embedding table number them.
public typealias TokenID = Int32

/// A BPE tokenizer that encodes exactly like Hugging Face `tokenizers` for byte-level `tokenizer.json` files
/// (Qwen, Llama-3, GPT-2 style) and SentencePiece-style ones (Llama-2, Mistral: "▁" spaces, byte fallback),
/// or like tiktoken for Qwen v1's `qwen.tiktoken`.
///
/// Immutable after loading and safe to share between threads (its word cache is locked).
/// ```swift
/// let tokenizer = try Tokenizer.load(directory: URL(fileURLWithPath: "Qwen2.5-0.5B-Instruct"))
/// let ids = tokenizer.encode("你好，世界")
/// tokenizer.decode(ids)   // "你好，世界"
/// ```
public final class Tokenizer: @unchecked Sendable {
    /// `tokenizer_config.json` as read at load time (with `chat_template.jinja` when present).
    public let config: TokenizerConfig
    /// Largest id (model or added token) + 1: the number of rows an embedding table needs.
    public let vocabularySize: Int
    /// The config's `bos_token`, else the first id the post-processor puts before a sequence.
    public let bosTokenID: TokenID?
    /// The config's `eos_token` (for `qwen.tiktoken` `<|endoftext|>` unless the config says otherwise).
    public let eosTokenID: TokenID?
    /// The config's `pad_token`.
    public let padTokenID: TokenID?

    let normalizer: Normalizer
    let preTokenizer: PreTokenizer
    let model: BPEModel
    let postProcessor: PostProcessor
    let decoder: TokenDecoder
    /// Added tokens matched on the raw input (`normalized: false`, all special tokens in practice).
    private let rawAddedTokens: AddedTokenMatcher
    /// Added tokens matched after normalization (`normalized: true`).
    private let normalizedAddedTokens: AddedTokenMatcher
    private let addedTokensByID: [TokenID: AddedToken]
    private let addedTokenIDs: [ByteKey: TokenID]
    private let specialTokenIDs: Set<TokenID>
    private let wordCache = WordCache(capacity: 65_536)

    init(config: TokenizerConfig, normalizer: Normalizer, preTokenizer: PreTokenizer, model: BPEModel,
         addedTokens: [AddedToken], postProcessor: PostProcessor, decoder: TokenDecoder) {
        self.config = config
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        rawAddedTokens = AddedTokenMatcher(tokens: addedTokens.filter { !$0.normalized })
        normalizedAddedTokens = AddedTokenMatcher(tokens: addedTokens.filter(\.normalized)) {
            Array(normalizer.apply(Array($0.content.utf8)[...]))
        }
        var byID: [TokenID: AddedToken] = [:]
        var idsByContent: [ByteKey: TokenID] = [:]
        for token in addedTokens {
            byID[token.id] = token
            idsByContent[ByteKey(token.content)] = token.id
        }
        addedTokensByID = byID
        addedTokenIDs = idsByContent
        specialTokenIDs = Set(addedTokens.filter(\.special).map(\.id))
        vocabularySize = max(model.tokens.count, Int(addedTokens.map(\.id).max() ?? -1) + 1)
        func lookUp(_ token: String?) -> TokenID? {
            guard let token else { return nil }
            return idsByContent[ByteKey(token)] ?? model.id(forToken: token)
        }
        bosTokenID = lookUp(config.bosToken) ?? postProcessor.prefix.first
        eosTokenID = lookUp(config.eosToken)
        padTokenID = lookUp(config.padToken)
    }

    /// Encodes like Hugging Face `tokenizer.encode(text)`: added and special tokens written in the text are
    /// recognised first, the rest is normalized, pre-tokenized and BPE-merged; with `addSpecialTokens` the
    /// post-processor's template (e.g. Llama-3's BOS) is applied.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [TokenID] {
        var ids: [TokenID] = []
        ids.reserveCapacity(text.utf8.count / 2)
        if addSpecialTokens { ids += postProcessor.prefix }
        for segment in rawAddedTokens.split(Array(text.utf8)[...]) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let raw):
                let normalized = normalizer.apply(raw)
                for inner in normalizedAddedTokens.split(normalized) {
                    switch inner {
                    case .token(let id):
                        ids.append(id)
                    case .text(let piece):
                        let startsText = raw.startIndex == 0 && piece.startIndex == normalized.startIndex
                        for word in preTokenizer.split([piece], firstStartsText: startsText) {
                            appendModelTokens(of: word, to: &ids)
                        }
                    }
                }
            }
        }
        if addSpecialTokens { ids += postProcessor.suffix }
        return ids
    }

    private func appendModelTokens(of word: ArraySlice<UInt8>, to ids: inout [TokenID]) {
        guard word.count <= WordCache.maximumWordLength else {
            model.tokenize(word, into: &ids)
            return
        }
        let key = ByteKey(word)
        if let cached = wordCache.ids(for: key) {
            ids += cached
            return
        }
        var fresh: [TokenID] = []
        model.tokenize(word, into: &fresh)
        wordCache.insert(fresh, for: key)
        ids += fresh
    }

    /// Decodes like Hugging Face `tokenizer.decode(ids)`; invalid UTF-8 (a cut multi-byte character)
    /// becomes U+FFFD. Unknown ids are skipped.
    public func decode(_ ids: [TokenID], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        var isFirst = true
        for id in ids {
            guard let token = decodedToken(id, skipSpecialTokens: skipSpecialTokens) else { continue }
            bytes += decoder.bytes(of: token, isFirst: isFirst)
            isFirst = false
        }
        var stripBudget = decoder.leadingStripCount
        decoder.stripLeading(&bytes, budget: &stripBudget)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The token string an id contributes to decoding, or nil for unknown ids and skipped special tokens.
    func decodedToken(_ id: TokenID, skipSpecialTokens: Bool) -> String? {
        if skipSpecialTokens, specialTokenIDs.contains(id) { return nil }
        return token(forID: id)
    }

    /// The id of a token spelled as in the vocabulary file ("Ġhello", "<|im_end|>"), or nil.
    public func id(forToken token: String) -> TokenID? {
        addedTokenIDs[ByteKey(token)] ?? model.id(forToken: token)
    }

    /// The vocabulary spelling of an id ("Ġhello", "<|im_end|>"), or nil for an unused id.
    public func token(forID id: TokenID) -> String? {
        if let added = addedTokensByID[id] { return added.content }
        guard id >= 0, Int(id) < model.tokens.count else { return nil }
        return model.tokens[Int(id)]
    }

    /// True for added tokens marked special (`<|im_end|>`, `<|eot_id|>`...), which decoding can skip.
    public func isSpecial(_ id: TokenID) -> Bool {
        specialTokenIDs.contains(id)
    }

    /// Whether sequences for this model start with BOS: the post-processor adds it (Llama-3) or the config
    /// asks for it (`add_bos_token`). Never true for Qwen.
    var prependsBOS: Bool {
        guard let bosTokenID else { return false }
        return postProcessor.prefix.contains(bosTokenID) || config.addBosToken == true
    }
}

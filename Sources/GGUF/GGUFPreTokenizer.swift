/// llama.cpp's BPE pre-tokenizers (`tokenizer.ggml.pre` of a `gpt2` vocabulary, or the kind a `gemma4` or
/// `whitespace` tokenizer model implies): the names its loader accepts, grouped by the kind they select, and the split
/// regexes each kind applies, one after the other, each to the pieces the previous one left (a Hugging Face `Split`
/// with behavior `Isolated` per regex).
///
/// The regexes are those of llama.cpp's `llm_tokenizer_bpe`, except where it rewrote a tokenizer.json regex for its
/// own regex engine and kept the original in a comment (`(?i:'s|...)` spelled `'[sS]|...`, possessive quantifiers
/// made greedy, Tekken's and GPT-4o's letter classes as lookaheads): there the original is used, since it is what
/// Hugging Face runs for the model. Four kinds llama.cpp tokenizes with custom code rather than its regexes are
/// written here as what that code does:
/// - kimi-k2: Kimi K2's tiktoken `pat_str` (letter classes intersected with `&&[^\p{Han}]`, which ICU reads as
///   Oniguruma and tiktoken do), the split llama.cpp's custom splitter hand-codes.
/// - afmoe: a run of digits cut into its leading `count % 3` digits and then threes (llama.cpp's custom digit
///   splitter, written as a regex), then Asian scripts, then DeepSeek V3's regex.
/// - gemma4: a raw UTF-8 vocabulary, not byte-level: spaces become "▁", the text is cut at newline runs, and
///   characters missing from the vocabulary are spelled with `<0xXX>` tokens; BOS is always added.
/// - whitespace (jina's Chinese embedder): a raw UTF-8 vocabulary cut as Hugging Face's `Whitespace` does (whitespace
///   dropped, then runs of word characters and runs of other characters, `\w` spelled out as Oniguruma's: alphabetic,
///   marks, decimal digits, connector punctuation, joiners, so "½" is not a word character); missing characters
///   vanish. llama.cpp only drops the whitespace, which cuts the same tokens from a vocabulary trained this way.
/// The fixture script mirrors this table.
/// ```swift
/// GGUFPreTokenizer.named("qwen2")?.regexes.count   // 1
/// ```
struct GGUFPreTokenizer: Sendable {
    /// The names llama.cpp maps to this kind; the first is the one export writes when only the regexes are known.
    let names: [String]
    let regexes: [String]
    /// llama.cpp's `ignore_merges` for the kind (and Hugging Face's for the model): a piece that is a token is kept whole.
    var ignoresMerges = false
    /// Whether llama.cpp starts sequences with BOS when the file does not say.
    var addsBOS = false
    /// Unicode NFC before splitting, as Qwen's tokenizer.json asks (llama.cpp itself does not normalize).
    var normalizesNFC = false
    /// False for a vocabulary of raw UTF-8 pieces (llama.cpp's `byte_encode` off): BPE runs on characters, and a
    /// character without a token is spelled with `<0xXX>` byte tokens where the vocabulary has them.
    var isByteLevel = true
    /// Spaces replaced by "▁" before splitting (llama.cpp's `escape_whitespaces`, Gemma's `Replace` normalizer).
    var escapesSpaces = false
    /// Whitespace is dropped before the regexes run (Hugging Face's `Whitespace`, llama.cpp's whitespace session).
    var dropsWhitespace = false
    /// BOS is added even where the file's `add_bos_token` says not to (llama.cpp's override for Gemma 4).
    var alwaysAddsBOS = false

    /// The kind a `tokenizer.ggml.pre` name selects.
    static func named(_ name: String) -> GGUFPreTokenizer? {
        all.first { $0.names.contains(name) }
    }

    /// Every name, for error messages.
    static var knownNames: [String] { all.flatMap(\.names) }

    static let all: [GGUFPreTokenizer] = [
        GGUFPreTokenizer(names: ["default"],
                         regexes: ["[\\p{P}\\$\\+<=>\\^~\\|]+",
                                   "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
                                   "\\p{N}+",
                                   "[0-9][0-9][0-9]"]),
        GGUFPreTokenizer(names: ["llama-bpe", "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"],
                         regexes: ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"], ignoresMerges: true, addsBOS: true),
        GGUFPreTokenizer(names: ["jais-2"],
                         regexes: ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s{512}(?!\\S)|\\s{256}(?!\\S)|\\s{128}(?!\\S)|\\s{64}(?!\\S)|\\s{32}(?!\\S)|\\s{16}(?!\\S)|\\s{8}(?!\\S)|\\s{4}(?!\\S)|\\s{1,2}(?!\\S)|\\s{1}"]),
        GGUFPreTokenizer(names: ["dbrx", "smaug-bpe"],
                         regexes: ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["deepseek-llm"],
                         regexes: ["[\u{D}\u{A}]",
                                   "\\s?[A-Za-z\u{B5}\u{C0}-\u{D6}\u{D8}-\u{F6}\u{F8}-\u{1BA}\u{1BC}-\u{1BF}\u{1C4}-\u{293}\u{295}-\u{2AF}\u{370}-\u{373}\u{376}\u{377}\u{37B}-\u{37D}\u{37F}\u{386}\u{388}-\u{38A}\u{38C}\u{38E}-\u{3A1}\u{3A3}-\u{3F5}\u{3F7}-\u{481}\u{48A}-\u{52F}\u{531}-\u{556}\u{10A0}-\u{10C5}\u{13A0}-\u{13F5}\u{13F8}-\u{13FD}\u{1C90}-\u{1CBA}\u{1CBD}-\u{1CBF}\u{1D00}-\u{1D2B}\u{1D6B}-\u{1D77}\u{1D79}-\u{1D9A}\u{1E00}-\u{1F15}\u{1F18}-\u{1F1D}\u{1F20}-\u{1F45}\u{1F48}-\u{1F4D}\u{1F50}-\u{1F57}\u{1F59}\u{1F5B}\u{1F5D}\u{1F5F}-\u{1F7D}\u{1F80}-\u{1FB4}\u{1FB6}-\u{1FBC}\u{1FBE}\u{1FC2}-\u{1FC4}\u{1FC6}-\u{1FCC}\u{1FD0}-\u{1FD3}\u{1FD6}-\u{1FDB}\u{1FE0}-\u{1FEC}\u{1FF2}-\u{1FF4}\u{1FF6}-\u{1FFC}\u{2102}\u{2107}\u{210A}-\u{2113}\u{2115}\u{2119}-\u{211D}\u{2124}\u{2126}\u{2128}\u{212A}-\u{212D}\u{212F}-\u{2134}\u{2139}\u{213C}-\u{213F}\u{2145}-\u{2149}\u{214E}\u{2183}\u{2184}\u{2C00}-\u{2C7B}\u{2C7E}-\u{2CE4}\u{2CEB}-\u{2CEE}\u{2CF2}\u{2CF3}\u{A640}-\u{A66D}\u{A680}-\u{A69B}\u{A722}-\u{A76F}\u{A771}-\u{A787}\u{A78B}-\u{A78E}\u{AB70}-\u{ABBF}\u{FB00}-\u{FB06}\u{FB13}-\u{FB17}\u{FF21}-\u{FF3A}\u{FF41}-\u{FF5A}\u{10400}-\u{1044F}\u{104B0}-\u{104D3}\u{104D8}-\u{104FB}\u{10C80}-\u{10CB2}\u{10CC0}-\u{10CF2}\u{118A0}-\u{118DF}\u{1E900}-\u{1E943}]+",
                                   "\\s?[!-/:-~\u{FF01}-\u{FF0F}\u{FF1A}-\u{FF5E}\u{2018}-\u{201F}\u{3000}-\u{3002}]+",
                                   "\\s+$",
                                   "[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+",
                                   "\\p{N}+"]),
        GGUFPreTokenizer(names: ["deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"],
                         regexes: ["\\p{N}{1,3}",
                                   "[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+",
                                   "[!\\\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["deepseek-coder"],
                         regexes: ["[\u{D}\u{A}]",
                                   "\\s?\\p{L}+",
                                   "\\s?\\p{P}+",
                                   "[\u{4E00}-\u{9FA5}\u{800}-\u{4E00}\u{AC00}-\u{D7FF}]+",
                                   "\\p{N}"]),
        GGUFPreTokenizer(names: ["falcon"],
                         regexes: ["[\\p{P}\\$\\+<=>\\^~\\|`]+",
                                   "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
                                   "[0-9][0-9][0-9]"]),
        GGUFPreTokenizer(names: ["starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b", "mellum2"],
                         regexes: ["\\p{N}",
                                   "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"]),
        GGUFPreTokenizer(names: ["gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4", "mpt", "olmo", "jais", "trillion", "granite-docling"],
                         regexes: ["'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"]),
        GGUFPreTokenizer(names: ["qwen2", "deepseek-r1-qwen", "megrez", "kormo", "f2llmv2", "stablelm2", "hunyuan", "solar-open", "grok-2"],
                         regexes: ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"], normalizesNFC: true),
        GGUFPreTokenizer(names: ["qwen35"],
                         regexes: ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["poro-chat", "bloom", "gpt3-finnish"],
                         regexes: [" ?[^(\\s|.,!?\u{2026}\u{3002}\u{FF0C}\u{3001}\u{964}\u{6D4}\u{60C})]+"]),
        GGUFPreTokenizer(names: ["chatglm-bpe", "glm4"],
                         regexes: ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["viking"],
                         regexes: [" ?[^(\\s|.,!?\u{2026}\u{3002}\u{FF0C}\u{3001}\u{964}\u{6D4}\u{60C})]+",
                                   "\\p{N}"]),
        GGUFPreTokenizer(names: ["tekken"],
                         regexes: ["[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"], ignoresMerges: true, addsBOS: true),
        GGUFPreTokenizer(names: ["chameleon"],
                         regexes: ["<sentinel:[0-9]+>",
                                   "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",
                                   "([\\t\\n]|    |  )",
                                   "\\p{N}",
                                   "[\\p{P}!-/:-@\\[-`{-~]",
                                   "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"], addsBOS: true),
        GGUFPreTokenizer(names: ["gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"],
                         regexes: ["[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["tiny_aya", "cohere2moe"],
                         regexes: ["\\d{1,3}(?=(?:\\d{3})*\\b)",
                                   "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["superbpe"],
                         regexes: ["\\p{N}+",
                                   "(?=(\\d{3})+(?!\\d))"]),
        GGUFPreTokenizer(names: ["bailingmoe", "bailingmoe2", "llada-moe"],
                         regexes: ["'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["seed-coder"],
                         regexes: ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["ufakzeka"],
                         regexes: ["[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["laguna"],
                         regexes: ["[^\\n]+|[\\n]+",
                                   "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["exaone-moe"],
                         regexes: ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["minicpm5"],
                         regexes: ["\\p{N}{1,3}",
                                   "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"], ignoresMerges: true),
        GGUFPreTokenizer(names: ["spark2_5"],
                         regexes: ["\\p{N}{1,3}",
                                   "[\u{4E00}-\u{9FA5}\u{3040}-\u{309F}\u{30A0}-\u{30FF}]+",
                                   "[!\\\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+|[\\r\\n]|\\s+(?!\\S)|\\s+",
                                   "\\p{N}"]),
        GGUFPreTokenizer(names: ["kimi-k2"],
                         regexes: ["[\\p{Han}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}&&[^\\p{Han}]]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["afmoe"],
                         regexes: ["\\p{N}{1,3}(?=(?:\\p{N}{3})*(?!\\p{N}))",
                                   "[\u{4E00}-\u{9FFF}\u{3400}-\u{4DBF}\u{F900}-\u{FAFF}\u{3040}-\u{309F}\u{30A0}-\u{30FF}\u{FF65}-\u{FF9F}\u{2F00}-\u{2FDF}\u{E40}-\u{E7F}\u{E80}-\u{EFF}\u{1780}-\u{17FF}\u{1000}-\u{109F}\u{AA60}-\u{AA7F}\u{A9E0}-\u{A9FF}\u{AC00}-\u{D7AF}\u{1100}-\u{11FF}]+",
                                   "[!\\\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"]),
        GGUFPreTokenizer(names: ["gemma4", "granite-embed-multi-311m"],
                         regexes: ["[^\\n]+|[\\n]+"], addsBOS: true, isByteLevel: false, escapesSpaces: true, alwaysAddsBOS: true),
        GGUFPreTokenizer(names: ["whitespace"],
                         regexes: ["[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]+|[^\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}\\s]+"],
                         isByteLevel: false, dropsWhitespace: true),
    ]
}

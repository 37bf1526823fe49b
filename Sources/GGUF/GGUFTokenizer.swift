import Foundation
import ModelIO
import Tokenizer

/// The tokenizer of a GGUF file, rebuilt from its `tokenizer.ggml.*` metadata so that it encodes as Hugging Face
/// does for the model the file was converted from:
///
/// - `llama` (SentencePiece, as llama.cpp's converter writes Llama 2, Mistral v0.1, TinyLlama, Yi, Gemma): tokens,
///   scores and token types, `add_space_prefix`, the unknown / BOS / EOS / padding ids (llama.cpp's defaults 0 / 1 / 2
///   when absent), `add_bos_token` (default true) and `add_eos_token`; see `Tokenizer(sentencePiece:config:)`.
/// - `gpt2` (byte-level BPE): tokens, token types and merges, split by the regexes of `tokenizer.ggml.pre`
///   (`GGUFPreTokenizer`; llama.cpp's `default` when absent); control tokens are special added tokens and
///   user-defined ones plain added tokens.
/// - `gemma4` and `whitespace` (BPE over raw UTF-8 pieces, as llama.cpp's converter writes Gemma 4 and jina's Chinese
///   embedder): read the same way, with the pre-tokenizer of that name unless `tokenizer.ggml.pre` names another.
///
/// The chat template, EOS and padding tokens come along in the tokenizer's config.
/// ```swift
/// let tokenizer = try GGUFTokenizer.tokenizer(from: GGUFFile(path: "mistral-7b-v0.1.Q4_K_M.gguf"))
/// ```
public enum GGUFTokenizer {
    public static func tokenizer(from file: GGUFFile) throws -> Tokenizer {
        let m = file.metadata
        let model = m["tokenizer.ggml.model"]?.string
        switch model {
        case "llama": return try sentencePiece(m, path: file.path)
        case "gpt2": return try bpe(m, defaultPre: "default", path: file.path)
        case "gemma4", "whitespace": return try bpe(m, defaultPre: model!, path: file.path)
        default:
            throw ModelIOError.malformed(path: file.path, reason: "tokenizer.ggml.model is \(model.map { "'\($0)'" } ?? "missing"); this reader knows 'llama' (SentencePiece), 'gpt2' (byte-level BPE), 'gemma4' and 'whitespace' (BPE over UTF-8)")
        }
    }

    private static func tokens(_ m: [String: GGUFValue], path: String) throws -> [String] {
        guard let values = m["tokenizer.ggml.tokens"]?.array, !values.isEmpty else {
            throw ModelIOError.malformed(path: path, reason: "tokenizer.ggml.tokens is missing or empty")
        }
        return try values.enumerated().map { index, value in
            guard let text = value.string else { throw ModelIOError.malformed(path: path, reason: "tokenizer.ggml.tokens[\(index)] is not a string") }
            return text
        }
    }

    /// `tokenizer.ggml.token_type`, one per token (1 normal when absent).
    private static func types(_ m: [String: GGUFValue], count: Int, path: String) throws -> [Int] {
        guard let values = m["tokenizer.ggml.token_type"]?.array else { return [Int](repeating: 1, count: count) }
        guard values.count >= count else {
            throw ModelIOError.malformed(path: path, reason: "tokenizer.ggml.token_type has \(values.count) entries for \(count) tokens")
        }
        return try values.prefix(count).enumerated().map { index, value in
            guard let type = value.integer else { throw ModelIOError.malformed(path: path, reason: "tokenizer.ggml.token_type[\(index)] is not an integer") }
            return type
        }
    }

    /// A token id key, checked against the vocabulary; nil when absent.
    private static func tokenID(_ m: [String: GGUFValue], _ key: String, count: Int, path: String) throws -> Int? {
        guard let value = m[key] else { return nil }
        guard let id = value.integer, id >= 0, id < count else {
            throw ModelIOError.malformed(path: path, reason: "\(key) is \(value), not a token id below \(count)")
        }
        return id
    }

    private static func flag(_ m: [String: GGUFValue], _ key: String) -> Bool? {
        m[key]?.integer.map { $0 != 0 }
    }

    private static func config(_ m: [String: GGUFValue], tokens: [String], path: String) throws -> TokenizerConfig {
        var config = TokenizerConfig()
        config.chatTemplate = m["tokenizer.chat_template"]?.string
        if let eos = try tokenID(m, "tokenizer.ggml.eos_token_id", count: tokens.count, path: path) { config.eosToken = tokens[eos] }
        if let pad = try tokenID(m, "tokenizer.ggml.padding_token_id", count: tokens.count, path: path) { config.padToken = tokens[pad] }
        if let bos = try tokenID(m, "tokenizer.ggml.bos_token_id", count: tokens.count, path: path) { config.bosToken = tokens[bos] }
        return config
    }

    private static func sentencePiece(_ m: [String: GGUFValue], path: String) throws -> Tokenizer {
        let tokens = try tokens(m, path: path)
        let types = try types(m, count: tokens.count, path: path)
        let scores = m["tokenizer.ggml.scores"]?.array ?? []
        guard scores.isEmpty || scores.count >= tokens.count else {
            throw ModelIOError.malformed(path: path, reason: "tokenizer.ggml.scores has \(scores.count) entries for \(tokens.count) tokens")
        }
        let pieces = try tokens.enumerated().map { id, text -> SentencePieceVocabulary.Piece in
            let score = scores.isEmpty ? 0 : scores[id].number
            guard let score else { throw ModelIOError.malformed(path: path, reason: "tokenizer.ggml.scores[\(id)] is not a number") }
            // llama.cpp reads an unknown type as undefined, which it treats as a normal piece.
            let type = SentencePieceVocabulary.PieceType(rawValue: types[id]) ?? .normal
            return SentencePieceVocabulary.Piece(text: text, score: Float(score), type: type)
        }
        var vocabulary = SentencePieceVocabulary(pieces: pieces)
        func id(_ key: String, default value: Int?) throws -> TokenID? {
            let found = try tokenID(m, key, count: tokens.count, path: path)
            return (found ?? value.flatMap { $0 < tokens.count ? $0 : nil }).map { TokenID($0) }
        }
        vocabulary.unknownID = try id("tokenizer.ggml.unknown_token_id", default: 0)
        vocabulary.bosID = try id("tokenizer.ggml.bos_token_id", default: 1)
        vocabulary.eosID = try id("tokenizer.ggml.eos_token_id", default: 2)
        vocabulary.padID = try id("tokenizer.ggml.padding_token_id", default: nil)
        vocabulary.addsDummyPrefix = flag(m, "tokenizer.ggml.add_space_prefix") ?? true
        vocabulary.addsBOS = flag(m, "tokenizer.ggml.add_bos_token") ?? true
        vocabulary.addsEOS = flag(m, "tokenizer.ggml.add_eos_token") ?? false
        vocabulary.byteFallback = true
        var config = try config(m, tokens: tokens, path: path)
        config.tokenizerClass = "LlamaTokenizer"
        do {
            return try Tokenizer(sentencePiece: vocabulary, config: config)
        } catch {
            throw ModelIOError.malformed(path: path, reason: "\(error)")
        }
    }

    /// A BPE vocabulary rebuilt as a tokenizer.json: the kind's splits, then `ByteLevel` for a byte-level vocabulary,
    /// or for a raw UTF-8 one the kind's normalizer and splits and BPE with `<0xXX>` byte fallback.
    private static func bpe(_ m: [String: GGUFValue], defaultPre: String, path: String) throws -> Tokenizer {
        let tokens = try tokens(m, path: path)
        let types = try types(m, count: tokens.count, path: path)
        let merges = m["tokenizer.ggml.merges"]?.array?.compactMap(\.string) ?? []
        let name = m["tokenizer.ggml.pre"]?.string ?? defaultPre
        guard let pre = GGUFPreTokenizer.named(name) else {
            throw ModelIOError.malformed(path: path, reason: "tokenizer.ggml.pre '\(name)' is not a pre-tokenizer this reader knows; it reads \(GGUFPreTokenizer.knownNames.joined(separator: ", "))")
        }
        var vocab: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (id, token) in tokens.enumerated() {
            let type = types[id]
            if type == 3 || type == 4 {
                added.append(["id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": false, "special": type == 3])
            }
            if type != 5 { vocab[token] = id }
        }
        let addsBOS = pre.alwaysAddsBOS || (flag(m, "tokenizer.ggml.add_bos_token") ?? pre.addsBOS)
        let bos = try tokenID(m, "tokenizer.ggml.bos_token_id", count: tokens.count, path: path)
        if addsBOS, bos == nil, pre.alwaysAddsBOS {
            throw ModelIOError.malformed(path: path, reason: "tokenizer.ggml.bos_token_id is missing; the '\(name)' pre-tokenizer always adds BOS")
        }
        var splits: [[String: Any]] = pre.regexes.map {
            ["type": "Split", "pattern": ["Regex": $0], "behavior": "Isolated", "invert": false]
        }
        if pre.dropsWhitespace {
            splits.insert(["type": "Split", "pattern": ["Regex": "\\s+"], "behavior": "Removed", "invert": false], at: 0)
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false]
        let normalizer: Any
        if pre.escapesSpaces {
            normalizer = ["type": "Replace", "pattern": ["String": " "], "content": "\u{2581}"]
        } else {
            // Qwen v1's tiktoken vocabulary (architecture `qwen`) splits like Qwen2 but never normalizes.
            let qwenV1 = m["general.architecture"]?.string == "qwen"
            normalizer = pre.normalizesNFC && !qwenV1 ? ["type": "NFC"] : NSNull()
        }
        let decoder: [String: Any]
        if pre.isByteLevel {
            decoder = byteLevel
        } else {
            let unescape: [[String: Any]] = pre.escapesSpaces
                ? [["type": "Replace", "pattern": ["String": "\u{2581}"], "content": " "]] : []
            decoder = ["type": "Sequence", "decoders": unescape + [["type": "ByteFallback"], ["type": "Fuse"]]]
        }
        var json: [String: Any] = [
            "version": "1.0", "added_tokens": added, "normalizer": normalizer,
            "pre_tokenizer": ["type": "Sequence", "pretokenizers": splits + (pre.isByteLevel ? [byteLevel] : [])],
            "decoder": decoder,
            "model": ["type": "BPE", "vocab": vocab, "merges": merges, "dropout": NSNull(), "unk_token": NSNull(),
                      "fuse_unk": false, "byte_fallback": !pre.isByteLevel, "ignore_merges": pre.ignoresMerges],
        ]
        if addsBOS, let bos {
            let b = tokens[bos]
            json["post_processor"] = [
                "type": "TemplateProcessing",
                "single": [["SpecialToken": ["id": b, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]],
                "pair": [["SpecialToken": ["id": b, "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]],
                         ["SpecialToken": ["id": b, "type_id": 1]], ["Sequence": ["id": "B", "type_id": 1]]],
                "special_tokens": [b: ["id": b, "ids": [bos], "tokens": [b]]],
            ]
        }
        var config = try config(m, tokens: tokens, path: path)
        config.addBosToken = pre.alwaysAddsBOS ? true : flag(m, "tokenizer.ggml.add_bos_token")
        do {
            return try Tokenizer(tokenizerJSON: try JSONSerialization.data(withJSONObject: json), config: config)
        } catch {
            throw ModelIOError.malformed(path: path, reason: "\(error)")
        }
    }
}

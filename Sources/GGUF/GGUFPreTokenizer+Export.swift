import CKernels
import Foundation
import Tokenizer

extension GGUFPreTokenizer {
    /// The text llama.cpp's converter encodes to recognise a tokenizer (`chktxt` of `get_vocab_base_pre`).
    static let checkText = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\u{1F680} (normal) \u{1F636}\u{200D}\u{1F32B}\u{FE0F} (multiple emojis concatenated) \u{2705} \u{1F999}\u{1F999} 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \u{1780}\u{17B6}\u{1793}\u{17CB}\u{178F}\u{17C2}\u{1796}\u{17B7}\u{179F}\u{17C1}\u{179F}\u{17A2}\u{17B6}\u{1785}\u{1F601} ?\u{6211}\u{60F3}\u{5728}apple\u{5DE5}\u{4F5C}1314151\u{5929}\u{FF5E} ------======= \u{43D}\u{435}\u{449}\u{43E} \u{43D}\u{430} \u{411}\u{44A}\u{43B}\u{433}\u{430}\u{440}\u{441}\u{43A}\u{438} ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL"

    /// sha256 of the Python text of the ids (`str([1, 2, 3])`), as the converter computes it.
    static func checkHash(ids: [TokenID]) -> String {
        let text = "[" + ids.map(String.init).joined(separator: ", ") + "]"
        var state = pk_sha256()
        pk_sha256_init(&state)
        let bytes = Array(text.utf8)
        bytes.withUnsafeBufferPointer { pk_sha256_update(&state, $0.baseAddress, $0.count) }
        var digest = [UInt8](repeating: 0, count: 32)
        pk_sha256_final(&state, &digest)
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    /// The converter's table of check hashes (models whose pre-tokenizer it knows) and the names it writes.
    static let namesByCheckHash: [String: String] = [
        "0ef9807a4087ebef797fc749390439009c3b9eda9ad1a097abbe738f486c01e5": "llama-bpe",
        "049ecf7629871e3041641907f3de7c733e4dbfdc736f57d882ba0b0845599754": "deepseek-llm",
        "347715f544604f9118bb75ed199f68779f423cabb20db6de6f31b908d04d7821": "deepseek-coder",
        "8aeee3860c56296a157a1fe2fad249ec40aa59b1bb5709f4ade11c4e6fe652ed": "falcon",
        "9d032fcbd5501f4a38150912590928bfb36091efb5df11b8e2124b0390e3fb1e": "falcon3",
        "b6dc8df998e1cfbdc4eac8243701a65afe638679230920b50d6f17d81c098166": "mpt",
        "35d91631860c815f952d711435f48d356ebac988362536bed955d43bfa436e34": "starcoder",
        "3ce83efda5659b07b1ad37ca97ca5797ea4285d9b9ab0dc679e4a720c9da7454": "gpt-2",
        "32d85c31273f8019248f2559fed492d929ea28b17e51d81d3bb36fff23ca72b3": "stablelm2",
        "6221ad2852e85ce96f791f476e0b390cf9b474c9e3d1362f53a24a06dc8220ff": "refact",
        "9c2227e4dd922002fb81bde4fc02b0483ca4f12911410dee2255e4987644e3f8": "command-r",
        "e636dc30a262dcc0d8c323492e32ae2b70728f4df7dfe9737d9f920a282b8aea": "qwen2",
        "a8594e3edff7c29c003940395316294b2c623e09894deebbc65f33f1515df79e": "dbrx",
        "c7699093ba4255a91e702aa38a596aa81669f3525dae06c2953267dde580f448": "jina-v1-en",
        "171aeeedd6fb548d418a7461d053f11b6f1f1fc9b387bd66640d28a4b9f5c643": "jina-v2-es",
        "27949a2493fc4a9f53f5b9b029c82689cfbe5d3a1929bb25e043089e28466de6": "jina-v2-de",
        "c136ed14d01c2745d4f60a9596ae66800e2b61fa45643e72436041855ad4089d": "smaug-bpe",
        "c7ea5862a53e4272c035c8238367063e2b270d51faa48c0f09e9d5b54746c360": "poro-chat",
        "7967bfa498ade6b757b064f31e964dddbb80f8f9a4d68d4ba7998fcf281c531a": "jina-v2-code",
        "7fc505bd3104ca1083b150b17d088b59534ede9bde81f0dd2090967d7fe52cee": "viking",
        "b53802fb28e26d645c3a310b34bfe07da813026ec7c7716883404d5e0f8b1901": "jais",
        "7b3e7548e4308f52a76e8229e4e6cc831195d0d1df43aed21ac6c93da05fec5f": "codeshell",
        "63b97e4253352e6f357cc59ea5b583e3a680eaeaf2632188c2b952de2588485e": "tekken",
        "855059429035d75a914d1eda9f10a876752e281a054a7a3d421ef0533e5b6249": "smollm",
        "3c30d3ad1d6b64202cd222813e7736c2db6e1bd6d67197090fc1211fbc612ae7": "bloom",
        "bc01ce58980e1db43859146dc51b1758b3b88729b217a74792e9f8d43e479d21": "gpt3-finnish",
        "4e2b24cc4770243d65a2c9ec19770a72f08cffc161adbb73fcbb6b7dd45a0aae": "exaone",
        "fcace8b9cac38ce847670c970cd5892031a753a1ef381abd1d9af00f713da085": "phi-2",
        "60824e3c0d9401f89943cbb2fff727f0e2d4c545ba4df2d6e4f09a6db0f5b450": "chameleon",
        "8b5a93ed704057481f240da0be7e7dca721d7f8f4755263b6807227a2cbeae65": "roberta-bpe",
        "ad851be1dba641f2e3711822f816db2c265f788b37c63b4e1aeacb9ee92de8eb": "gigachat",
        "d4c8f286ea6b520b3d495c4455483cfa2302c0cfcd4be05d781b6a8a0a7cdaf1": "megrez",
        "877081d19cf6996e2c4ff0e1236341e9b7bde288f5311a56a937f0afbbb3aeb5": "deepseek-v3",
        "b3f499bb4255f8ca19fccd664443283318f2fd2414d5e0b040fbdd0cc195d6c5": "deepseek-r1-qwen",
        "ccc2ef013c104be7bae2965776d611e1d7a8a2a9c547dd93a682c9a9fc80352e": "gpt-4o",
        "7dec86086fcc38b66b7bc1575a160ae21cf705be7718b9d5598190d7c12db76f": "superbpe",
        "1994ffd01900cfb37395608534236ecd63f2bd5995d6cb1004dda1af50240f15": "trillion",
        "96a5f08be6259352137b512d4157e333e21df7edd3fcd152990608735a65b224": "bailingmoe",
        "d353350c764d8c3b39c763113960e4fb4919bea5fbf208a0e3b22e8469dc7406": "llama4",
        "0e9433cbbb161f89e264eb32e8e64bfe69e834973ffca5d41d3948a604a3e2a3": "pixtral",
        "d5f1dd6f980fec569fb218a81a7658ac45fc56b38c5a0adeb1c232fbe04ef5ec": "seed-coder",
        "b6e8e1518dc4305be2fe39c313ed643381c4da5db34a98f6a04c093f8afbe99b": "chatglm-bpe",
        "81d72c7348a9f0ebe86f23298d37debe0a5e71149e29bd283904c02262b27516": "chatglm-bpe",
        "a1336059768a55c99a734006ffb02203cd450fed003e9a71886c88acf24fdbc2": "glm4",
        "1431a23e583c97432bc230bff598d103ddb5a1f89960c8f1d1051aaa944d0b35": "minerva-7b",
        "81212dc7cdb7e0c1074ca62c5aeab0d43c9f52b8a737be7b12a777c953027890": "kimi-k2",
        "49fc0303c9e0d2c2c565c510f64b2d9b271276acdcdadff733249eda9f7d59df": "afmoe",
    ]

    /// GPT-2's regex as Hugging Face's `ByteLevel` runs it; llama.cpp's drops the final `|\s+`, which never changes
    /// a split (a lone whitespace character the other alternatives leave becomes a piece of its own either way).
    static let huggingFaceGPT2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// The name llama.cpp's converter would write for a byte-level tokenizer.json. Its own rule: the hash of the
    /// token ids of `checkText` (`checkHash`), looked up in `namesByCheckHash`. For a tokenizer it does not know
    /// (a new or retrained vocabulary) it would stop; here the split regexes of the tokenizer.json are matched
    /// against the kinds instead, and among kinds with the same regexes the one whose `ignore_merges` agrees is
    /// taken, then the first in table order (so the Llama 3 regex with `ignore_merges` is `llama-bpe`, without it
    /// `dbrx`, as Smaug's and DBRX's hashes give). Kinds over raw UTF-8 vocabularies (gemma4, whitespace) are not
    /// candidates. Nil when neither finds a name.
    static func name(tokenizerJSON root: [String: Any], checkHash: String?) -> String? {
        if let checkHash, let name = namesByCheckHash[checkHash], named(name) != nil { return name }
        guard let regexes = splitRegexes(root["pre_tokenizer"] as? [String: Any]), !regexes.isEmpty else { return nil }
        // Only byte-level kinds: this names the pre-tokenizer of a `gpt2` vocabulary.
        let candidates = all.filter { $0.isByteLevel && $0.regexes == regexes }
        let ignoresMerges = ((root["model"] as? [String: Any])?["ignore_merges"] as? Bool) ?? false
        return (candidates.first { $0.ignoresMerges == ignoresMerges } ?? candidates.first)?.names.first
    }

    /// The regexes a tokenizer.json pre-tokenizer splits with, in order (a `ByteLevel` with `use_regex` adds GPT-2's);
    /// nil when a step is something other than a regex `Split` or `ByteLevel`.
    static func splitRegexes(_ preTokenizer: [String: Any]?) -> [String]? {
        guard let preTokenizer else { return [] }
        let steps = (preTokenizer["type"] as? String) == "Sequence" ? (preTokenizer["pretokenizers"] as? [[String: Any]]) ?? [] : [preTokenizer]
        var regexes: [String] = []
        for step in steps {
            switch step["type"] as? String {
            case "Split":
                guard let regex = (step["pattern"] as? [String: Any])?["Regex"] as? String else { return nil }
                regexes.append(regex == huggingFaceGPT2Regex ? all[0].regexes[1] : regex)
            case "ByteLevel":
                if (step["use_regex"] as? Bool) ?? true { regexes.append(all[0].regexes[1]) }
            default:
                return nil
            }
        }
        return regexes
    }
}

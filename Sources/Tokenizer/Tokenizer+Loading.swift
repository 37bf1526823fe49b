import Foundation

extension Tokenizer {
    /// Loads a tokenizer from a Hugging Face model directory: `tokenizer.json`, else a SentencePiece BPE
    /// `tokenizer.model` (Llama 2, Mistral v0.1 folders without tokenizer.json; GLM-4's remote code keeps a tiktoken
    /// rank file under that name), else `qwen.tiktoken` (Qwen v1), with `tokenizer_config.json` and `chat_template.jinja` when present
    /// (the `.jinja` file wins over the config's `chat_template`, as in transformers 5).
    /// ```swift
    /// let tokenizer = try Tokenizer.load(directory: URL(fileURLWithPath: "/models/Qwen1.5-0.5B-Chat"))
    /// ```
    public static func load(directory: URL) throws -> Tokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TokenizerError.directoryNotFound(path: directory.path)
        }
        var config = TokenizerConfig()
        let configURL = directory.appendingPathComponent("tokenizer_config.json")
        if let data = try readIfPresent(configURL) {
            config = try TokenizerConfig(json: data, file: configURL.path)
        }
        if let data = try readIfPresent(directory.appendingPathComponent("chat_template.jinja")) {
            config.chatTemplate = String(decoding: data, as: UTF8.self)
        }
        let jsonURL = directory.appendingPathComponent("tokenizer.json")
        if let data = try readIfPresent(jsonURL) {
            return try Tokenizer(tokenizerJSON: data, config: config, file: jsonURL.path)
        }
        let modelURL = directory.appendingPathComponent("tokenizer.model")
        if let data = try readIfPresent(modelURL) {
            // GLM-4's remote code keeps a tiktoken rank file under this name.
            if isTiktokenRankFile(data) {
                return try Tokenizer(tiktokenRanks: data, config: config, file: modelURL.path, family: .glm4)
            }
            var vocabulary = try SentencePieceVocabulary(modelFile: data, file: modelURL.path)
            if let addsBOS = config.addBosToken { vocabulary.addsBOS = addsBOS }
            if let addsEOS = config.addEosToken { vocabulary.addsEOS = addsEOS }
            return try Tokenizer(sentencePiece: vocabulary, config: config, file: modelURL.path)
        }
        let ranksURL = directory.appendingPathComponent("qwen.tiktoken")
        if let data = try readIfPresent(ranksURL) {
            // Qwen v1 ships no chat template: its remote code's make_context writes ChatML with this system prompt.
            if config.chatTemplate == nil { config.chatTemplate = qwenV1ChatTemplate }
            return try Tokenizer(tiktokenRanks: data, config: config, file: ranksURL.path)
        }
        throw TokenizerError.noTokenizerFile(directory: directory.path)
    }

    /// Builds a tokenizer from the contents of a `tokenizer.json`.
    /// ```swift
    /// let tokenizer = try Tokenizer(tokenizerJSON: data, config: TokenizerConfig(eosToken: "<|im_end|>"))
    /// ```
    public convenience init(tokenizerJSON data: Data, config: TokenizerConfig) throws {
        try self.init(tokenizerJSON: data, config: config, file: "tokenizer.json")
    }

    convenience init(tokenizerJSON data: Data, config: TokenizerConfig, file: String) throws {
        let root = JSONField(value: try JSONParser.parse(data, file: file), file: file)
        let preTokenizer = try PreTokenizer(json: root.optional("pre_tokenizer"))
        let model = try BPEModel(json: root.required("model"), symbolsAreBytes: preTokenizer.isByteLevel)
        let addedTokens = try root.optional("added_tokens")?.array().map { try AddedToken(json: $0) } ?? []
        self.init(config: config, normalizer: try Normalizer(json: root.optional("normalizer")),
                  preTokenizer: preTokenizer, model: model, addedTokens: addedTokens,
                  postProcessor: try PostProcessor(json: root.optional("post_processor")),
                  decoder: try TokenDecoder(json: root.optional("decoder"), file: file))
    }

    /// Qwen v1's chat format (`make_context` in its remote code) as a template: ChatML turns joined by a newline,
    /// "You are a helpful assistant." when the conversation has no system message.
    public static let qwenV1ChatTemplate = """
        {% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}\
        {{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}\
        {{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}\
        {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
        """

    private static func readIfPresent(_ url: URL) throws -> Data? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw TokenizerError.unreadableFile(path: url.path, reason: error.localizedDescription)
        }
    }
}

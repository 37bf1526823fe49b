import Foundation

/// The architecture-relevant fields of a Hugging Face `config.json`, in Swift names. Values that matter are
/// read, never assumed; values we do not implement (an unknown `model_type`, a `rope_scaling` kind) are errors.
///
/// ```swift
/// let config = try ModelConfig(json: data, path: "config.json")
/// config.kvHeadCount   // num_key_value_heads
/// ```
public struct ModelConfig: Sendable, Equatable {
    public enum Architecture: String, Sendable, CaseIterable {
        case qwen2, llama, mistral, qwen3
    }

    public var architecture: Architecture
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabSize: Int
    public var maxPositionEmbeddings: Int
    public var rmsNormEps: Float
    public var rope: RoPEConfig
    public var tieWordEmbeddings: Bool
    /// Bias on q, k and v projections (Qwen2 family: true).
    public var qkvBias: Bool
    /// Bias on o_proj (Llama `attention_bias`: true; never in Qwen2).
    public var outputBias: Bool
    /// Bias on gate/up/down (Llama `mlp_bias`).
    public var mlpBias: Bool

    /// Whether projection `p` carries a bias in this architecture.
    public func hasBias(_ p: Projection) -> Bool {
        switch p {
        case .q, .k, .v: qkvBias
        case .o: outputBias
        case .gate, .up, .down: mlpBias
        }
    }
    /// Per-head RMSNorm on queries and keys before RoPE (Qwen3).
    public var qkNorm: Bool
    /// Attention window of the layers that use sliding-window attention (Mistral: all; Qwen2/Qwen3 with
    /// use_sliding_window: layers from max_window_layers on, or as `layer_types` says).
    public var slidingWindow: Int?
    /// Which layers use `slidingWindow` (empty: all of them when a window is set).
    public var slidingLayers: [Bool] = []

    /// The attention window of layer `l`, nil for full causal attention.
    public func attentionWindow(layer l: Int) -> Int? {
        guard let w = slidingWindow else { return nil }
        return slidingLayers.isEmpty || (slidingLayers.indices.contains(l) && slidingLayers[l]) ? w : nil
    }
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]
    /// The stored dtype named by the config (`torch_dtype` or `dtype`), if any.
    public var storedDType: String?

    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }

    /// Parameter count (embeddings counted once when tied).
    public var parameterCount: Int {
        let c = hiddenSize, i = intermediateSize
        var perLayer = c * qDim + 2 * c * kvDim + qDim * c + 3 * c * i + 2 * c
        if qkvBias { perLayer += qDim + 2 * kvDim }
        if outputBias { perLayer += c }
        if mlpBias { perLayer += 2 * i + c }
        if qkNorm { perLayer += 2 * headDim }
        let embed = vocabSize * c
        return layerCount * perLayer + embed + (tieWordEmbeddings ? 0 : embed) + c
    }

    public init(architecture: Architecture, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
                kvHeadCount: Int, headDim: Int? = nil, vocabSize: Int, maxPositionEmbeddings: Int = 32768,
                rmsNormEps: Float = 1e-6, rope: RoPEConfig = RoPEConfig(theta: 10000), tieWordEmbeddings: Bool,
                qkvBias: Bool? = nil, outputBias: Bool = false, mlpBias: Bool = false, qkNorm: Bool? = nil,
                slidingWindow: Int? = nil, bosTokenID: Int? = nil, eosTokenIDs: [Int] = [], storedDType: String? = nil) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim ?? hiddenSize / headCount
        self.vocabSize = vocabSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.rmsNormEps = rmsNormEps
        self.rope = rope
        self.tieWordEmbeddings = tieWordEmbeddings
        self.qkvBias = qkvBias ?? (architecture == .qwen2)
        self.outputBias = outputBias
        self.mlpBias = mlpBias
        self.qkNorm = qkNorm ?? (architecture == .qwen3)
        self.slidingWindow = slidingWindow
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.storedDType = storedDType
    }
}

extension ModelConfig {
    /// Parses config.json. `path` is used in error messages.
    public init(json data: Data, path: String) throws {
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TransformerError.config(path: path, reason: "not a JSON object")
        }
        let fields = ConfigFields(obj, path: path)
        let modelType = try fields.string("model_type")
        guard let arch = Architecture(rawValue: modelType) else {
            throw TransformerError.unsupported(path: path, reason: "model_type '\(modelType)' is not supported; supported: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")) (Qwen1.5/Qwen2/Qwen2.5 use qwen2)")
        }
        if let act = fields.optionalString("hidden_act") ?? fields.optionalString("hidden_activation"), act != "silu", act != "swish" {
            throw TransformerError.unsupported(path: path, reason: "hidden_act '\(act)' is not supported (only silu)")
        }
        let hidden = try fields.int("hidden_size"), heads = try fields.int("num_attention_heads")
        let layers = try fields.int("num_hidden_layers")
        let kvHeads = fields.optionalInt("num_key_value_heads") ?? heads
        guard hidden > 0, heads > 0, kvHeads > 0, layers > 0, heads % kvHeads == 0 else {
            throw TransformerError.config(path: path, reason: "invalid sizes: hidden_size \(hidden), num_attention_heads \(heads), num_key_value_heads \(kvHeads), num_hidden_layers \(layers)")
        }
        let intermediate = try fields.int("intermediate_size"), vocab = try fields.int("vocab_size")
        // Sizes beyond any released model are a broken file, not a reason to try allocating them.
        for (name, value, limit) in [("hidden_size", hidden, 1 << 16), ("num_attention_heads", heads, 1 << 10),
                                     ("num_hidden_layers", layers, 1 << 10), ("intermediate_size", intermediate, 1 << 18),
                                     ("vocab_size", vocab, 1 << 22)] where value < 1 || value > limit {
            throw TransformerError.config(path: path, reason: "\(name) \(value) is outside 1...\(limit)")
        }
        let headDim = fields.optionalInt("head_dim") ?? hidden / heads
        guard headDim > 0, headDim % 2 == 0, headDim <= 1024 else {
            throw TransformerError.config(path: path, reason: "head_dim \(headDim) must be a positive even number")
        }
        let rope = try RoPEConfig(fields: fields, headDim: headDim)
        var window: Int? = nil
        var slidingLayers: [Bool] = []
        if let w = fields.optionalInt("sliding_window"), w > 0 {
            switch arch {
            case .mistral:
                window = w
            case .qwen2, .qwen3:
                if fields.optionalBool("use_sliding_window") == true {
                    window = w
                    let from = fields.optionalInt("max_window_layers") ?? 28
                    slidingLayers = (0..<layers).map { $0 >= from }
                }
            case .llama:
                window = nil
            }
            // An explicit per-layer list wins (transformers 5 writes one).
            if window != nil, let types = fields.obj["layer_types"] as? [String], types.count == layers {
                slidingLayers = types.map { $0 == "sliding_attention" }
            }
        }
        var eos: [Int] = []
        if let e = obj["eos_token_id"] as? NSNumber { eos = [e].compactMap { Int(exactly: $0.doubleValue) } }
        if let e = obj["eos_token_id"] as? [NSNumber] { eos = e.compactMap { Int(exactly: $0.doubleValue) } }
        let attentionBias = fields.optionalBool("attention_bias")
        self.init(
            architecture: arch, hiddenSize: hidden, intermediateSize: intermediate,
            layerCount: layers, headCount: heads, kvHeadCount: kvHeads, headDim: headDim,
            vocabSize: vocab,
            maxPositionEmbeddings: max(1, fields.optionalInt("max_position_embeddings") ?? 32768),
            rmsNormEps: Float(fields.optionalDouble("rms_norm_eps") ?? 1e-6), rope: rope,
            tieWordEmbeddings: fields.optionalBool("tie_word_embeddings") ?? false,
            qkvBias: arch == .qwen2 ? true : (attentionBias ?? false),
            outputBias: arch == .qwen2 ? false : (attentionBias ?? false),
            mlpBias: fields.optionalBool("mlp_bias") ?? false, qkNorm: arch == .qwen3, slidingWindow: window,
            bosTokenID: fields.optionalInt("bos_token_id"), eosTokenIDs: eos,
            storedDType: fields.optionalString("torch_dtype") ?? fields.optionalString("dtype"))
        self.slidingLayers = slidingLayers
    }

    /// Loads `config.json` from a model directory.
    public init(directory: URL) throws {
        let url = directory.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: url) else {
            throw TransformerError.config(path: url.path, reason: "cannot read the file")
        }
        try self.init(json: data, path: url.path)
    }
}

/// Typed access to a JSON object with errors naming the file and the field.
struct ConfigFields {
    let obj: [String: Any]
    let path: String

    init(_ obj: [String: Any], path: String) { self.obj = obj; self.path = path }

    func string(_ key: String) throws -> String {
        guard let v = obj[key] else { throw TransformerError.config(path: path, reason: "missing field '\(key)'") }
        guard let s = v as? String else { throw TransformerError.config(path: path, reason: "field '\(key)' must be a string") }
        return s
    }

    func int(_ key: String) throws -> Int {
        guard let v = obj[key], !(v is NSNull) else { throw TransformerError.config(path: path, reason: "missing field '\(key)'") }
        guard let n = v as? NSNumber, let i = Int(exactly: n.doubleValue) else {
            throw TransformerError.config(path: path, reason: "field '\(key)' must be an integer")
        }
        return i
    }

    func optionalInt(_ key: String) -> Int? { (obj[key] as? NSNumber).flatMap { Int(exactly: $0.doubleValue) } }
    func optionalDouble(_ key: String) -> Double? { (obj[key] as? NSNumber)?.doubleValue }
    func optionalBool(_ key: String) -> Bool? { (obj[key] as? NSNumber)?.boolValue }
    func optionalString(_ key: String) -> String? { obj[key] as? String }
    func object(_ key: String) -> [String: Any]? { obj[key] as? [String: Any] }
}

import Foundation

/// The architecture-relevant fields of a Hugging Face `config.json`, in Swift names. Values that matter are
/// read, never assumed; values we do not implement (an unknown `model_type`, a `rope_scaling` kind) are errors.
///
/// ```swift
/// let config = try ModelConfig(json: data, path: "config.json")
/// config.kvHeadCount   // num_key_value_heads
/// ```
public struct ModelConfig: Sendable, Equatable {
    /// `model_type` of the families we run (Qwen v1 is `qwen`; Qwen1.5/2/2.5 are `qwen2`).
    public enum Architecture: String, Sendable, CaseIterable {
        case qwen2, llama, mistral, qwen3, qwen, phi3, internlm2, internlm3, baichuan, gemma2
        case gemma3 = "gemma3_text"
        case glm, glm4
        case qwen2MoE = "qwen2_moe"
        case qwen3MoE = "qwen3_moe"
        case olmoe
    }

    /// A sparse mixture-of-experts MLP (Qwen2-MoE, Qwen3-MoE, OLMoE): a softmax router picks `topK` of `experts` gated MLPs
    /// per token; Qwen2-MoE adds a shared expert behind a sigmoid gate.
    public struct MoE: Sendable, Equatable {
        public var experts: Int
        public var topK: Int
        /// Width of each expert's gate and up projections.
        public var intermediateSize: Int
        /// Width of the shared expert (nil: none).
        public var sharedIntermediateSize: Int?
        /// The chosen experts' probabilities are renormalised to sum to 1.
        public var normalizeTopK: Bool
        /// Which layers have the mixture (the others a dense MLP of `intermediateSize`).
        public var sparseLayers: [Bool]
        /// `router_aux_loss_coef`: the load-balancing loss's weight when training adds it (0.001 in Qwen's configs).
        public var routerAuxLossCoefficient: Double = 0.001

        public init(experts: Int, topK: Int, intermediateSize: Int, sharedIntermediateSize: Int?, normalizeTopK: Bool,
                    sparseLayers: [Bool]) {
            (self.experts, self.topK, self.intermediateSize) = (experts, topK, intermediateSize)
            (self.sharedIntermediateSize, self.normalizeTopK, self.sparseLayers) = (sharedIntermediateSize, normalizeTopK, sparseLayers)
        }
    }

    /// The gate's activation in the gated MLP: act(gate) * up.
    public enum Activation: String, Sendable, Equatable {
        case silu
        /// GELU with the tanh approximation (Gemma's `gelu_pytorch_tanh`).
        case geluTanh = "gelu_pytorch_tanh"
    }

    /// How the output columns of a fused q/k/v projection split into queries, keys and values.
    public enum QKVFusion: Sendable, Equatable {
        /// [q | k | v] (Qwen v1 `c_attn`, Phi-3 `qkv_proj`, Baichuan2 `W_pack`).
        case concatenated
        /// For each key/value head: its H/Hkv query heads, then its key head, then its value head (InternLM2 `wqkv`).
        case grouped
    }

    public var architecture: Architecture
    public var hiddenSize: Int
    /// Width of the gated MLP (each of gate and up).
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabSize: Int
    public var maxPositionEmbeddings: Int
    public var rmsNormEps: Float
    public var rope: RoPEConfig
    /// Leading dimensions of each head that rotary embedding rotates (`partial_rotary_factor`, Qwen v1 `rotary_pct`).
    public var rotaryDim: Int
    public var tieWordEmbeddings: Bool
    /// Bias on q, k and v projections (Qwen2 family: true).
    public var qkvBias: Bool
    /// Bias on o_proj (Llama `attention_bias`: true; never in Qwen2).
    public var outputBias: Bool
    /// Bias on gate/up/down (Llama `mlp_bias`).
    public var mlpBias: Bool
    /// q, k and v as one matrix in the checkpoint (nil: three).
    public var qkvFusion: QKVFusion?
    /// gate and up as one matrix [gate; up] in the checkpoint (Phi-3 `gate_up_proj`).
    public var fusedGateUp: Bool
    /// Qwen v1's `use_logn_attn`: at inference, queries at 1-based position p > this length are scaled by
    /// log(p) / log(length).
    public var lognScalingLength: Int?
    /// Qwen v1's `use_dynamic_ntk` (its `seq_length`): at inference, a pass whose context reaches L > this length
    /// rotates with the base times alpha^(R / (R - 2)), alpha = 2^ceil(log2(L / length) + 1) - 1 (see RoPE.ntkAlpha).
    public var dynamicNTKLength: Int?
    /// Baichuan2's NormHead: every LM head row is divided by its L2 norm.
    public var normHead: Bool
    /// The checkpoint's tensor names.
    public var layout: WeightLayout
    /// The MLP gate's activation.
    public var activation: Activation = .silu
    /// RMSNorm weights are stored as w - offset and scale by (offset + w) (Gemma: 1); we keep offset + w in memory.
    public var normOffset: Float = 0
    /// Input embeddings are multiplied by this (Gemma: sqrt(hidden_size)).
    public var embeddingScale: Float?
    /// Attention scores are q·k times this (1/sqrt(head_dim), or Gemma's query_pre_attn_scalar^-1/2).
    public var attentionScale: Float
    /// Gemma 2: scores s become cap * tanh(s / cap) before the softmax.
    public var attentionSoftcap: Float?
    /// ALiBi (Baichuan 13B): no rotary positions; head h's score of key position j from query position i gets
    /// slope[h] * (j - i) added (nil: rotary positions).
    public var alibiSlopes: [Float]?
    /// Rotary positions are applied to queries and keys (every architecture but ALiBi's).
    public var usesRotary: Bool { alibiSlopes == nil }
    /// Gemma 2: logits z become cap * tanh(z / cap).
    public var finalSoftcap: Float?
    /// Norms on the attention and MLP outputs before they join the residual (Gemma 2/3, GLM-4).
    public var sandwichNorms = false
    /// Rotary embedding rotates adjacent pairs (x[2i], x[2i+1]) instead of halves (GLM).
    public var interleavedRotary = false
    /// The rotary settings of sliding-window layers when they differ from the others' (Gemma 3's local base).
    public var localRope: RoPEConfig?

    /// The rotary settings of layer `l`.
    public func rope(layer l: Int) -> RoPEConfig {
        if let localRope, attentionWindow(layer: l) != nil { return localRope }
        return rope
    }

    /// Whether projection `p` carries a bias in this architecture.
    public func hasBias(_ p: Projection) -> Bool {
        switch p {
        case .q, .k, .v, .qkv: qkvBias
        case .o: outputBias
        case .gate, .up, .gateUp, .down: mlpBias
        }
    }

    /// The mixture of experts, if the model has one.
    public var moe: MoE?

    /// Whether layer `l`'s MLP is a mixture of experts.
    public func isSparse(layer l: Int) -> Bool { moe.map { $0.sparseLayers.indices.contains(l) && $0.sparseLayers[l] } ?? false }

    /// The projections of a dense layer, in checkpoint order.
    public var projections: [Projection] {
        (qkvFusion == nil ? [.q, .k, .v] : [.qkv]) + [.o] + (fusedGateUp ? [.gateUp] : [.gate, .up]) + [.down]
    }

    /// The projections of layer `l` (attention only when its MLP is a mixture of experts).
    public func projections(layer l: Int) -> [Projection] {
        isSparse(layer: l) ? projections.filter(\.isAttention) : projections
    }

    /// PEFT's usual LoRA targets for the family: q_proj and v_proj, or the fused q/k/v module (`c_attn`, `wqkv`, ...).
    public var defaultLoRATargets: [String] {
        qkvFusion == nil ? ["q_proj", "v_proj"] : [layout.module(.qkv)]
    }

    /// PEFT's usual (IA)³ targets (keys, values and the MLP's output projection) and the feed-forward ones among them.
    public var defaultIA3Targets: (targets: [String], feedforward: [String]) {
        let down = layout.module(.down)
        return ((qkvFusion == nil ? ["k_proj", "v_proj"] : [layout.module(.qkv)]) + [down], [down])
    }

    /// (input, output) features of projection `p`.
    public func features(_ p: Projection) -> (input: Int, output: Int) {
        let c = hiddenSize, i = intermediateSize
        switch p {
        case .q: return (c, qDim)
        case .k, .v: return (c, kvDim)
        case .qkv: return (c, qDim + 2 * kvDim)
        case .o: return (qDim, c)
        case .gate, .up: return (c, i)
        case .gateUp: return (c, 2 * i)
        case .down: return (i, c)
        }
    }

    /// Per-head RMSNorm on queries and keys before RoPE (Qwen3).
    public var qkNorm: Bool
    /// The q and k norms span all heads' features at once (OLMoE: widths qDim and kvDim) instead of each head's.
    public var qkNormAcrossHeads = false
    /// Features each q / k norm row spans.
    public var qNormWidth: Int { qkNormAcrossHeads ? qDim : headDim }
    public var kNormWidth: Int { qkNormAcrossHeads ? kvDim : headDim }
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
        var perLayer = 2 * hiddenSize
        for p in projections {
            let (i, o) = features(p)
            perLayer += i * o + (hasBias(p) ? o : 0)
        }
        if qkNorm { perLayer += qNormWidth + kNormWidth }
        if sandwichNorms { perLayer += 2 * hiddenSize }
        let embed = vocabSize * hiddenSize
        var total = layerCount * perLayer + embed + (tieWordEmbeddings ? 0 : embed) + hiddenSize
        if let moe {
            let c = hiddenSize
            let sparse = (0..<layerCount).filter(isSparse).count
            let dense = 3 * c * intermediateSize + (mlpBias ? 2 * intermediateSize + c : 0)
            var block = moe.experts * (c + 3 * c * moe.intermediateSize)
            if let s = moe.sharedIntermediateSize { block += 3 * c * s + c }
            total += sparse * (block - dense)
        }
        return total
    }

    /// Parameters one token's decoding multiplies: all of them but the experts the router did not pick (a mixture
    /// of experts reads only `topK` of its experts per token) and the embedding table (one row is read) unless it is
    /// also the LM head.
    public var activeParameterCount: Int {
        var active = parameterCount
        if !tieWordEmbeddings { active -= vocabSize * hiddenSize }
        if let moe {
            let sparse = (0..<layerCount).filter(isSparse).count
            active -= sparse * (moe.experts - moe.topK) * 3 * hiddenSize * moe.intermediateSize
        }
        return active
    }

    public init(architecture: Architecture, hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int,
                kvHeadCount: Int, headDim: Int? = nil, vocabSize: Int, maxPositionEmbeddings: Int = 32768,
                rmsNormEps: Float = 1e-6, rope: RoPEConfig = RoPEConfig(theta: 10000), rotaryDim: Int? = nil,
                tieWordEmbeddings: Bool, qkvBias: Bool? = nil, outputBias: Bool = false, mlpBias: Bool = false,
                qkNorm: Bool? = nil, slidingWindow: Int? = nil, bosTokenID: Int? = nil, eosTokenIDs: [Int] = [],
                storedDType: String? = nil) {
        self.architecture = architecture
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.kvHeadCount = kvHeadCount
        self.headDim = headDim ?? hiddenSize / headCount
        self.rotaryDim = rotaryDim ?? self.headDim
        self.vocabSize = vocabSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.rmsNormEps = rmsNormEps
        self.rope = rope
        self.tieWordEmbeddings = tieWordEmbeddings
        self.qkvBias = qkvBias ?? (architecture == .qwen2 || architecture == .qwen)
        self.outputBias = outputBias
        self.mlpBias = mlpBias
        self.qkNorm = qkNorm ?? (architecture == .qwen3)
        self.slidingWindow = slidingWindow
        self.bosTokenID = bosTokenID
        self.eosTokenIDs = eosTokenIDs
        self.storedDType = storedDType
        attentionScale = 1 / Float(self.headDim).squareRoot()
        switch architecture {
        case .qwen: (qkvFusion, fusedGateUp, layout) = (.concatenated, false, .qwen)
        case .phi3: (qkvFusion, fusedGateUp, layout) = (.concatenated, true, .llama)
        case .internlm2: (qkvFusion, fusedGateUp, layout) = (.grouped, false, .internlm2)
        case .baichuan: (qkvFusion, fusedGateUp, layout) = (.concatenated, false, .baichuan)
        case .qwen2, .llama, .mistral, .qwen3, .internlm3, .qwen2MoE, .qwen3MoE, .olmoe: (qkvFusion, fusedGateUp, layout) = (nil, false, .llama)
        case .gemma2, .gemma3: (qkvFusion, fusedGateUp, layout) = (nil, false, .gemma)
        case .glm: (qkvFusion, fusedGateUp, layout) = (nil, true, .llama)
        case .glm4: (qkvFusion, fusedGateUp, layout) = (nil, true, .glm4)
        }
        if architecture == .gemma2 || architecture == .gemma3 {
            activation = .geluTanh
            normOffset = 1
            embeddingScale = Float(hiddenSize).squareRoot()
            sandwichNorms = true
        }
        if architecture == .glm4 { sandwichNorms = true }
        if architecture == .glm || architecture == .glm4 { interleavedRotary = true }
        lognScalingLength = nil
        normHead = architecture == .baichuan
    }
}

extension ModelConfig {
    /// Parses config.json. `path` is used in error messages.
    public init(json data: Data, path: String) throws {
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TransformerError.config(path: path, reason: "not a JSON object")
        }
        var fields = ConfigFields(obj, path: path)
        let modelType = try fields.string("model_type")
        // ChatGLM2/3 and GLM-4's remote code (`ChatGLMModel`): GLM under its own field and tensor names.
        let chatGLM = modelType == "chatglm"
        if chatGLM { try Self.readChatGLMFields(&fields) }
        guard let arch = chatGLM ? .glm : Architecture(rawValue: modelType) else {
            throw TransformerError.unsupported(path: path, reason: "model_type '\(modelType)' is not supported; supported: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")) (Qwen1.5/Qwen2/Qwen2.5 use qwen2, Qwen-1.8B/7B (v1) qwen)")
        }
        // Qwen v1 spells the shared fields its own way; read them under the common names.
        if arch == .qwen {
            fields.alias(["kv_channels": "head_dim", "layer_norm_epsilon": "rms_norm_eps", "rotary_emb_base": "rope_theta"])
        }
        let act = fields.optionalString("hidden_activation") ?? fields.optionalString("hidden_act") ?? "silu"
        let activation: Activation
        switch act {
        case "silu", "swish": activation = .silu
        case "gelu_pytorch_tanh", "gelu_tanh": activation = .geluTanh
        default: throw TransformerError.unsupported(path: path, reason: "hidden_act '\(act)' is not supported (silu, gelu_pytorch_tanh)")
        }
        let hidden = try fields.int("hidden_size"), heads = try fields.int("num_attention_heads")
        let layers = try fields.int("num_hidden_layers")
        let kvHeads = fields.optionalInt("num_key_value_heads") ?? heads
        guard hidden > 0, heads > 0, kvHeads > 0, layers > 0, heads % kvHeads == 0 else {
            throw TransformerError.config(path: path, reason: "invalid sizes: hidden_size \(hidden), num_attention_heads \(heads), num_key_value_heads \(kvHeads), num_hidden_layers \(layers)")
        }
        var intermediate = try fields.int("intermediate_size")
        // Qwen v1's w1 and w2 are each intermediate_size / 2 wide.
        if arch == .qwen { intermediate /= 2 }
        let vocab = try fields.int("vocab_size")
        // Before anything is sized by them (checkSizes checks the whole config at the end).
        try Self.checkRanges([("hidden_size", hidden), ("num_attention_heads", heads), ("num_hidden_layers", layers),
                              ("intermediate_size", intermediate), ("vocab_size", vocab)], path: path)
        let headDim = fields.optionalInt("head_dim") ?? hidden / heads
        guard headDim > 0, headDim % 2 == 0, headDim <= 1024 else {
            throw TransformerError.config(path: path, reason: "head_dim \(headDim) must be a positive even number")
        }
        let rotaryFraction = fields.optionalDouble("partial_rotary_factor") ?? fields.optionalDouble("rotary_pct")
            ?? (fields.object("rope_parameters")?["partial_rotary_factor"] as? NSNumber)?.doubleValue ?? 1
        let rotaryDim = Int(Double(headDim) * rotaryFraction)
        guard rotaryDim >= 2, rotaryDim <= headDim, rotaryDim % 2 == 0 else {
            throw TransformerError.config(path: path, reason: "partial rotary factor \(rotaryFraction) gives \(rotaryDim) rotated dimensions of \(headDim); it must be an even number from 2")
        }
        var maxPositions = max(1, fields.optionalInt("max_position_embeddings") ?? fields.optionalInt("model_max_length")
                                   ?? fields.optionalInt("seq_length") ?? 32768)
        // Qwen v1's dynamic NTK: at inference, a pass over more than seq_length positions raises the rotary base; its
        // remote code runs up to 32,767 positions (the length of its log-n table).
        var dynamicNTK: Int?
        if arch == .qwen, fields.optionalBool("use_dynamic_ntk") == true, let n = fields.optionalInt("seq_length"), n > 0 {
            dynamicNTK = n
            maxPositions = 32767
        }
        // transformers 5 writes Gemma 3's rotary settings per layer type; older configs give rope_local_base_freq.
        var ropeFields = fields, localRope: RoPEConfig?
        if let perType = fields.object("rope_parameters"), let full = perType["full_attention"] as? [String: Any] {
            ropeFields.replace("rope_parameters", with: full)
            if let local = perType["sliding_attention"] as? [String: Any] {
                var localFields = fields
                localFields.replace("rope_parameters", with: local)
                localFields.replace("rope_theta", with: nil)
                localFields.replace("rope_scaling", with: nil)
                localRope = try RoPEConfig(fields: localFields, rotaryDim: rotaryDim, maxPositions: maxPositions)
            }
        } else if let base = fields.optionalDouble("rope_local_base_freq") {
            localRope = RoPEConfig(theta: base)
        }
        let rope = try RoPEConfig(fields: ropeFields, rotaryDim: rotaryDim, maxPositions: maxPositions)
        var window: Int? = nil
        var slidingLayers: [Bool] = []
        if let w = fields.optionalInt("sliding_window"), w > 0 {
            switch arch {
            case .mistral, .phi3:
                window = w
            case .gemma2, .gemma3:
                window = w
                // Without layer_types: Gemma 2 alternates (sliding first); Gemma 3 has one global layer in six.
                let pattern = max(1, arch == .gemma2 ? 2 : (fields.optionalInt("sliding_window_pattern") ?? fields.optionalInt("_sliding_window_pattern") ?? 6))
                slidingLayers = (0..<layers).map { ($0 + 1) % pattern != 0 }
            case .qwen2, .qwen3, .qwen2MoE, .qwen3MoE:
                if fields.optionalBool("use_sliding_window") == true {
                    window = w
                    let from = fields.optionalInt("max_window_layers") ?? 28
                    slidingLayers = (0..<layers).map { $0 >= from }
                }
            case .llama, .qwen, .internlm2, .internlm3, .baichuan, .glm, .glm4, .olmoe:
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
        let qkvBias: Bool, outputBias: Bool, mlpBias: Bool
        switch arch {
        case .qwen2, .qwen2MoE: (qkvBias, outputBias, mlpBias) = (true, false, false)
        case .qwen:
            // c_attn always has a bias; c_proj, w1 and w2 have one unless no_bias (true in every release).
            let others = !(fields.optionalBool("no_bias") ?? true)
            (qkvBias, outputBias, mlpBias) = (true, others, others)
        case .internlm2, .internlm3:
            let bias = fields.optionalBool("bias") ?? false
            (qkvBias, outputBias, mlpBias) = (fields.optionalBool("qkv_bias") ?? bias, bias, arch == .internlm2 ? false : bias)
        case .baichuan: (qkvBias, outputBias, mlpBias) = (false, false, false)
        case .glm, .glm4:
            (qkvBias, outputBias, mlpBias) = (attentionBias ?? true, false, false)
        case .llama, .mistral, .qwen3, .phi3, .gemma2, .gemma3, .qwen3MoE, .olmoe:
            (qkvBias, outputBias, mlpBias) = (attentionBias ?? false, attentionBias ?? false, fields.optionalBool("mlp_bias") ?? false)
        }
        self.init(
            architecture: arch, hiddenSize: hidden, intermediateSize: intermediate,
            layerCount: layers, headCount: heads, kvHeadCount: kvHeads, headDim: headDim,
            vocabSize: vocab, maxPositionEmbeddings: maxPositions,
            rmsNormEps: Float(fields.optionalDouble("rms_norm_eps") ?? 1e-6), rope: rope, rotaryDim: rotaryDim,
            tieWordEmbeddings: fields.optionalBool("tie_word_embeddings") ?? (arch == .gemma2 || arch == .gemma3),
            qkvBias: qkvBias, outputBias: outputBias, mlpBias: mlpBias,
            qkNorm: arch == .qwen3 || arch == .gemma3 || arch == .qwen3MoE || arch == .olmoe,
            slidingWindow: window,
            bosTokenID: fields.optionalInt("bos_token_id"), eosTokenIDs: eos,
            storedDType: fields.optionalString("torch_dtype") ?? fields.optionalString("dtype"))
        self.slidingLayers = slidingLayers
        self.activation = activation
        if chatGLM { (layout, qkvFusion) = (.chatglm, .concatenated) }
        if arch == .qwen2MoE || arch == .qwen3MoE || arch == .olmoe { moe = try Self.mixture(fields, layers: layers) }
        if arch == .olmoe {
            qkNormAcrossHeads = true
            // OLMoE's clip_qkv clamps q, k and v; every release leaves it null.
            if let clip = fields.optionalDouble("clip_qkv") {
                throw TransformerError.unsupported(path: path, reason: "clip_qkv \(clip) (clamping q, k and v) is not supported; OLMoE's releases have none")
            }
        }
        self.localRope = localRope
        if let scalar = fields.optionalDouble("query_pre_attn_scalar"), scalar > 0 {
            attentionScale = Float(1 / scalar.squareRoot())
        }
        func cap(_ key: String) -> Float? { fields.optionalDouble(key).flatMap { $0 > 0 ? Float($0) : nil } }
        attentionSoftcap = cap("attn_logit_softcapping")
        finalSoftcap = cap("final_logit_softcapping")
        alibiSlopes = Self.alibi(architecture: arch, layers: layers, heads: heads)
        dynamicNTKLength = dynamicNTK
        if arch == .qwen, fields.optionalBool("use_logn_attn") == true, let n = fields.optionalInt("seq_length"), n > 1 {
            lognScalingLength = n
        }
        try checkSizes(path: path)
    }

    /// ALiBi's slopes where the architecture uses them: Baichuan's 13B models (40 layers) replace rotary positions
    /// with ALiBi, as their remote code and llama.cpp's baichuan do; nil elsewhere.
    public static func alibi(architecture: Architecture, layers: Int, heads: Int) -> [Float]? {
        architecture == .baichuan && layers == 40 ? alibiSlopes(heads: heads) : nil
    }

    /// ALiBi's per-head slopes: for a power of two n, 2^(-8(h+1)/n); otherwise those of the largest power of two
    /// p below n, then every other slope of 2p for the remaining n - p heads.
    public static func alibiSlopes(heads n: Int) -> [Float] {
        func powerOfTwo(_ p: Int) -> [Double] { (1...p).map { pow(2, -8 * Double($0) / Double(p)) } }
        let p = 1 << (Int.bitWidth - 1 - n.leadingZeroBitCount)
        if p == n { return powerOfTwo(n).map(Float.init) }
        let extra = stride(from: 0, to: 2 * p, by: 2).map { powerOfTwo(2 * p)[$0] }.prefix(n - p)
        return (powerOfTwo(p) + extra).map(Float.init)
    }

    /// ChatGLM's config under the common names: num_layers, ffn_hidden_size, kv_channels, layernorm_epsilon,
    /// padded_vocab_size, seq_length; key/value heads from multi_query_group_num; the rotary base 10000 * rope_ratio over
    /// half of each head, in pairs. Variants its remote code offers but no release uses are refused.
    static func readChatGLMFields(_ fields: inout ConfigFields) throws {
        for (key, unsupported, what) in [("rmsnorm", false, "LayerNorm instead of RMSNorm"),
                                         ("apply_residual_connection_post_layernorm", true, "residuals taken after the norm"),
                                         ("post_layer_norm", false, "no final norm"), ("original_rope", false, "its second rotary form"),
                                         ("add_bias_linear", true, "biases on the output and MLP projections")]
            where fields.optionalBool(key) == unsupported {
            throw TransformerError.unsupported(path: fields.path, reason: "ChatGLM with \(key) = \(unsupported) (\(what)) is not supported")
        }
        if let n = fields.optionalInt("pre_seq_len"), n > 0 {
            throw TransformerError.unsupported(path: fields.path, reason: "pre_seq_len \(n): a checkpoint with a P-tuning v2 prefix built in is not supported; train a prefix adapter instead (--method prefix)")
        }
        fields.alias(["num_layers": "num_hidden_layers", "ffn_hidden_size": "intermediate_size", "kv_channels": "head_dim",
                      "layernorm_epsilon": "rms_norm_eps", "padded_vocab_size": "vocab_size", "seq_length": "max_position_embeddings",
                      "add_qkv_bias": "attention_bias"])
        if fields.optionalBool("multi_query_attention") == true, let groups = fields.optionalInt("multi_query_group_num") {
            fields.replace("num_key_value_heads", with: groups)
        }
        fields.replace("rope_theta", with: 10000 * (fields.optionalDouble("rope_ratio") ?? 1))
        if fields.optionalDouble("partial_rotary_factor") == nil { fields.replace("partial_rotary_factor", with: 0.5) }
        if fields.optionalBool("attention_bias") == nil { fields.replace("attention_bias", with: false) }
    }

    /// Sizes beyond any released model are a broken (or hostile) file, not a reason to allocate them; within these
    /// bounds every size product (parameter counts, buffers) fits in an Int. Checked for every config read, from
    /// config.json or from GGUF metadata.
    public func checkSizes(path: String) throws {
        try Self.checkRanges([("hidden_size", hiddenSize), ("num_attention_heads", headCount), ("num_key_value_heads", kvHeadCount),
                              ("num_hidden_layers", layerCount), ("intermediate_size", intermediateSize), ("vocab_size", vocabSize),
                              ("head_dim", headDim), ("max_position_embeddings", maxPositionEmbeddings)], path: path)
        guard headCount % kvHeadCount == 0, headDim % 2 == 0, rotaryDim >= 2, rotaryDim <= headDim, rotaryDim % 2 == 0 else {
            throw TransformerError.config(path: path, reason: "\(headCount) heads of \(headDim) over \(kvHeadCount) key/value heads, \(rotaryDim) rotated dimensions, do not fit together")
        }
        if let moe {
            guard moe.experts > 0, moe.experts <= 1 << 12, moe.topK > 0, moe.topK <= moe.experts, moe.intermediateSize > 0,
                  moe.intermediateSize <= 1 << 18, (moe.sharedIntermediateSize ?? 1) > 0, (moe.sharedIntermediateSize ?? 1) <= 1 << 18,
                  moe.sparseLayers.count == layerCount else {
                throw TransformerError.config(path: path, reason: "invalid mixture: num_experts \(moe.experts), num_experts_per_tok \(moe.topK), moe_intermediate_size \(moe.intermediateSize), shared_expert_intermediate_size \(moe.sharedIntermediateSize.map(String.init) ?? "none")")
            }
        }
        if let w = slidingWindow, w < 1 { throw TransformerError.config(path: path, reason: "sliding window \(w) must be positive") }
    }

    /// The largest value each size may take.
    static let sizeLimits: [String: Int] = [
        "hidden_size": 1 << 16, "num_attention_heads": 1 << 10, "num_key_value_heads": 1 << 10, "num_hidden_layers": 1 << 10,
        "intermediate_size": 1 << 18, "vocab_size": 1 << 22, "head_dim": 1024, "max_position_embeddings": 1 << 27,
    ]

    /// Each (name, value) within 1...sizeLimits[name], else an error naming it.
    static func checkRanges(_ sizes: [(String, Int)], path: String) throws {
        for (name, value) in sizes {
            let limit = sizeLimits[name] ?? Int.max
            guard value >= 1, value <= limit else {
                throw TransformerError.config(path: path, reason: "\(name) \(value) is outside 1...\(limit)")
            }
        }
    }

    /// Qwen2-MoE / Qwen3-MoE's mixture settings; a layer is sparse when (l + 1) % decoder_sparse_step == 0 and it is
    /// not in mlp_only_layers.
    static func mixture(_ fields: ConfigFields, layers: Int) throws -> MoE {
        // Released configs say num_experts; transformers 5 writes Qwen3-MoE's as num_local_experts.
        let experts = try fields.optionalInt("num_local_experts") ?? fields.int("num_experts")
        let topK = try fields.int("num_experts_per_tok")
        // OLMoE's experts are intermediate_size wide (it has no dense MLP).
        let width = try fields.optionalInt("moe_intermediate_size") ?? fields.int("intermediate_size")
        // Their ranges are checked with the rest of the config (checkSizes).
        let shared = fields.optionalInt("shared_expert_intermediate_size").flatMap { $0 > 0 ? $0 : nil }
        let step = max(1, fields.optionalInt("decoder_sparse_step") ?? 1)
        let dense = Set((fields.obj["mlp_only_layers"] as? [NSNumber] ?? []).map(\.intValue))
        var moe = MoE(experts: experts, topK: topK, intermediateSize: width, sharedIntermediateSize: shared,
                      normalizeTopK: fields.optionalBool("norm_topk_prob") ?? false,
                      sparseLayers: (0..<layers).map { ($0 + 1) % step == 0 && !dense.contains($0) })
        if let coefficient = fields.optionalDouble("router_aux_loss_coef") {
            guard coefficient >= 0, coefficient.isFinite else {
                throw TransformerError.config(path: fields.path, reason: "router_aux_loss_coef \(coefficient) must be a non-negative number")
            }
            moe.routerAuxLossCoefficient = coefficient
        }
        return moe
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
    private(set) var obj: [String: Any]
    let path: String

    init(_ obj: [String: Any], path: String) { self.obj = obj; self.path = path }

    /// Sets (or, with nil, removes) one field.
    mutating func replace(_ key: String, with value: Any?) { obj[key] = value }

    /// Makes each key's value readable under its common name too (a family's own spelling of a shared field).
    mutating func alias(_ names: [String: String]) {
        for (own, common) in names where obj[common] == nil { obj[common] = obj[own] }
    }

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

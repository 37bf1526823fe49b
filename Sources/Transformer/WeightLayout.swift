/// How a family's checkpoints name the tensors of a decoder-only model: the one place those names are spelled.
/// The engine works with roles (`BaseTensor`, `ProjectionSite`); a layout turns a role into the name in
/// `model.safetensors`, in PEFT adapter keys and in merged checkpoints.
///
/// ```swift
/// config.layout.moduleName(ProjectionSite(layer: 0, projection: .qkv))   // "transformer.h.0.attn.c_attn" (Qwen v1)
/// config.layout.name(.inputNorm(3))                                      // "model.layers.3.input_layernorm.weight"
/// ```
public struct WeightLayout: Sendable, Equatable {
    public var embedding: String
    public var finalNorm: String
    public var lmHead: String
    /// Layer l's tensors live under "\(layers).\(l)".
    public var layers: String
    public var inputNorm: String
    public var postAttentionNorm: String
    public var qNorm: String
    public var kNorm: String
    /// Norms of the attention and MLP outputs (families with `sandwichNorms`).
    public var attentionOutputNorm = "post_attention_output_norm"
    public var mlpOutputNorm = "post_mlp_norm"
    /// The module path of each projection inside a layer ("self_attn.q_proj").
    public var modules: [Projection: String]

    /// Llama, Mistral, Qwen1.5/2/2.5/3, Phi-3 (`qkv_proj`, `gate_up_proj`), InternLM3.
    public static let llama = WeightLayout(
        embedding: "model.embed_tokens.weight", finalNorm: "model.norm.weight", lmHead: "lm_head.weight",
        layers: "model.layers", inputNorm: "input_layernorm", postAttentionNorm: "post_attention_layernorm",
        qNorm: "self_attn.q_norm", kNorm: "self_attn.k_norm",
        modules: Dictionary(uniqueKeysWithValues: Projection.allCases.map { ($0, "\($0.module).\($0.rawValue)") }))

    /// Qwen v1 (`QWenLMHeadModel`): `c_attn` is q, k and v; `w2` is the gated half of the MLP, `w1` the other.
    public static let qwen = WeightLayout(
        embedding: "transformer.wte.weight", finalNorm: "transformer.ln_f.weight", lmHead: "lm_head.weight",
        layers: "transformer.h", inputNorm: "ln_1", postAttentionNorm: "ln_2", qNorm: "attn.q_norm", kNorm: "attn.k_norm",
        modules: [.qkv: "attn.c_attn", .o: "attn.c_proj", .gate: "mlp.w2", .up: "mlp.w1", .down: "mlp.c_proj"])

    /// InternLM2 / 2.5 (`InternLM2ForCausalLM`): `wqkv` interleaves query groups with their key and value head.
    public static let internlm2 = WeightLayout(
        embedding: "model.tok_embeddings.weight", finalNorm: "model.norm.weight", lmHead: "output.weight",
        layers: "model.layers", inputNorm: "attention_norm", postAttentionNorm: "ffn_norm",
        qNorm: "attention.q_norm", kNorm: "attention.k_norm",
        modules: [.qkv: "attention.wqkv", .o: "attention.wo", .gate: "feed_forward.w1", .up: "feed_forward.w3",
                  .down: "feed_forward.w2"])

    /// Baichuan2 (`BaichuanForCausalLM`): Llama names with q, k and v packed into `W_pack`.
    public static let baichuan: WeightLayout = {
        var l = WeightLayout.llama
        l.modules[.qkv] = "self_attn.W_pack"
        return l
    }()

    /// Gemma 2/3: the norm after attention is `post_attention_layernorm`; the MLP's input norm is
    /// `pre_feedforward_layernorm`.
    public static let gemma: WeightLayout = {
        var l = WeightLayout.llama
        l.postAttentionNorm = "pre_feedforward_layernorm"
        l.attentionOutputNorm = "post_attention_layernorm"
        l.mlpOutputNorm = "post_feedforward_layernorm"
        return l
    }()

    /// GLM-4-0414 (`Glm4ForCausalLM`): Llama names plus norms after attention and after the MLP.
    public static let glm4: WeightLayout = {
        var l = WeightLayout.llama
        l.attentionOutputNorm = "post_self_attn_layernorm"
        l.mlpOutputNorm = "post_mlp_layernorm"
        return l
    }()

    /// ChatGLM2/3 and GLM-4's remote code (`ChatGLMModel`, model_type `chatglm`): [q | k | v] in `query_key_value`,
    /// [gate | up] in `dense_h_to_4h`.
    public static let chatglm = WeightLayout(
        embedding: "transformer.embedding.word_embeddings.weight", finalNorm: "transformer.encoder.final_layernorm.weight",
        lmHead: "transformer.output_layer.weight", layers: "transformer.encoder.layers", inputNorm: "input_layernorm",
        postAttentionNorm: "post_attention_layernorm", qNorm: "self_attention.q_norm", kNorm: "self_attention.k_norm",
        modules: [.qkv: "self_attention.query_key_value", .o: "self_attention.dense", .gateUp: "mlp.dense_h_to_4h",
                  .down: "mlp.dense_4h_to_h"])

    public func layerPrefix(_ l: Int) -> String { "\(layers).\(l)" }

    /// Mixture-of-experts tensors (Qwen2-MoE / Qwen3-MoE names): the router, expert e's projection `p`
    /// (gate, up or down), the shared expert's and its gate.
    public func router(layer l: Int) -> String { "\(layerPrefix(l)).mlp.gate.weight" }
    public func expert(layer l: Int, _ e: Int, _ p: Projection) -> String { "\(layerPrefix(l)).mlp.experts.\(e).\(p.rawValue).weight" }
    public func sharedExpert(layer l: Int, _ p: Projection) -> String { "\(layerPrefix(l)).mlp.shared_expert.\(p.rawValue).weight" }
    public func sharedExpertGate(layer l: Int) -> String { "\(layerPrefix(l)).mlp.shared_expert_gate.weight" }

    /// The module path of `p` inside a layer as a PEFT target name (`self_attn.q_proj`, `attn.c_attn`).
    public func module(_ p: Projection) -> String { modules[p] ?? "\(p.module).\(p.rawValue)" }

    /// The module of a projection: `model.layers.3.self_attn.q_proj` (append `.weight` / `.bias`).
    public func moduleName(_ site: ProjectionSite) -> String {
        "\(layerPrefix(site.layer)).\(module(site.projection))"
    }

    /// The checkpoint name of a base tensor.
    public func name(_ tensor: BaseTensor) -> String {
        switch tensor {
        case .embedding: embedding
        case .finalNorm: finalNorm
        case .lmHead: lmHead
        case .inputNorm(let l): "\(layerPrefix(l)).\(inputNorm).weight"
        case .postAttentionNorm(let l): "\(layerPrefix(l)).\(postAttentionNorm).weight"
        case .qNorm(let l): "\(layerPrefix(l)).\(qNorm).weight"
        case .kNorm(let l): "\(layerPrefix(l)).\(kNorm).weight"
        case .attentionOutputNorm(let l): "\(layerPrefix(l)).\(attentionOutputNorm).weight"
        case .mlpOutputNorm(let l): "\(layerPrefix(l)).\(mlpOutputNorm).weight"
        case .weight(let s): moduleName(s) + ".weight"
        case .bias(let s): moduleName(s) + ".bias"
        }
    }

    /// The words a module selection may use for a tensor inside its layer: LLaMA-Factory's `self_attn` / `mlp` /
    /// norm names and our projection names, plus every dotted part of the family's own name (`attn`, `c_attn`).
    public func selectors(_ tensor: BaseTensor) -> Set<String> {
        guard let l = tensor.layer else { return [] }
        var words = Set(name(tensor).dropFirst(layerPrefix(l).count + 1).split(separator: ".").map(String.init))
        words.remove("weight")
        words.remove("bias")
        switch tensor {
        case .qNorm: words.formUnion(["self_attn", "q_norm"])
        case .kNorm: words.formUnion(["self_attn", "k_norm"])
        case .weight(let s), .bias(let s): words.formUnion([s.projection.module, s.projection.rawValue])
        default: break
        }
        return words
    }
}

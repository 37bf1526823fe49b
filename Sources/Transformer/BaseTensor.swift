/// A tensor of the base model, by role. Full and partial (freeze) fine-tuning make some of them trainable: the
/// backward then accumulates their gradients (weight-gradient products, norm and embedding gradients) into the
/// buffer the adapter hands out for them, and nowhere else.
public enum BaseTensor: Hashable, Sendable, CustomStringConvertible {
    case embedding
    case finalNorm
    case lmHead
    case inputNorm(Int)
    case postAttentionNorm(Int)
    case qNorm(Int)
    case kNorm(Int)
    /// The norm of the attention output before the residual (Gemma's post_attention_layernorm, GLM-4's
    /// post_self_attn_layernorm).
    case attentionOutputNorm(Int)
    /// The norm of the MLP output before the residual.
    case mlpOutputNorm(Int)
    case weight(ProjectionSite)
    case bias(ProjectionSite)

    public var description: String {
        switch self {
        case .embedding: "embedding"
        case .finalNorm: "final norm"
        case .lmHead: "LM head"
        case .inputNorm(let l): "layer \(l) input norm"
        case .postAttentionNorm(let l): "layer \(l) post-attention norm"
        case .qNorm(let l): "layer \(l) q norm"
        case .kNorm(let l): "layer \(l) k norm"
        case .attentionOutputNorm(let l): "layer \(l) attention output norm"
        case .mlpOutputNorm(let l): "layer \(l) MLP output norm"
        case .weight(let s): "\(s) weight"
        case .bias(let s): "\(s) bias"
        }
    }

    /// An RMSNorm weight (the vectors `ModelConfig.normOffset` applies to).
    public var isNorm: Bool {
        switch self {
        case .finalNorm, .inputNorm, .postAttentionNorm, .qNorm, .kNorm, .attentionOutputNorm, .mlpOutputNorm: true
        case .embedding, .lmHead, .weight, .bias: false
        }
    }

    /// The decoder layer the tensor belongs to (nil for embeddings, the final norm and the LM head).
    public var layer: Int? {
        switch self {
        case .embedding, .finalNorm, .lmHead: nil
        case .inputNorm(let l), .postAttentionNorm(let l), .qNorm(let l), .kNorm(let l), .attentionOutputNorm(let l),
             .mlpOutputNorm(let l): l
        case .weight(let s), .bias(let s): s.layer
        }
    }

    /// Every tensor of a model with config `c`, in checkpoint order (the LM head only when untied).
    public static func all(_ c: ModelConfig) -> [BaseTensor] {
        var list: [BaseTensor] = [.embedding]
        for l in 0..<c.layerCount {
            list.append(.inputNorm(l))
            for p in c.projections(layer: l) {
                let site = ProjectionSite(layer: l, projection: p)
                list.append(.weight(site))
                if c.hasBias(p) { list.append(.bias(site)) }
                if p == .k || p == .qkv, c.qkNorm { list += [.qNorm(l), .kNorm(l)] }
            }
            if c.sandwichNorms { list.append(.attentionOutputNorm(l)) }
            list.append(.postAttentionNorm(l))
            if c.sandwichNorms { list.append(.mlpOutputNorm(l)) }
        }
        list.append(.finalNorm)
        if !c.tieWordEmbeddings { list.append(.lmHead) }
        return list
    }
}

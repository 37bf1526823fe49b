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
    case weight(ProjectionSite)
    case bias(ProjectionSite)

    /// The Hugging Face tensor name.
    public var name: String {
        switch self {
        case .embedding: WeightNames.embedding
        case .finalNorm: WeightNames.finalNorm
        case .lmHead: WeightNames.lmHead
        case .inputNorm(let l): WeightNames.inputNorm(l)
        case .postAttentionNorm(let l): WeightNames.postAttentionNorm(l)
        case .qNorm(let l): WeightNames.qNorm(l)
        case .kNorm(let l): WeightNames.kNorm(l)
        case .weight(let s): WeightNames.projection(layer: s.layer, s.projection) + ".weight"
        case .bias(let s): WeightNames.projection(layer: s.layer, s.projection) + ".bias"
        }
    }

    public var description: String { name }

    /// The decoder layer the tensor belongs to (nil for embeddings, the final norm and the LM head).
    public var layer: Int? {
        switch self {
        case .embedding, .finalNorm, .lmHead: nil
        case .inputNorm(let l), .postAttentionNorm(let l), .qNorm(let l), .kNorm(let l): l
        case .weight(let s), .bias(let s): s.layer
        }
    }

    /// Every tensor of a model with config `c`, in checkpoint order (the LM head only when untied).
    public static func all(_ c: ModelConfig) -> [BaseTensor] {
        var list: [BaseTensor] = [.embedding]
        for l in 0..<c.layerCount {
            list.append(.inputNorm(l))
            for p in Projection.allCases {
                let site = ProjectionSite(layer: l, projection: p)
                list.append(.weight(site))
                if c.hasBias(p) { list.append(.bias(site)) }
                if p == .k, c.qkNorm { list += [.qNorm(l), .kNorm(l)] }
            }
            list.append(.postAttentionNorm(l))
        }
        list.append(.finalNorm)
        if !c.tieWordEmbeddings { list.append(.lmHead) }
        return list
    }
}

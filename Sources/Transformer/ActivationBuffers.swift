import Kernels

/// What a layer's forward keeps for its backward. Rows are tokens of the packed batch; sized for `capacity` rows.
final class LayerSaved {
    let q: FloatBuffer       // [cap, H*D] after q-norm and RoPE
    let k: FloatBuffer       // [cap, Hkv*D] after k-norm and RoPE
    let v: FloatBuffer       // [cap, Hkv*D]
    let qRaw: FloatBuffer?   // [cap, H*D] before q-norm (Qwen3)
    let kRaw: FloatBuffer?   // [cap, Hkv*D] before k-norm (Qwen3)
    let qRstd: FloatBuffer?  // [cap*H]
    let kRstd: FloatBuffer?  // [cap*Hkv]
    let att: FloatBuffer     // [cap, H*D] attention output (o_proj input)
    let lse: FloatBuffer     // [cap, H] softmax logsumexp per row and head
    let x2: FloatBuffer      // [cap, C] residual after attention
    let g: FloatBuffer       // [cap, I] gate_proj output
    let u: FloatBuffer       // [cap, I] up_proj output
    let rstd1: FloatBuffer   // [cap]
    let rstd2: FloatBuffer   // [cap]
    let attentionOut: FloatBuffer?  // [cap, C] o_proj output before its norm (sandwich norms)
    let mlpOut: FloatBuffer?        // [cap, C] down_proj output before its norm
    let rstd3: FloatBuffer?         // [cap]
    let rstd4: FloatBuffer?         // [cap]
    let routing: Routing?           // the experts each row chose (mixture-of-experts models)

    init(config c: ModelConfig, capacity n: Int) {
        q = FloatBuffer(count: n * c.qDim)
        k = FloatBuffer(count: n * c.kvDim)
        v = FloatBuffer(count: n * c.kvDim)
        qRaw = c.qkNorm ? FloatBuffer(count: n * c.qDim) : nil
        kRaw = c.qkNorm ? FloatBuffer(count: n * c.kvDim) : nil
        qRstd = c.qkNorm ? FloatBuffer(count: n * c.headCount) : nil
        kRstd = c.qkNorm ? FloatBuffer(count: n * c.kvHeadCount) : nil
        att = FloatBuffer(count: n * c.qDim)
        lse = FloatBuffer(count: n * c.headCount)
        x2 = FloatBuffer(count: n * c.hiddenSize)
        g = FloatBuffer(count: n * c.intermediateSize)
        u = FloatBuffer(count: n * c.intermediateSize)
        rstd1 = FloatBuffer(count: n)
        rstd2 = FloatBuffer(count: n)
        func sandwich(_ count: Int) -> FloatBuffer? { c.sandwichNorms ? FloatBuffer(count: count) : nil }
        attentionOut = sandwich(n * c.hiddenSize)
        mlpOut = sandwich(n * c.hiddenSize)
        rstd3 = sandwich(n)
        rstd4 = sandwich(n)
        routing = c.moe.map { Routing(topK: $0.topK, experts: $0.experts) }
    }

    static func floatsPerRow(_ c: ModelConfig) -> Int {
        var f = 2 * c.qDim + 2 * c.kvDim + c.headCount + c.hiddenSize + 2 * c.intermediateSize + 2
        if c.qkNorm { f += c.qDim + c.kvDim + c.headCount + c.kvHeadCount }
        if c.sandwichNorms { f += 2 * c.hiddenSize + 2 }
        // Training keeps the chosen experts' gate and up outputs (and the shared expert's).
        if let moe = c.moe { f += 2 * (moe.topK * moe.intermediateSize + (moe.sharedIntermediateSize ?? 0)) }
        return f
    }
}

/// How much a pass keeps between forward and backward.
public enum ActivationPolicy: Sendable {
    /// Forward only: one layer's buffers reused for every layer.
    case inference
    /// Keep every layer's activations (fastest backward).
    case keepAll
    /// Keep only each layer's input; recompute the layer during backward (gradient checkpointing).
    case checkpointing
}

/// Every buffer a pass needs, planned once for at most `capacity` rows and `longest` rows per sequence, so the
/// step loop allocates nothing.
public final class ActivationBuffers {
    public let capacity: Int
    public let longest: Int
    public let policy: ActivationPolicy
    /// Residual stream: hidden[l] is the input of layer l, hidden[L] the last layer's output
    /// (two ping-pong buffers in inference).
    let hidden: [FloatBuffer]
    let saved: [LayerSaved]
    // Scratch shared by all layers.
    let xn: FloatBuffer          // [cap, C] normed input of the current projection group
    let tmp: FloatBuffer         // [cap, C] o_proj / down_proj output
    let act: FloatBuffer         // [cap, I] silu(g) * u
    let attnScratch: FloatBuffer // [2, query block, T]
    let finalNormed: FloatBuffer // [cap, C]
    let finalRstd: FloatBuffer   // [cap]
    let lossScratch = LossScratch()
    /// Attention-prefix rows in front of every sequence's keys (prefix tuning), 0 otherwise.
    let prefixRows: Int
    let kSeq: FloatBuffer?       // [np + T, Hkv*D] one sequence's keys behind the prefix
    let vSeq: FloatBuffer?       // [np + T, Hkv*D]
    let dkSeq: FloatBuffer?      // [np + T, Hkv*D] (training)
    let dvSeq: FloatBuffer?      // [np + T, Hkv*D] (training)
    // Gradients (training only).
    let dHidden: FloatBuffer?    // [cap, C]
    let dxn: FloatBuffer?        // [cap, C]
    let dq: FloatBuffer?         // [cap, H*D]
    let dk: FloatBuffer?         // [cap, Hkv*D]
    let dv: FloatBuffer?         // [cap, Hkv*D]
    let datt: FloatBuffer?       // [cap, H*D]
    let dg: FloatBuffer?         // [cap, I]
    let du: FloatBuffer?         // [cap, I]
    let da: FloatBuffer?         // [cap, I]
    let dSublayer: FloatBuffer?  // [cap, C] d(original sublayer output) under a bottleneck adapter
    let fused: FloatBuffer?      // [cap, fusedWidth] a fused projection's output or its gradient (fused families)
    let dNormInput: FloatBuffer? // [cap, C] d(input of an output norm) (sandwich norms, training)
    let moeScratch = MoEScratch()
    /// Keys and values of a sequence behind the rows it shares (tree-packed batches), grown on first use.
    let sharedKeys = SharedKeyScratch()
    /// The load-balancing loss's statistics (mixture-of-experts models).
    public let routerStatistics: RouterStatistics?

    public init(config c: ModelConfig, capacity n: Int, longest t: Int, policy: ActivationPolicy, prefixRows np: Int = 0) {
        capacity = n
        prefixRows = np
        longest = t
        self.policy = policy
        let C = c.hiddenSize, I = c.intermediateSize
        switch policy {
        case .inference:
            hidden = [FloatBuffer(count: n * C), FloatBuffer(count: n * C)]
            saved = [LayerSaved(config: c, capacity: n)]
        case .keepAll:
            hidden = (0...c.layerCount).map { _ in FloatBuffer(count: n * C) }
            saved = (0..<c.layerCount).map { _ in LayerSaved(config: c, capacity: n) }
        case .checkpointing:
            hidden = (0...c.layerCount).map { _ in FloatBuffer(count: n * C) }
            saved = [LayerSaved(config: c, capacity: n)]
        }
        xn = FloatBuffer(count: n * C)
        tmp = FloatBuffer(count: n * C)
        act = FloatBuffer(count: n * I)
        attnScratch = FloatBuffer(count: Attention.scratchCount(longest: t, past: np))
        finalNormed = FloatBuffer(count: n * C)
        finalRstd = FloatBuffer(count: n)
        routerStatistics = c.moe.map { RouterStatistics(experts: $0.experts) }
        for s in saved { s.routing?.statistics = routerStatistics }
        let training = policy != .inference
        func grad(_ count: Int) -> FloatBuffer? { training ? FloatBuffer(count: count) : nil }
        dHidden = grad(n * C)
        dxn = grad(n * C)
        dq = grad(n * c.qDim)
        dk = grad(n * c.kvDim)
        dv = grad(n * c.kvDim)
        datt = grad(n * c.qDim)
        dg = grad(n * I)
        du = grad(n * I)
        da = grad(n * I)
        dSublayer = grad(n * C)
        fused = c.fusedWidth > 0 ? FloatBuffer(count: n * c.fusedWidth) : nil
        dNormInput = training && c.sandwichNorms ? FloatBuffer(count: n * C) : nil
        func prefixed(_ needed: Bool) -> FloatBuffer? { np > 0 && needed ? FloatBuffer(count: (np + t) * c.kvDim) : nil }
        kSeq = prefixed(true)
        vSeq = prefixed(true)
        dkSeq = prefixed(training)
        dvSeq = prefixed(training)
        // A training mixture's work buffers and saved expert outputs, at full capacity now rather than grown (and
        // faulted in) as longer batches arrive; inference grows them on demand.
        if training, c.moe != nil {
            moeScratch.reserve(rows: n, config: c)
            for s in saved { s.routing?.reserveSaved(rows: n, config: c) }
        }
    }

    /// Bytes these buffers hold (for `info` and memory planning).
    public static func byteEstimate(config c: ModelConfig, capacity n: Int, longest t: Int, policy: ActivationPolicy,
                                    prefixRows np: Int = 0) -> Int {
        let C = c.hiddenSize, I = c.intermediateSize
        let perLayer = LayerSaved.floatsPerRow(c) * n
        var floats = n * (4 * C + I + 1 + c.fusedWidth) + Attention.scratchCount(longest: t, past: np)
        if np > 0 { floats += (policy == .inference ? 2 : 4) * (np + t) * c.kvDim }
        // A tree-packed sequence's keys and values behind the rows it shares (allocated on first use).
        else { floats += (policy == .inference ? 2 : 4) * t * c.kvDim }
        switch policy {
        case .inference: floats += 2 * n * C + perLayer
        case .keepAll: floats += (c.layerCount + 1) * n * C + c.layerCount * perLayer
        case .checkpointing: floats += (c.layerCount + 1) * n * C + perLayer
        }
        if policy != .inference { floats += n * (3 * C + 2 * c.qDim + 2 * c.kvDim + 3 * I + (c.sandwichNorms ? C : 0)) }
        // A training mixture's work buffers.
        if policy != .inference, c.moe != nil { floats += MoEScratch.floatCount(rows: n, config: c) }
        return floats * 4
    }
}

/// One sequence's keys and values behind the prefix rows it shares with another (and their gradients), for
/// tree-packed batches (`PackedBatch.sharedPrefix`).
final class SharedKeyScratch {
    private(set) var k = FloatBuffer(count: 0), v = FloatBuffer(count: 0)
    private(set) var dk = FloatBuffer(count: 0), dv = FloatBuffer(count: 0)

    func reserve(_ count: Int, gradients: Bool) {
        if k.count < count { k = FloatBuffer(count: count); v = FloatBuffer(count: count) }
        if gradients, dk.count < count { dk = FloatBuffer(count: count); dv = FloatBuffer(count: count) }
    }
}

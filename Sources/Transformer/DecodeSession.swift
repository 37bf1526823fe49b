import Kernels

/// Incremental inference with a key/value cache: prefill a prompt, then feed one token at a time.
/// Keeps the token history so a chat can append turns without recomputing the shared prefix.
///
/// ```swift
/// let session = DecodeSession(model: model, capacity: 2048)
/// var logits = try session.append(promptIDs)     // [V] for the last prompt token
/// logits = try session.append([nextID])
/// ```
public final class DecodeSession {
    public let model: TransformerModel
    /// The fine-tuning method this session decodes with (the model's own by default). Sessions of one model with
    /// different adapters decode together in `DecodeBatch`.
    public let adapter: ModelAdapter?
    public let capacity: Int
    /// Tokens whose keys and values are cached.
    public fileprivate(set) var tokens: [Int32] = []
    /// Cache rows in front of the tokens: the adapter's virtual tokens or attention prefix (never shown as text).
    public private(set) var leading = 0
    /// Rows processed per chunk during prefill.
    public let chunkRows: Int
    /// The context length of the first append (the prefill), which sets dynamic NTK's alpha for the whole
    /// generation, as Qwen v1's remote code keeps the alpha of its first pass while it decodes from its cache.
    fileprivate var ntkLength = 0

    fileprivate var kCache: [FloatBuffer]   // per layer [allocated, Hkv*D]; grows up to `capacity`
    fileprivate var vCache: [FloatBuffer]
    /// Per layer: the slots of its ring buffer when it attends within a window (its cache then never grows past
    /// window + chunk rows, however long the chat), nil for a growing cache.
    private let rings: [Int?]
    /// Contiguous copies of a ring's visible span for a prefill chunk [max ring, Hkv*D].
    private let gatherK: FloatBuffer, gatherV: FloatBuffer
    private var allocated: Int
    fileprivate var scratch: FloatBuffer     // attention scores [max(chunk, heads), allocated]
    private let work: StepBuffers
    private let logitsBuffer: FloatBuffer

    /// - Parameter initialAllocation: positions allocated up front; the cache doubles when it fills.
    /// - Parameter adapter: the method to decode with; `.some(nil)` decodes with the bare model.
    public init(model: TransformerModel, capacity: Int, chunkRows: Int = 256, initialAllocation: Int = 1024,
                adapter: ModelAdapter?? = .none) {
        let c = model.config
        self.model = model
        self.adapter = adapter ?? model.adapter
        self.capacity = capacity
        self.chunkRows = chunkRows
        // The cache starts small and doubles on demand: a large --max-new-tokens costs nothing until used.
        let first = max(1, min(capacity, initialAllocation))
        allocated = first
        // An attention prefix must stay visible to every query, so its layers keep the whole cache.
        let prefixed = (self.adapter?.prefixLength ?? 0) > 0
        let rings = (0..<c.layerCount).map { l -> Int? in
            guard !prefixed, let w = c.attentionWindow(layer: l), w + chunkRows < capacity else { return nil }
            return w + chunkRows
        }
        self.rings = rings
        kCache = rings.map { FloatBuffer(count: ($0 ?? first) * c.kvDim) }
        vCache = rings.map { FloatBuffer(count: ($0 ?? first) * c.kvDim) }
        let widestRing = rings.compactMap { $0 }.max() ?? 0
        gatherK = FloatBuffer(count: widestRing * c.kvDim)
        gatherV = FloatBuffer(count: widestRing * c.kvDim)
        work = StepBuffers(c, rows: chunkRows)
        scratch = FloatBuffer(count: max(chunkRows, c.headCount) * max(first, widestRing))
        logitsBuffer = FloatBuffer(count: c.vocabSize)
        model.reserveRotary(capacity)
    }

    /// Bytes the key/value cache holds now.
    public var cacheBytes: Int { (kCache.reduce(0) { $0 + $1.count } + vCache.reduce(0) { $0 + $1.count }) * 4 }

    /// Forgets the cache beyond the first `count` tokens. A ring-buffer layer that has already overwritten keys the
    /// kept tokens' successors would see is refilled by running the kept tokens again.
    public func truncate(to count: Int) {
        guard count < tokens.count else { return }
        let end = leading + tokens.count
        let overwritten = rings.enumerated().contains { l, ring in
            guard let r = ring, let w = model.config.attentionWindow(layer: l) else { return false }
            return max(0, leading + count + 1 - w) < max(0, end - r)
        }
        tokens.removeLast(tokens.count - count)
        if overwritten, !tokens.isEmpty { replay(furthest: leading + tokens.count - 1) }
    }

    /// Keys and values of `m` rows at positions p..<p+m into layer l's cache.
    fileprivate func store(_ l: Int, k: UnsafePointer<Float>, v: UnsafePointer<Float>, at p: Int, rows m: Int) {
        let d = model.config.kvDim
        guard let r = rings[l] else {
            (kCache[l].pointer + p * d).update(from: k, count: m * d)
            (vCache[l].pointer + p * d).update(from: v, count: m * d)
            return
        }
        for i in 0..<m {
            (kCache[l].pointer + ((p + i) % r) * d).update(from: k + i * d, count: d)
            (vCache[l].pointer + ((p + i) % r) * d).update(from: v + i * d, count: d)
        }
    }

    /// Attention of m query rows at positions past..<past+m over layer l's cache (stored first).
    fileprivate func attendCached(_ l: Int, q: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, past: Int, rows m: Int) {
        let attention = model.attention[l]
        guard let r = rings[l] else {
            attention.forwardCached(q: q, kCache: kCache[l].pointer, vCache: vCache[l].pointer, out: out, past: past,
                                    rows: m, scratch: scratch.pointer)
            return
        }
        if m <= 8 {
            attention.forwardCachedRing(q: q, kRing: kCache[l].pointer, vRing: vCache[l].pointer, ringRows: r, out: out,
                                        past: past, rows: m, scratch: scratch.pointer)
            return
        }
        // Prefill: the span the chunk sees, made contiguous, then the ordinary product with positions shifted.
        let d = model.config.kvDim, lo = attention.visible(past).lowerBound
        for j in lo..<(past + m) {
            (gatherK.pointer + (j - lo) * d).update(from: kCache[l].pointer + (j % r) * d, count: d)
            (gatherV.pointer + (j - lo) * d).update(from: vCache[l].pointer + (j % r) * d, count: d)
        }
        attention.forwardCached(q: q, kCache: gatherK.pointer, vCache: gatherV.pointer, out: out, past: past - lo, rows: m,
                                scratch: scratch.pointer)
    }

    public func reset() { tokens.removeAll() }

    /// Runs `newTokens` through the model after the cached ones; returns the logits [V] of the last one.
    public func append(_ newTokens: [Int32]) throws -> [Float] {
        guard !newTokens.isEmpty else { throw TransformerError.input(reason: "nothing to append") }
        let lead = adapter?.leadingRows ?? 0
        guard lead + tokens.count + newTokens.count <= capacity else {
            throw TransformerError.input(reason: "context of \(tokens.count + newTokens.count) tokens\(lead > 0 ? " plus \(lead) virtual" : "") exceeds this session's capacity of \(capacity) (the model allows \(model.config.maxPositionEmbeddings))")
        }
        try model.validate(tokens: newTokens, maxPosition: tokens.count + newTokens.count, leadingRows: lead)
        if tokens.isEmpty {
            // Virtual rows and prefixes count (the context the first pass reaches); the remote code's first pass
            // behind a PEFT prefix would reuse a stale alpha list instead, which has no meaning to match.
            ntkLength = lead + newTokens.count
            fillLeadingRows(furthest: lead + newTokens.count - 1)
        }
        reserve(leading + tokens.count + newTokens.count)
        reencodeIfLongRoPESwitches(reaching: leading + tokens.count + newTokens.count - 1)
        var begin = 0
        while begin < newTokens.count {
            let part = Array(newTokens[begin..<min(newTokens.count, begin + chunkRows)])
            forwardChunk(part, past: leading + tokens.count, furthest: leading + tokens.count - begin + newTokens.count - 1)
            tokens.append(contentsOf: part)
            begin += part.count
        }
        return Array(UnsafeBufferPointer(start: logitsBuffer.pointer, count: model.config.vocabSize))
    }

    /// Puts the adapter's rows at the start of the cache: prefix keys/values copied in, virtual tokens run through
    /// the model (positions 0..<nv), exactly as PEFT's generation does with its past key values or prompt.
    /// `furthest`: the last position of the pass they start (LongRoPE).
    private func fillLeadingRows(furthest: Int) {
        let c = model.config
        leading = 0
        guard let a = adapter else { return }
        let np = a.prefixLength, nv = a.virtualTokenCount
        reserve(np + nv)
        if np > 0 {
            for l in 0..<c.layerCount {
                let p = a.prefix(layer: l)
                for j in 0..<np {
                    (kCache[l].pointer + j * c.kvDim).update(from: p.keys + j * p.stride, count: c.kvDim)
                    (vCache[l].pointer + j * c.kvDim).update(from: p.values + j * p.stride, count: c.kvDim)
                }
            }
            leading = np
        }
        var begin = 0
        while begin < nv {
            let end = min(nv, begin + chunkRows)
            forwardChunk((begin..<end).map { Int32(-1 - $0) }, past: leading, furthest: furthest)
            leading += end - begin
            begin = end
        }
    }

    /// LongRoPE: when the context first grows past the original training length, transformers drops its cache and
    /// encodes the whole context again with the long factors (Phi-3's `prepare_inputs_for_generation`); so do we.
    /// From then on every position, cached or new, is rotated by the long factors.
    fileprivate func reencodeIfLongRoPESwitches(reaching furthest: Int) {
        let from = model.rope.longFrom
        guard model.rope.longInvFreq != nil, !tokens.isEmpty, leading + tokens.count <= from, furthest + 1 > from else { return }
        replay(furthest: furthest)
    }

    /// Runs the leading rows and every cached token through the model again (one rotary pass reaching `furthest`).
    private func replay(furthest: Int) {
        let history = tokens
        tokens.removeAll()
        fillLeadingRows(furthest: furthest)
        var begin = 0
        while begin < history.count {
            let part = Array(history[begin..<min(history.count, begin + chunkRows)])
            forwardChunk(part, past: leading + tokens.count, furthest: furthest)
            tokens.append(contentsOf: part)
            begin += part.count
        }
    }

    /// Grows the cache (doubling, at most `capacity`) so it holds `count` positions, keeping what it has.
    fileprivate func reserve(_ count: Int) {
        guard count > allocated else { return }
        let c = model.config
        let size = min(capacity, max(count, allocated * 2))
        func grow(_ l: Int, _ old: FloatBuffer) -> FloatBuffer {
            guard rings[l] == nil else { return old }
            let new = FloatBuffer(count: size * c.kvDim)
            new.copy(from: old.pointer, count: (leading + tokens.count) * c.kvDim)
            return new
        }
        kCache = kCache.enumerated().map(grow)
        vCache = vCache.enumerated().map(grow)
        scratch = FloatBuffer(count: max(chunkRows, c.headCount) * max(size, rings.compactMap { $0 }.max() ?? 0))
        allocated = size
    }

    /// Runs `chunk` (ids; -1-j is virtual token j) at cache rows past..<past + m.
    /// `furthest`: the last position of the whole append this chunk is part of (one rotary pass).
    private func forwardChunk(_ chunk: [Int32], past: Int, furthest: Int? = nil) {
        let c = model.config, w = model.weights, b = work
        let m = chunk.count, C = c.hiddenSize
        model.embed(chunk, into: b.x.pointer, adapter: .some(adapter))
        Self.decoderLayers(model, rows: m, positions: (0..<m).map { Int32(past + $0) }, groups: [(0..<m, adapter)],
                           passes: [(0..<m, furthest ?? past + m - 1, ntkLength)], b) { l, k, v in
            store(l, k: k, v: v, at: past, rows: m)
            attendCached(l, q: b.q.pointer, out: b.att.pointer, past: past, rows: m)
        }
        // Only the last row's logits are needed.
        let lastRow = b.x.pointer + (m - 1) * C
        Ops.rmsNormForward(lastRow, weight: w.finalNorm.pointer, out: b.xn.pointer, rstd: nil, rows: 1, cols: C,
                           eps: c.rmsNormEps)
        model.headLogits(b.xn.pointer, rows: 1, into: logitsBuffer.pointer, exact: false)
    }

    /// Work buffers of a decoding pass over up to `rows` rows.
    final class StepBuffers {
        let x, xn, q, att, tmp, k, v, g, u, act, qRaw, kRaw, fused: FloatBuffer
        let routing: Routing?
        let moeScratch = MoEScratch()

        init(_ c: ModelConfig, rows m: Int) {
            x = FloatBuffer(count: m * c.hiddenSize)
            xn = FloatBuffer(count: m * c.hiddenSize)
            q = FloatBuffer(count: m * c.qDim)
            att = FloatBuffer(count: m * c.qDim)
            tmp = FloatBuffer(count: m * c.hiddenSize)
            k = FloatBuffer(count: m * c.kvDim)
            v = FloatBuffer(count: m * c.kvDim)
            g = FloatBuffer(count: m * c.intermediateSize)
            u = FloatBuffer(count: m * c.intermediateSize)
            act = FloatBuffer(count: m * c.intermediateSize)
            qRaw = FloatBuffer(count: c.qkNorm ? m * c.qDim : 0)
            kRaw = FloatBuffer(count: c.qkNorm ? m * c.kvDim : 0)
            fused = FloatBuffer(count: m * c.fusedWidth)
            routing = c.moe.map { Routing(topK: $0.topK, experts: $0.experts) }
        }
    }

    /// Rows of a decoding pass that share an adapter (contiguous).
    typealias AdapterGroup = (rows: Range<Int>, adapter: ModelAdapter?)

    /// Every decoder layer over the rows in `b.x` (embedded; the residual stream on return), rows at `positions`,
    /// each group of rows with its own adapter. `attend(layer, k, v)` receives the rows' rotated keys and values
    /// [rows, kv_dim], stores them in the caches they belong to and writes the attention output of `b.q` into
    /// `b.att`: one sequence's chunk, or one row of each of several sequences.
    static func decoderLayers(_ model: TransformerModel, rows m: Int, positions: [Int32], groups: [AdapterGroup],
                              passes: [RoPE.Pass], _ b: StepBuffers,
                              attend: (Int, UnsafePointer<Float>, UnsafePointer<Float>) -> Void) {
        let c = model.config, w = model.weights, C = c.hiddenSize
        for l in 0..<c.layerCount {
            let lw = w.layers[l]
            Ops.rmsNormForward(b.x.pointer, weight: lw.inputNorm.pointer, out: b.xn.pointer, rstd: nil, rows: m, cols: C,
                               eps: c.rmsNormEps)
            model.projectQKV(layer: l, x: b.xn.pointer, rows: m, q: c.qkNorm ? b.qRaw.pointer : b.q.pointer,
                             k: c.qkNorm ? b.kRaw.pointer : b.k.pointer, v: b.v.pointer, fused: b.fused.pointer) { p, out in
                project(model, p, layer: l, x: b.xn.pointer, rows: m, out: out, groups: groups)
            }
            if c.qkNorm, let qn = lw.qNorm, let kn = lw.kNorm {
                Ops.rmsNormForward(b.qRaw.pointer, weight: qn.pointer, out: b.q.pointer, rstd: nil, rows: m * c.qDim / c.qNormWidth,
                                   cols: c.qNormWidth, eps: c.rmsNormEps)
                Ops.rmsNormForward(b.kRaw.pointer, weight: kn.pointer, out: b.k.pointer, rstd: nil, rows: m * c.kvDim / c.kNormWidth,
                                   cols: c.kNormWidth, eps: c.rmsNormEps)
            }
            positions.withUnsafeBufferPointer { pos in
                if c.usesRotary {
                    model.rope(layer: l).apply(b.q.pointer, rows: m, heads: c.headCount, positions: pos.baseAddress!, passes: passes)
                    model.rope(layer: l).apply(b.k.pointer, rows: m, heads: c.kvHeadCount, positions: pos.baseAddress!, passes: passes)
                }
                model.applyLogn(b.q.pointer, rows: m, positions: pos.baseAddress!)
            }
            attend(l, b.k.pointer, b.v.pointer)
            projectOutput(model, .o, layer: l, x: b.att.pointer, norm: lw.attentionOutputNorm, rows: m, groups: groups, b)
            sublayer(.attention, layer: l, residual: b.x.pointer, output: b.tmp.pointer, groups: groups, C: C)
            Ops.add(b.tmp.pointer, into: b.x.pointer, count: m * C)
            Ops.rmsNormForward(b.x.pointer, weight: lw.postAttentionNorm.pointer, out: b.xn.pointer, rstd: nil, rows: m,
                               cols: C, eps: c.rmsNormEps)
            if let moe = lw.moe, let routing = b.routing {
                // Only the experts the rows chose are read.
                if groups.count == 1 || groups.allSatisfy({ $0.adapter?.expertAdapter == nil }) {
                    model.mixtureForward(moe, layer: l, x: b.xn.pointer, rows: m, out: b.tmp.pointer, routing: routing, scratch: b.moeScratch,
                                         exact: false, experts: groups.first?.adapter?.expertAdapter)
                } else {
                    // Adapters that update experts: each group's rows through the mixture with its own update.
                    for g in groups where !g.rows.isEmpty {
                        model.mixtureForward(moe, layer: l, x: b.xn.pointer + g.rows.lowerBound * C, rows: g.rows.count,
                                             out: b.tmp.pointer + g.rows.lowerBound * C, routing: routing, scratch: b.moeScratch,
                                             exact: false, experts: g.adapter?.expertAdapter)
                    }
                }
            } else {
                model.projectGateUp(layer: l, rows: m, gate: b.g.pointer, up: b.u.pointer, fused: b.fused.pointer) { p, out in
                    project(model, p, layer: l, x: b.xn.pointer, rows: m, out: out, groups: groups)
                }
                model.activate(gate: b.g.pointer, up: b.u.pointer, out: b.act.pointer, count: m * c.intermediateSize)
                projectOutput(model, .down, layer: l, x: b.act.pointer, norm: lw.mlpOutputNorm, rows: m, groups: groups, b)
            }
            sublayer(.mlp, layer: l, residual: b.x.pointer, output: b.tmp.pointer, groups: groups, C: C)
            Ops.add(b.tmp.pointer, into: b.x.pointer, count: m * C)
        }
    }

    /// A sublayer's last projection (o_proj, down_proj) into `b.tmp`, through the family's output norm when it has
    /// one (`b.xn`, free by then, holds the raw product).
    static func projectOutput(_ model: TransformerModel, _ p: Projection, layer: Int, x: UnsafePointer<Float>,
                              norm: FloatBuffer?, rows m: Int, groups: [AdapterGroup], _ b: StepBuffers) {
        guard let norm else {
            project(model, p, layer: layer, x: x, rows: m, out: b.tmp.pointer, groups: groups)
            return
        }
        let c = model.config
        project(model, p, layer: layer, x: x, rows: m, out: b.xn.pointer, groups: groups)
        Ops.rmsNormForward(b.xn.pointer, weight: norm.pointer, out: b.tmp.pointer, rstd: nil, rows: m, cols: c.hiddenSize,
                           eps: c.rmsNormEps)
    }

    /// One projection for rows of several adapters: the frozen product once for every row (one pass over the
    /// weight), then each adapter rewrites its own rows (`ModelAdapter.refineProjection`). A single group runs the
    /// adapter's own projection, exactly as a pass of that adapter alone.
    static func project(_ model: TransformerModel, _ p: Projection, layer: Int, x: UnsafePointer<Float>, rows m: Int,
                        out: UnsafeMutablePointer<Float>, groups: [AdapterGroup]) {
        let ctx = PassContext.decoding
        if groups.count == 1 {
            model.project(p, layer: layer, x: x, rows: m, out: out, context: ctx, adapter: .some(groups[0].adapter))
            return
        }
        let site = ProjectionSite(layer: layer, projection: p), lin = model.weights.layers[layer].linear(p)
        lin.forward(x, rows: m, into: out, exact: ctx.exact)
        for g in groups {
            guard let a = g.adapter, a.attaches(to: site), !g.rows.isEmpty else { continue }
            a.refineProjection(site: site, linear: lin, x: x + g.rows.lowerBound * lin.inFeatures, rows: g.rows.count,
                               out: out + g.rows.lowerBound * lin.outFeatures, context: ctx)
        }
    }

    /// Hook point 4 for each group of rows whose adapter rewrites this sublayer's output.
    static func sublayer(_ which: Sublayer, layer: Int, residual: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                         groups: [AdapterGroup], C: Int) {
        for g in groups {
            guard let a = g.adapter, a.adapts(which, layer: layer), !g.rows.isEmpty else { continue }
            a.sublayerForward(which, layer: layer, residual: residual + g.rows.lowerBound * C,
                              output: output + g.rows.lowerBound * C, rows: g.rows.count, context: .decoding)
        }
    }
}

extension DecodeSession {
    /// One decoding step for several sessions of one model (see `DecodeBatch.step`); allocates its buffers.
    public static func stepBatch(_ sessions: [DecodeSession], tokens next: [Int32]) throws -> [[Float]] {
        let batch = DecodeBatch(model: sessions.first?.model, maxRows: sessions.count)
        let logits = try batch.step(sessions, tokens: next)
        let V = sessions.first?.model.config.vocabSize ?? 0
        return (0..<sessions.count).map { Array(UnsafeBufferPointer(start: logits + $0 * V, count: V)) }
    }
}

/// Continuous batching: one decoding step for several sessions of the same model at once, each appending one token.
/// Every projection multiplies all sessions' rows in one product (one pass over each weight for the whole batch,
/// which is what makes batched decoding cheaper than turns); sessions with different adapters share that product
/// and their adapters rewrite their own rows (as S-LoRA and Punica do); attention runs per session on its own cache
/// at its own position. Buffers are kept between steps.
public final class DecodeBatch {
    public let model: TransformerModel?
    public let maxRows: Int
    private let buffers: DecodeSession.StepBuffers?
    private let logits: FloatBuffer

    public init(model: TransformerModel?, maxRows: Int) {
        self.model = model
        self.maxRows = max(1, maxRows)
        buffers = model.map { DecodeSession.StepBuffers($0.config, rows: max(1, maxRows)) }
        logits = FloatBuffer(count: max(1, maxRows) * (model?.config.vocabSize ?? 1))
    }

    /// Appends `next[i]` to `sessions[i]`; returns the logits [n, V] (valid until the next step). A step of one
    /// session is that session's own `append`, and a session's result never depends on the others in the batch.
    /// Sessions that share an adapter should be contiguous: each run of one adapter is one group of rows.
    /// - Throws: when a session has not been prefilled, belongs to another model, or would exceed its capacity.
    public func step(_ sessions: [DecodeSession], tokens next: [Int32]) throws -> UnsafePointer<Float> {
        guard sessions.count == next.count else { throw TransformerError.input(reason: "\(sessions.count) sessions, \(next.count) tokens") }
        guard sessions.count <= maxRows else { throw TransformerError.input(reason: "\(sessions.count) sessions exceed the batch's \(maxRows) rows") }
        guard let model, let b = buffers, !sessions.isEmpty else { return UnsafePointer(logits.pointer) }
        let c = model.config, n = sessions.count, C = c.hiddenSize
        for (s, t) in zip(sessions, next) {
            guard s.model === model else { throw TransformerError.input(reason: "sessions of different models cannot be batched") }
            guard !s.tokens.isEmpty else { throw TransformerError.input(reason: "a session must be prefilled before batched decoding") }
            guard s.leading + s.tokens.count + 1 <= s.capacity else {
                throw TransformerError.input(reason: "context of \(s.tokens.count + 1) tokens exceeds the session's capacity of \(s.capacity)")
            }
            try model.validate(tokens: [t], maxPosition: s.tokens.count + 1, leadingRows: s.adapter?.leadingRows ?? 0)
            s.reserve(s.leading + s.tokens.count + 1)
            s.reencodeIfLongRoPESwitches(reaching: s.leading + s.tokens.count)
        }
        var groups: [DecodeSession.AdapterGroup] = []
        for (i, s) in sessions.enumerated() {
            if let last = groups.last, last.adapter === s.adapter {
                groups[groups.count - 1].rows = last.rows.lowerBound..<(i + 1)
            } else {
                groups.append((i..<(i + 1), s.adapter))
            }
        }
        let w = model.weights
        model.embed(next, into: b.x.pointer, adapter: .some(nil))
        let positions = sessions.map { Int32($0.leading + $0.tokens.count) }
        // Every session's row is its own rotary pass.
        let passes = positions.enumerated().map { ($0.offset..<($0.offset + 1), Int($0.element), sessions[$0.offset].ntkLength) }
        DecodeSession.decoderLayers(model, rows: n, positions: positions, groups: groups, passes: passes, b) { l, k, v in
            for (i, s) in sessions.enumerated() {
                let past = Int(positions[i])
                s.store(l, k: k + i * c.kvDim, v: v + i * c.kvDim, at: past, rows: 1)
                s.attendCached(l, q: b.q.pointer + i * c.qDim, out: b.att.pointer + i * c.qDim, past: past, rows: 1)
            }
        }
        Ops.rmsNormForward(b.x.pointer, weight: w.finalNorm.pointer, out: b.xn.pointer, rstd: nil, rows: n, cols: C, eps: c.rmsNormEps)
        model.headLogits(b.xn.pointer, rows: n, into: logits.pointer, exact: false)
        for (s, t) in zip(sessions, next) { s.tokens.append(t) }
        return UnsafePointer(logits.pointer)
    }
}

import Kernels

extension TransformerModel {
    /// Runs layer `l` on rows of `batch`: reads `x` [N, C], writes `out` [N, C], keeps activations in `s`.
    func layerForward(_ l: Int, batch: PackedBatch, x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                      saved s: LayerSaved, buffers b: ActivationBuffers, context: PassContext) {
        let c = config, n = batch.rowCount, w = weights.layers[l]
        let C = c.hiddenSize
        // Attention block.
        Ops.rmsNormForward(x, weight: w.inputNorm.pointer, out: b.xn.pointer, rstd: s.rstd1.pointer, rows: n, cols: C,
                           eps: c.rmsNormEps)
        projectQKV(layer: l, x: b.xn.pointer, rows: n, q: s.qRaw?.pointer ?? s.q.pointer, k: s.kRaw?.pointer ?? s.k.pointer,
                   v: s.v.pointer, fused: b.fused?.pointer) { p, out in
            project(p, layer: l, x: b.xn.pointer, rows: n, out: out, context: context)
        }
        if let qRaw = s.qRaw, let kRaw = s.kRaw, let qn = w.qNorm, let kn = w.kNorm {
            Ops.rmsNormForward(qRaw.pointer, weight: qn.pointer, out: s.q.pointer, rstd: s.qRstd!.pointer,
                               rows: n * c.qDim / c.qNormWidth, cols: c.qNormWidth, eps: c.rmsNormEps)
            Ops.rmsNormForward(kRaw.pointer, weight: kn.pointer, out: s.k.pointer, rstd: s.kRstd!.pointer,
                               rows: n * c.kvDim / c.kNormWidth, cols: c.kNormWidth, eps: c.rmsNormEps)
        }
        let passes = ropePasses(batch, inference: context.inferencePositions)
        batch.positions.withUnsafeBufferPointer { pos in
            if c.usesRotary {
                rope(layer: l).apply(s.q.pointer, rows: n, heads: c.headCount, positions: pos.baseAddress!, passes: passes)
                rope(layer: l).apply(s.k.pointer, rows: n, heads: c.kvHeadCount, positions: pos.baseAddress!, passes: passes)
            }
            if context.inferencePositions { applyLogn(s.q.pointer, rows: n, positions: pos.baseAddress!) }
        }
        attend(l, batch: batch, saved: s, buffers: b)
        project(.o, layer: l, x: s.att.pointer, rows: n, out: s.attentionOut?.pointer ?? b.tmp.pointer, context: context)
        outputNorm(w.attentionOutputNorm, raw: s.attentionOut, rstd: s.rstd3, rows: n, into: b.tmp)
        if let a = adapter, a.adapts(.attention, layer: l) {
            a.sublayerForward(.attention, layer: l, residual: x, output: b.tmp.pointer, rows: n, context: context)
        }
        Ops.sum(x, b.tmp.pointer, into: s.x2.pointer, count: n * C)
        // MLP block.
        Ops.rmsNormForward(s.x2.pointer, weight: w.postAttentionNorm.pointer, out: b.xn.pointer, rstd: s.rstd2.pointer,
                           rows: n, cols: C, eps: c.rmsNormEps)
        let mlpOut = s.mlpOut?.pointer ?? b.tmp.pointer
        if let moe = w.moe, let routing = s.routing {
            // The backward (training buffers) reads the experts' gate and up outputs back.
            mixtureForward(moe, layer: l, x: b.xn.pointer, rows: n, out: mlpOut, routing: routing, scratch: b.moeScratch,
                           exact: context.exact, save: b.policy != .inference, experts: adapter?.expertAdapter)
        } else {
            projectGateUp(layer: l, rows: n, gate: s.g.pointer, up: s.u.pointer, fused: b.fused?.pointer) { p, out in
                project(p, layer: l, x: b.xn.pointer, rows: n, out: out, context: context)
            }
            activate(gate: s.g.pointer, up: s.u.pointer, out: b.act.pointer, count: n * c.intermediateSize)
            project(.down, layer: l, x: b.act.pointer, rows: n, out: mlpOut, context: context)
        }
        outputNorm(w.mlpOutputNorm, raw: s.mlpOut, rstd: s.rstd4, rows: n, into: b.tmp)
        if let a = adapter, a.adapts(.mlp, layer: l) {
            a.sublayerForward(.mlp, layer: l, residual: s.x2.pointer, output: b.tmp.pointer, rows: n, context: context)
        }
        Ops.sum(s.x2.pointer, b.tmp.pointer, into: out, count: n * C)
    }

    /// out = RMSNorm(raw) for a family with norms on its sublayer outputs (the raw product was written to `raw`,
    /// which exists exactly then); nothing otherwise (the product went to `out` itself).
    private func outputNorm(_ norm: FloatBuffer?, raw: FloatBuffer?, rstd: FloatBuffer?, rows n: Int, into out: FloatBuffer) {
        guard let norm, let raw, let rstd else { return }
        Ops.rmsNormForward(raw.pointer, weight: norm.pointer, out: out.pointer, rstd: rstd.pointer, rows: n,
                           cols: config.hiddenSize, eps: config.rmsNormEps)
    }

    /// Each packed sequence is its own pass for the rotary embedding (as if run alone); at inference its whole length
    /// sets dynamic NTK's alpha, as Qwen v1's remote code does for a forward without a cache.
    func ropePasses(_ batch: PackedBatch, inference: Bool) -> [RoPE.Pass] {
        zip(batch.starts, batch.lengths).map { start, length in
            let furthest = length > 0 ? Int(batch.positions[start + length - 1]) : 0
            return (start..<(start + length), furthest, inference ? furthest + 1 : 0)
        }
    }

    /// Hook point 2: attention of every sequence of the batch, behind the adapter's prefix keys and values if any.
    func attend(_ l: Int, batch: PackedBatch, saved s: LayerSaved, buffers b: ActivationBuffers) {
        let np = b.prefixRows
        for (i, (start, length)) in zip(batch.starts, batch.lengths).enumerated() {
            if let shared = batch.sharedPrefix[i] {
                precondition(np == 0, "a tree-packed batch has no attention prefix")
                let keys = sharedKeys(batch, i, shared, saved: s, buffers: b, gradients: false)
                attention[l].forward(q: s.q.pointer, k: keys.k, v: keys.v, out: s.att.pointer, lse: s.lse.pointer,
                                     start: start, length: length, keyStart: 0, past: shared.rows,
                                     scratch: b.attnScratch.pointer)
                continue
            }
            guard np > 0, let a = adapter, let kSeq = b.kSeq, let vSeq = b.vSeq else {
                attention[l].forward(q: s.q.pointer, k: s.k.pointer, v: s.v.pointer, out: s.att.pointer,
                                     lse: s.lse.pointer, start: start, length: length, scratch: b.attnScratch.pointer)
                continue
            }
            prefixedKeys(l, adapter: a, start: start, length: length, saved: s, k: kSeq, v: vSeq)
            attention[l].forward(q: s.q.pointer, k: kSeq.pointer, v: vSeq.pointer, out: s.att.pointer,
                                 lse: s.lse.pointer, start: start, length: length, keyStart: 0, past: np,
                                 scratch: b.attnScratch.pointer)
        }
    }

    /// Sequence i's keys and values behind the rows it shares: the other sequence's first `shared.rows` rows, then
    /// its own (in `b.sharedKeys`, whose gradient buffers are zeroed when `gradients`).
    func sharedKeys(_ batch: PackedBatch, _ i: Int, _ shared: PackedBatch.SharedPrefix, saved s: LayerSaved,
                    buffers b: ActivationBuffers, gradients: Bool) -> (k: UnsafePointer<Float>, v: UnsafePointer<Float>) {
        let kvDim = config.kvDim, from = batch.starts[shared.sequence], p = shared.rows
        let start = batch.starts[i], length = batch.lengths[i], count = (p + length) * kvDim
        let scratch = b.sharedKeys
        scratch.reserve(count, gradients: gradients)
        scratch.k.pointer.update(from: s.k.pointer + from * kvDim, count: p * kvDim)
        scratch.v.pointer.update(from: s.v.pointer + from * kvDim, count: p * kvDim)
        (scratch.k.pointer + p * kvDim).update(from: s.k.pointer + start * kvDim, count: length * kvDim)
        (scratch.v.pointer + p * kvDim).update(from: s.v.pointer + start * kvDim, count: length * kvDim)
        if gradients {
            scratch.dk.pointer.update(repeating: 0, count: count)
            scratch.dv.pointer.update(repeating: 0, count: count)
        }
        return (UnsafePointer(scratch.k.pointer), UnsafePointer(scratch.v.pointer))
    }

    /// k/v[np + length, kvDim] = the adapter's prefix of layer `l`, then the keys and values of one sequence.
    func prefixedKeys(_ l: Int, adapter a: ModelAdapter, start: Int, length: Int, saved s: LayerSaved,
                      k: FloatBuffer, v: FloatBuffer) {
        let kvDim = config.kvDim, p = a.prefix(layer: l), np = a.prefixLength
        for j in 0..<np {
            (k.pointer + j * kvDim).update(from: p.keys + j * p.stride, count: kvDim)
            (v.pointer + j * kvDim).update(from: p.values + j * p.stride, count: kvDim)
        }
        (k.pointer + np * kvDim).update(from: s.k.pointer + start * kvDim, count: length * kvDim)
        (v.pointer + np * kvDim).update(from: s.v.pointer + start * kvDim, count: length * kvDim)
    }

    /// Embeds and runs every layer, then the final norm into `b.finalNormed` (rstd kept for backward).
    func forwardStack(_ batch: PackedBatch, buffers b: ActivationBuffers, context: PassContext) {
        let n = batch.rowCount, C = config.hiddenSize
        precondition(n <= b.capacity && batch.longest <= b.longest, "batch exceeds the planned buffers")
        reserveRotary(batch.longest)
        embed(batch.tokens, into: b.hidden[0].pointer)
        for l in 0..<config.layerCount {
            let (input, output, saved): (FloatBuffer, FloatBuffer, LayerSaved)
            switch b.policy {
            case .inference: (input, output, saved) = (b.hidden[l % 2], b.hidden[(l + 1) % 2], b.saved[0])
            case .keepAll: (input, output, saved) = (b.hidden[l], b.hidden[l + 1], b.saved[l])
            case .checkpointing: (input, output, saved) = (b.hidden[l], b.hidden[l + 1], b.saved[0])
            }
            layerForward(l, batch: batch, x: input.pointer, out: output.pointer, saved: saved, buffers: b,
                         context: context)
        }
        let last = b.policy == .inference ? b.hidden[config.layerCount % 2] : b.hidden[config.layerCount]
        Ops.rmsNormForward(last.pointer, weight: weights.finalNorm.pointer, out: b.finalNormed.pointer,
                           rstd: b.finalRstd.pointer, rows: n, cols: C, eps: config.rmsNormEps)
    }

    /// Logits of every row of `batch` [N, V] (inference; for tests and small inputs). Rows of the adapter's
    /// virtual tokens are not included.
    public func logits(_ batch: PackedBatch) -> [Float] {
        let b = makeBuffers(batches: [batch.fullLengths], policy: .inference)
        let (run, _) = prepare(batch, labels: nil)
        forwardStack(run, buffers: b, context: .inference)
        let nv = run.rowCount - batch.rowCount, V = config.vocabSize, C = config.hiddenSize
        var out = [Float](repeating: 0, count: batch.rowCount * V)
        out.withUnsafeMutableBufferPointer { o in
            var row = 0
            for (start, length) in zip(run.starts, run.lengths) {
                let skip = nv / max(1, run.starts.count)
                headLogits(b.finalNormed.pointer + (start + skip) * C, rows: length - skip, into: o.baseAddress! + row * V)
                row += length - skip
            }
        }
        return out
    }
}

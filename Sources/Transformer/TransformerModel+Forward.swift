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
        project(.q, layer: l, x: b.xn.pointer, rows: n, out: s.qRaw?.pointer ?? s.q.pointer, context: context)
        project(.k, layer: l, x: b.xn.pointer, rows: n, out: s.kRaw?.pointer ?? s.k.pointer, context: context)
        project(.v, layer: l, x: b.xn.pointer, rows: n, out: s.v.pointer, context: context)
        if let qRaw = s.qRaw, let kRaw = s.kRaw, let qn = w.qNorm, let kn = w.kNorm {
            Ops.rmsNormForward(qRaw.pointer, weight: qn.pointer, out: s.q.pointer, rstd: s.qRstd!.pointer,
                               rows: n * c.headCount, cols: c.headDim, eps: c.rmsNormEps)
            Ops.rmsNormForward(kRaw.pointer, weight: kn.pointer, out: s.k.pointer, rstd: s.kRstd!.pointer,
                               rows: n * c.kvHeadCount, cols: c.headDim, eps: c.rmsNormEps)
        }
        batch.positions.withUnsafeBufferPointer { pos in
            rope.apply(s.q.pointer, rows: n, heads: c.headCount, positions: pos.baseAddress!)
            rope.apply(s.k.pointer, rows: n, heads: c.kvHeadCount, positions: pos.baseAddress!)
        }
        for (start, length) in zip(batch.starts, batch.lengths) {
            attention[l].forward(q: s.q.pointer, k: s.k.pointer, v: s.v.pointer, out: s.att.pointer, lse: s.lse.pointer,
                              start: start, length: length, scratch: b.attnScratch.pointer)
        }
        project(.o, layer: l, x: s.att.pointer, rows: n, out: b.tmp.pointer, context: context)
        Ops.sum(x, b.tmp.pointer, into: s.x2.pointer, count: n * C)
        // MLP block.
        Ops.rmsNormForward(s.x2.pointer, weight: w.postAttentionNorm.pointer, out: b.xn.pointer, rstd: s.rstd2.pointer,
                           rows: n, cols: C, eps: c.rmsNormEps)
        project(.gate, layer: l, x: b.xn.pointer, rows: n, out: s.g.pointer, context: context)
        project(.up, layer: l, x: b.xn.pointer, rows: n, out: s.u.pointer, context: context)
        Ops.swigluForward(gate: s.g.pointer, up: s.u.pointer, out: b.act.pointer, count: n * c.intermediateSize)
        project(.down, layer: l, x: b.act.pointer, rows: n, out: b.tmp.pointer, context: context)
        Ops.sum(s.x2.pointer, b.tmp.pointer, into: out, count: n * C)
    }

    /// Embeds and runs every layer, then the final norm into `b.finalNormed` (rstd kept for backward).
    func forwardStack(_ batch: PackedBatch, buffers b: ActivationBuffers, context: PassContext) {
        let n = batch.rowCount, C = config.hiddenSize
        precondition(n <= b.capacity && batch.longest <= b.longest, "batch exceeds the planned buffers")
        rope.reserve(batch.longest)
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

    /// Logits of every row [N, V] (inference; for tests and small inputs).
    public func logits(_ batch: PackedBatch) -> [Float] {
        let b = ActivationBuffers(config: config, capacity: batch.rowCount, longest: batch.longest, policy: .inference)
        forwardStack(batch, buffers: b, context: .inference)
        var out = [Float](repeating: 0, count: batch.rowCount * config.vocabSize)
        out.withUnsafeMutableBufferPointer {
            weights.lmHead.forward(b.finalNormed.pointer, rows: batch.rowCount, into: $0.baseAddress!)
        }
        return out
    }
}

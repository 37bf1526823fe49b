import Kernels

extension TransformerModel {
    /// Backward of layer `l`. On entry `b.dHidden` holds d(loss)/d(layer output); on exit d(loss)/d(layer input),
    /// unless `needInputGradient` is false (the lowest trainable layer), when only adapter gradients are made.
    func layerBackward(_ l: Int, batch: PackedBatch, x: UnsafePointer<Float>, saved s: LayerSaved,
                       buffers b: ActivationBuffers, needInputGradient: Bool, context: PassContext) {
        let c = config, n = batch.rowCount, w = weights.layers[l]
        let C = c.hiddenSize
        guard let dH = b.dHidden, let dxn = b.dxn, let dq = b.dq, let dk = b.dk, let dv = b.dv,
              let datt = b.datt else { preconditionFailure("backward needs training buffers") }
        // MLP block: out = x2 + down(silu(g) * u), g/u = gate/up(norm2(x2)).
        Ops.rmsNormForward(s.x2.pointer, weight: w.postAttentionNorm.pointer, out: b.xn.pointer, rstd: nil, rows: n,
                           cols: C, eps: c.rmsNormEps)
        // Hook point 4: the rewritten MLP output; d(original output) goes to down_proj, the residual's share to dH.
        var dDown = sublayerOutputGradient(.mlp, layer: l, dH: dH, rows: n, buffers: b, context: context)
        if let norm = w.mlpOutputNorm, let raw = s.mlpOut, let rstd = s.rstd4 {
            dDown = outputNormBackward(.mlpOutputNorm(l), weight: norm, raw: raw, rstd: rstd, dy: dDown, rows: n, buffers: b)
        }
        if let moe = w.moe, let routing = s.routing {
            mixtureBackward(moe, layer: l, x: b.xn.pointer, dOut: dDown, rows: n, dx: dxn.pointer, routing: routing,
                            scratch: b.moeScratch, experts: adapter?.expertAdapter)
        } else {
            denseMLPBackward(l, dDown: dDown, rows: n, saved: s, buffers: b, context: context)
        }
        if let g = adapter?.baseGradient(.postAttentionNorm(l)) {
            Ops.rmsNormWeightGradient(dxn.pointer, x: s.x2.pointer, rstd: s.rstd2.pointer, rows: n, cols: C, into: g)
        }
        Ops.rmsNormBackward(dxn.pointer, x: s.x2.pointer, weight: w.postAttentionNorm.pointer, rstd: s.rstd2.pointer,
                            dx: dH.pointer, rows: n, cols: C, accumulate: true)
        // Attention block: x2 = x + o(attn(rope(q), rope(k), v)), q/k/v = proj(norm1(x)).
        var dO = sublayerOutputGradient(.attention, layer: l, dH: dH, rows: n, buffers: b, context: context)
        if let norm = w.attentionOutputNorm, let raw = s.attentionOut, let rstd = s.rstd3 {
            dO = outputNormBackward(.attentionOutputNorm(l), weight: norm, raw: raw, rstd: rstd, dy: dO, rows: n, buffers: b)
        }
        projectBackward(.o, layer: l, x: s.att.pointer, dy: dO, rows: n, dx: datt.pointer, accumulate: false,
                        context: context)
        attendBackward(l, batch: batch, saved: s, buffers: b, dout: datt.pointer, dq: dq.pointer, dk: dk.pointer,
                       dv: dv.pointer)
        let passes = ropePasses(batch, inference: context.inferencePositions)
        batch.positions.withUnsafeBufferPointer { pos in
            if context.inferencePositions { applyLogn(dq.pointer, rows: n, positions: pos.baseAddress!) }
            if c.usesRotary {
                rope(layer: l).apply(dq.pointer, rows: n, heads: c.headCount, positions: pos.baseAddress!, inverse: true, passes: passes)
                rope(layer: l).apply(dk.pointer, rows: n, heads: c.kvHeadCount, positions: pos.baseAddress!, inverse: true, passes: passes)
            }
        }
        if let qRaw = s.qRaw, let kRaw = s.kRaw, let qn = w.qNorm, let kn = w.kNorm {
            if let g = adapter?.baseGradient(.qNorm(l)) {
                Ops.rmsNormWeightGradient(dq.pointer, x: qRaw.pointer, rstd: s.qRstd!.pointer, rows: n * c.qDim / c.qNormWidth,
                                          cols: c.qNormWidth, into: g)
            }
            if let g = adapter?.baseGradient(.kNorm(l)) {
                Ops.rmsNormWeightGradient(dk.pointer, x: kRaw.pointer, rstd: s.kRstd!.pointer, rows: n * c.kvDim / c.kNormWidth,
                                          cols: c.kNormWidth, into: g)
            }
            Ops.rmsNormBackward(dq.pointer, x: qRaw.pointer, weight: qn.pointer, rstd: s.qRstd!.pointer, dx: dq.pointer,
                                rows: n * c.qDim / c.qNormWidth, cols: c.qNormWidth, accumulate: false)
            Ops.rmsNormBackward(dk.pointer, x: kRaw.pointer, weight: kn.pointer, rstd: s.kRstd!.pointer, dx: dk.pointer,
                                rows: n * c.kvDim / c.kNormWidth, cols: c.kNormWidth, accumulate: false)
        }
        Ops.rmsNormForward(x, weight: w.inputNorm.pointer, out: b.xn.pointer, rstd: nil, rows: n, cols: C,
                           eps: c.rmsNormEps)
        let inputNormGradient = adapter?.baseGradient(.inputNorm(l))
        let dxnOut: UnsafeMutablePointer<Float>? = needInputGradient || inputNormGradient != nil ? dxn.pointer : nil
        if c.qkvFusion != nil, let fused = b.fused {
            FusedColumns.qkv(c).join([dq.pointer, dk.pointer, dv.pointer], widths: [c.qDim, c.kvDim, c.kvDim], rows: n,
                                     into: fused.pointer)
            projectBackward(.qkv, layer: l, x: b.xn.pointer, dy: fused.pointer, rows: n, dx: dxnOut, accumulate: false,
                            context: context)
        } else {
            projectBackward(.q, layer: l, x: b.xn.pointer, dy: dq.pointer, rows: n, dx: dxnOut, accumulate: false,
                            context: context)
            projectBackward(.k, layer: l, x: b.xn.pointer, dy: dk.pointer, rows: n, dx: dxnOut, accumulate: true,
                            context: context)
            projectBackward(.v, layer: l, x: b.xn.pointer, dy: dv.pointer, rows: n, dx: dxnOut, accumulate: true,
                            context: context)
        }
        if let g = inputNormGradient {
            Ops.rmsNormWeightGradient(dxn.pointer, x: x, rstd: s.rstd1.pointer, rows: n, cols: C, into: g)
        }
        if needInputGradient {
            Ops.rmsNormBackward(dxn.pointer, x: x, weight: w.inputNorm.pointer, rstd: s.rstd1.pointer, dx: dH.pointer,
                                rows: n, cols: C, accumulate: true)
        }
    }

    /// Backward of a dense gated MLP from d(its output): writes d(its normed input, `b.xn`) into `b.dxn`.
    private func denseMLPBackward(_ l: Int, dDown: UnsafePointer<Float>, rows n: Int, saved s: LayerSaved,
                                  buffers b: ActivationBuffers, context: PassContext) {
        let c = config, I = c.intermediateSize
        guard let dxn = b.dxn, let dg = b.dg, let du = b.du, let da = b.da else { preconditionFailure("training buffers") }
        activate(gate: s.g.pointer, up: s.u.pointer, out: b.act.pointer, count: n * I)
        projectBackward(.down, layer: l, x: b.act.pointer, dy: dDown, rows: n, dx: da.pointer, accumulate: false,
                        context: context)
        switch c.activation {
        case .silu: Ops.swigluBackward(da.pointer, gate: s.g.pointer, up: s.u.pointer, dgate: dg.pointer, dup: du.pointer, count: n * I)
        case .geluTanh: Ops.gegluBackward(da.pointer, gate: s.g.pointer, up: s.u.pointer, dgate: dg.pointer, dup: du.pointer, count: n * I)
        }
        if c.fusedGateUp, let fused = b.fused {
            FusedColumns.gateUp(c).join([dg.pointer, du.pointer], widths: [I, I], rows: n, into: fused.pointer)
            projectBackward(.gateUp, layer: l, x: b.xn.pointer, dy: fused.pointer, rows: n, dx: dxn.pointer,
                            accumulate: false, context: context)
        } else {
            projectBackward(.gate, layer: l, x: b.xn.pointer, dy: dg.pointer, rows: n, dx: dxn.pointer, accumulate: false,
                            context: context)
            projectBackward(.up, layer: l, x: b.xn.pointer, dy: du.pointer, rows: n, dx: dxn.pointer, accumulate: true,
                            context: context)
        }
    }

    /// Backward of a norm on a sublayer's output (sandwich norms): returns d(its input) in `b.dNormInput`, and adds the
    /// weight's gradient when it trains.
    private func outputNormBackward(_ tensor: BaseTensor, weight: FloatBuffer, raw: FloatBuffer, rstd: FloatBuffer,
                                    dy: UnsafePointer<Float>, rows n: Int, buffers b: ActivationBuffers) -> UnsafePointer<Float> {
        guard let dIn = b.dNormInput else { preconditionFailure("sandwich norms need their gradient buffer") }
        let C = config.hiddenSize
        if let g = adapter?.baseGradient(tensor) {
            Ops.rmsNormWeightGradient(dy, x: raw.pointer, rstd: rstd.pointer, rows: n, cols: C, into: g)
        }
        Ops.rmsNormBackward(dy, x: raw.pointer, weight: weight.pointer, rstd: rstd.pointer, dx: dIn.pointer, rows: n,
                            cols: C, accumulate: false)
        return UnsafePointer(dIn.pointer)
    }

    /// Backward of `attend`: dq written, dk and dv written for the batch rows; the prefix's gradients go to the adapter.
    /// d(loss)/d(the sublayer's original output), given `dH` = d(loss)/d(block output). Without an adapter that
    /// rewrites the sublayer that is `dH` itself; with one, the adapter writes it to `b.dSublayer` and leaves the
    /// residual's share in `dH`.
    private func sublayerOutputGradient(_ sublayer: Sublayer, layer l: Int, dH: FloatBuffer, rows n: Int,
                                        buffers b: ActivationBuffers, context: PassContext) -> UnsafePointer<Float> {
        guard let a = adapter, a.adapts(sublayer, layer: l), let dSub = b.dSublayer else { return UnsafePointer(dH.pointer) }
        a.sublayerBackward(sublayer, layer: l, dOutput: dH.pointer, rows: n, dOriginal: dSub.pointer,
                           dResidual: dH.pointer, context: context)
        return UnsafePointer(dSub.pointer)
    }

    func attendBackward(_ l: Int, batch: PackedBatch, saved s: LayerSaved, buffers b: ActivationBuffers,
                        dout: UnsafePointer<Float>, dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>,
                        dv: UnsafeMutablePointer<Float>) {
        let np = b.prefixRows, kvDim = config.kvDim
        dk.update(repeating: 0, count: batch.rowCount * kvDim)
        dv.update(repeating: 0, count: batch.rowCount * kvDim)
        for (i, (start, length)) in zip(batch.starts, batch.lengths).enumerated() {
            if let shared = batch.sharedPrefix[i] {
                // Tree packing: the shared rows' key and value gradients add into the sequence that holds them
                // (an earlier one, whose own backward has already written there).
                let keys = sharedKeys(batch, i, shared, saved: s, buffers: b, gradients: true)
                let g = b.sharedKeys, p = shared.rows, from = batch.starts[shared.sequence]
                attention[l].backward(q: s.q.pointer, k: keys.k, v: keys.v, out: s.att.pointer, lse: s.lse.pointer,
                                      dout: dout, dq: dq, dk: g.dk.pointer, dv: g.dv.pointer, start: start,
                                      length: length, keyStart: 0, past: p, scratch: b.attnScratch.pointer)
                Ops.add(g.dk.pointer, into: dk + from * kvDim, count: p * kvDim)
                Ops.add(g.dv.pointer, into: dv + from * kvDim, count: p * kvDim)
                (dk + start * kvDim).update(from: g.dk.pointer + p * kvDim, count: length * kvDim)
                (dv + start * kvDim).update(from: g.dv.pointer + p * kvDim, count: length * kvDim)
                continue
            }
            guard np > 0, let a = adapter, let kSeq = b.kSeq, let vSeq = b.vSeq, let dkSeq = b.dkSeq,
                  let dvSeq = b.dvSeq else {
                attention[l].backward(q: s.q.pointer, k: s.k.pointer, v: s.v.pointer, out: s.att.pointer,
                                      lse: s.lse.pointer, dout: dout, dq: dq, dk: dk, dv: dv, start: start,
                                      length: length, scratch: b.attnScratch.pointer)
                continue
            }
            // Rebuild this sequence's keys and values behind the prefix (the buffers hold the last sequence's).
            prefixedKeys(l, adapter: a, start: start, length: length, saved: s, k: kSeq, v: vSeq)
            dkSeq.pointer.update(repeating: 0, count: (np + length) * kvDim)
            dvSeq.pointer.update(repeating: 0, count: (np + length) * kvDim)
            attention[l].backward(q: s.q.pointer, k: kSeq.pointer, v: vSeq.pointer, out: s.att.pointer,
                                  lse: s.lse.pointer, dout: dout, dq: dq, dk: dkSeq.pointer, dv: dvSeq.pointer,
                                  start: start, length: length, keyStart: 0, past: np, scratch: b.attnScratch.pointer)
            (dk + start * kvDim).update(from: dkSeq.pointer + np * kvDim, count: length * kvDim)
            (dv + start * kvDim).update(from: dvSeq.pointer + np * kvDim, count: length * kvDim)
            a.accumulatePrefixGradient(layer: l, keys: dkSeq.pointer, values: dvSeq.pointer)
        }
    }

    /// One forward and backward pass over `batch`: returns the summed next-token loss over labelled rows and their
    /// count, and accumulates d(gradScale * lossSum)/d(adapter parameters) into the adapter's gradients.
    /// `b` must be planned (`makeBuffers`) with `.keepAll` or `.checkpointing`.
    /// With `distill`, the objective is the divergence from the teacher (see `LossHead.run`).
    public func forwardBackward(_ batch: PackedBatch, labels: [Int32], gradScale: Float, buffers b: ActivationBuffers,
                                context: PassContext, distill: Distillation? = nil,
                                objective: SequenceObjective? = nil) -> (lossSum: Double, count: Int) {
        precondition(b.policy != .inference, "forwardBackward needs training buffers")
        precondition(labels.count == batch.rowCount, "one label per row")
        let (batch, prepared) = prepare(batch, labels: labels)
        let labels = prepared ?? labels
        let stats = context.routerAuxLossWeight > 0 ? b.routerStatistics : nil
        stats?.begin()
        forwardStack(batch, buffers: b, context: context)
        stats?.finish(weight: context.routerAuxLossWeight)
        defer { stats?.end() }
        let head = LossHead(lmHead: weights.lmHead, hidden: config.hiddenSize, softcap: config.finalSoftcap)
        guard let dH = b.dHidden, let dxn = b.dxn else { preconditionFailure("training buffers") }
        let result = head.run(normed: b.finalNormed.pointer, labels: labels, dNormed: dxn.pointer, gradScale: gradScale,
                              scratch: b.lossScratch, dWeight: adapter?.baseGradient(.lmHead), distill: distill,
                              objective: objective)
        let n = batch.rowCount, L = config.layerCount
        if let g = adapter?.baseGradient(.finalNorm) {
            Ops.rmsNormWeightGradient(dxn.pointer, x: b.hidden[L].pointer, rstd: b.finalRstd.pointer, rows: n,
                                      cols: config.hiddenSize, into: g)
        }
        Ops.rmsNormBackward(dxn.pointer, x: b.hidden[L].pointer, weight: weights.finalNorm.pointer,
                            rstd: b.finalRstd.pointer, dx: dH.pointer, rows: n, cols: config.hiddenSize, accumulate: false)
        guard let lowest = adapter?.lowestTrainableLayer else { return result }
        let nv = adapter?.virtualTokenCount ?? 0
        let embeddingGradient = adapter?.baseGradient(.embedding)
        for l in stride(from: L - 1, through: lowest, by: -1) {
            let saved: LayerSaved
            if b.policy == .checkpointing {
                saved = b.saved[0]
                // Recompute this layer's activations from its saved input; its output goes to scratch.
                layerForward(l, batch: batch, x: b.hidden[l].pointer, out: b.tmp.pointer, saved: saved, buffers: b,
                             context: context)
            } else {
                saved = b.saved[l]
            }
            layerBackward(l, batch: batch, x: b.hidden[l].pointer, saved: saved, buffers: b,
                          needInputGradient: l > lowest || (l == 0 && (nv > 0 || embeddingGradient != nil)),
                          context: context)
        }
        // Gemma's scaled embeddings: d(embedding) = scale * d(layer 0 input).
        if let scale = config.embeddingScale, lowest == 0, embeddingGradient != nil || nv > 0 {
            for i in 0..<(n * config.hiddenSize) { dH.pointer[i] *= scale }
        }
        // Full fine-tuning: d(embedding row of each token) += d(layer 0 input) of its rows.
        if let g = embeddingGradient, lowest == 0 {
            let C = config.hiddenSize
            for (r, t) in batch.tokens.enumerated() where t >= 0 { Ops.add(dH.pointer + r * C, into: g + Int(t) * C, count: C) }
        }
        // Hook point 1: the virtual rows' share of d(loss)/d(embeddings), one sequence at a time.
        if nv > 0, lowest == 0, let a = adapter {
            for start in batch.starts { a.accumulateVirtualGradient(dH.pointer + start * config.hiddenSize) }
        }
        return result
    }

    /// Summed next-token loss over labelled rows and their count, forward only (`context`: an inference pass unless
    /// the caller asks for training's positions).
    public func loss(_ batch: PackedBatch, labels: [Int32], buffers b: ActivationBuffers,
                     distill: Distillation? = nil, objective: SequenceObjective? = nil,
                     context: PassContext = .inference) -> (lossSum: Double, count: Int) {
        let (batch, prepared) = prepare(batch, labels: labels)
        let labels = prepared ?? labels
        forwardStack(batch, buffers: b, context: context)
        let head = LossHead(lmHead: weights.lmHead, hidden: config.hiddenSize, softcap: config.finalSoftcap)
        return head.run(normed: b.finalNormed.pointer, labels: labels, dNormed: nil, gradScale: 0, scratch: b.lossScratch,
                        distill: distill, objective: objective)
    }
}

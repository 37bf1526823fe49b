import Foundation
import Kernels

/// Causal (optionally sliding-window) grouped-query attention over packed sequences, with head h reading
/// key/value head h / (H / Hkv). Forward keeps only the per-row logsumexp; backward recomputes the
/// probabilities from it, so no [T, T] matrix is stored between passes.
///
/// Layouts: q, out: [N, H * D]; k, v: [N, Hkv * D]; lse: [N, H]. Each sequence is a contiguous block of rows.
struct Attention {
    let heads: Int
    let kvHeads: Int
    let headDim: Int
    let window: Int?
    /// Scores are q·k times this.
    let scale: Float
    /// Gemma 2: scores s become cap * tanh(s / cap) before the mask and softmax.
    let softcap: Float?
    /// ALiBi: head h's score of key position j from query position i gets slopes[h] * (j - i) added.
    let alibi: [Float]?

    /// Attention of layer `layer` (its window depends on the layer in some Qwen2 configurations).
    init(config: ModelConfig, layer: Int = 0, queryBlock: Int = Attention.defaultQueryBlock) {
        self.queryBlock = max(1, queryBlock)
        heads = config.headCount
        kvHeads = config.kvHeadCount
        headDim = config.headDim
        window = config.attentionWindow(layer: layer)
        scale = config.attentionScale
        softcap = config.attentionSoftcap
        alibi = config.alibiSlopes
    }

    /// The visible scores of one row of head `head` before the softmax: soft-capped, then ALiBi's bias added (no-op
    /// without either). row[x] is the score of key position `firstKey + x` from query position `query`.
    @inline(__always)
    func adjust(_ row: UnsafeMutablePointer<Float>, _ range: Range<Int>, head: Int, firstKey: Int, query: Int) {
        if let c = softcap, !range.isEmpty { Ops.softcap(row + range.lowerBound, count: range.count, cap: c, parallel: false) }
        if let alibi {
            let m = alibi[head], offset = firstKey - query
            for j in range { row[j] += m * Float(j + offset) }
        }
    }

    /// Keys visible from query row i (0-based within its sequence, at absolute offset `past` from the cache start).
    func visible(_ i: Int) -> Range<Int> {
        let hi = i + 1
        let lo = window.map { max(0, hi - $0) } ?? 0
        return lo..<hi
    }

    /// Query rows per block: scores are computed block by block (keys only up to the block's last row), so the
    /// scratch is [2, block, T] instead of [2, T, T] and the masked upper triangle is mostly skipped.
    static let defaultQueryBlock = 256
    let queryBlock: Int

    /// Scratch floats `forward` / `backward` need for sequences of up to `longest` query rows after `past` cached rows.
    static func scratchCount(longest t: Int, past: Int = 0, queryBlock: Int = defaultQueryBlock) -> Int {
        2 * min(t, queryBlock) * (past + t)
    }

    /// Key rows [lo, hi) that query rows [r0, r1) can see, with `past` key rows in front of the sequence's own.
    func keySpan(_ r0: Int, _ r1: Int, past: Int) -> Range<Int> { visible(past + r0).lowerBound..<(past + r1) }

    /// out = softmax(q k^T * scale + causal mask) v for one sequence of T query rows starting at row `start` of q,
    /// out and lse. Its keys and values are rows keyStart..<keyStart + past + T of k and v: `past` rows in front
    /// (an attention prefix), visible to every query, then the sequence's own.
    func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                 out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?, start: Int, length t: Int,
                 keyStart: Int? = nil, past: Int = 0, scratch: UnsafeMutablePointer<Float>) {
        let (h, hkv, d) = (heads, kvHeads, headDim)
        let ldq = h * d, ldk = hkv * d, k0 = keyStart ?? start
        for head in 0..<h {
            let g = head / (h / hkv)
            let qh = q + start * ldq + head * d, kh = k + k0 * ldk + g * d, vh = v + k0 * ldk + g * d
            for r0 in stride(from: 0, to: t, by: queryBlock) {
                let r1 = min(t, r0 + queryBlock), keys = keySpan(r0, r1, past: past), n = keys.count
                // S[rows, keys] = q_h k_g^T * scale
                Gemm.multiply(m: r1 - r0, n: n, k: d, a: qh + r0 * ldq, lda: ldq, b: kh + keys.lowerBound * ldk,
                              ldb: ldk, transposeB: true, c: scratch, ldc: n, alpha: scale)
                let lseOut = lse
                Parallel.forRanges(r1 - r0, minChunk: 64) { rows in
                    for j in rows {
                        let i = r0 + j, vis = visible(past + i)
                        let range = (vis.lowerBound - keys.lowerBound)..<(vis.upperBound - keys.lowerBound)
                        adjust(scratch + j * n, range, head: head, firstKey: keys.lowerBound, query: past + i)
                        let l = Ops.softmax(scratch + j * n, range: range, count: n)
                        lseOut?[(start + i) * h + head] = l
                    }
                }
                // out_h[rows, D] = P v_g
                Gemm.multiply(m: r1 - r0, n: d, k: n, a: scratch, lda: n, b: vh + keys.lowerBound * ldk, ldb: ldk,
                              c: out + (start + r0) * ldq + head * d, ldc: ldq)
            }
        }
    }

    /// Gradients of `forward` for one sequence: dq (written), dk and dv (accumulated at the key rows, prefix
    /// included; zero them first). `out` is the forward output and `dout` its gradient. scratch holds
    /// `scratchCount(longest:past:)` floats.
    func backward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                  out: UnsafePointer<Float>, lse: UnsafePointer<Float>, dout: UnsafePointer<Float>,
                  dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                  start: Int, length t: Int, keyStart: Int? = nil, past: Int = 0, scratch: UnsafeMutablePointer<Float>) {
        let (h, hkv, d) = (heads, kvHeads, headDim)
        let ldq = h * d, ldk = hkv * d, k0 = keyStart ?? start
        let p = scratch, dp = scratch + min(t, queryBlock) * (past + t)
        for head in 0..<h {
            let g = head / (h / hkv)
            let qh = q + start * ldq + head * d, kh = k + k0 * ldk + g * d, vh = v + k0 * ldk + g * d
            let oh = out + start * ldq + head * d, doh = dout + start * ldq + head * d
            for r0 in stride(from: 0, to: t, by: queryBlock) {
                let r1 = min(t, r0 + queryBlock), rows = r1 - r0, keys = keySpan(r0, r1, past: past), n = keys.count
                let kb = kh + keys.lowerBound * ldk, vb = vh + keys.lowerBound * ldk
                // Recompute P from the saved logsumexp.
                Gemm.multiply(m: rows, n: n, k: d, a: qh + r0 * ldq, lda: ldq, b: kb, ldb: ldk, transposeB: true,
                              c: p, ldc: n, alpha: scale)
                Parallel.forRanges(rows, minChunk: 64) { js in
                    for j in js {
                        let i = r0 + j, vis = visible(past + i)
                        let range = (vis.lowerBound - keys.lowerBound)..<(vis.upperBound - keys.lowerBound)
                        adjust(p + j * n, range, head: head, firstKey: keys.lowerBound, query: past + i)
                        Ops.expShifted(p + j * n, range: range, count: n, lse: lse[(start + i) * h + head])
                    }
                }
                // dv_g += P^T dout_h
                Gemm.multiply(m: n, n: d, k: rows, a: p, lda: n, transposeA: true, b: doh + r0 * ldq, ldb: ldq,
                              c: dv + (k0 + keys.lowerBound) * ldk + g * d, ldc: ldk, accumulate: true)
                // dP = dout_h v_g^T ; dS = P * (dP - rowsum(dout * out)); the scale goes into the next products
                Gemm.multiply(m: rows, n: n, k: d, a: doh + r0 * ldq, lda: ldq, b: vb, ldb: ldk, transposeB: true,
                              c: dp, ldc: n)
                Parallel.forRanges(rows, minChunk: 64) { js in
                    for j in js {
                        let i = r0 + j
                        let di = Ops.dot(doh + i * ldq, oh + i * ldq, count: d)
                        Ops.softmaxBackward(p: p + j * n, dp: dp + j * n, count: n, d: di)
                    }
                }
                if let c = softcap {
                    // Through the cap: dS_raw = dS * (1 - tanh^2(S_raw / c)), S_raw recomputed into p (P is done).
                    Gemm.multiply(m: rows, n: n, k: d, a: qh + r0 * ldq, lda: ldq, b: kb, ldb: ldk, transposeB: true,
                                  c: p, ldc: n, alpha: scale)
                    Parallel.forRanges(rows, minChunk: 64) { js in
                        for j in js { Ops.softcapBackward(dp + j * n, raw: p + j * n, count: n, cap: c) }
                    }
                }
                // dq_h = dS k_g * scale ; dk_g += dS^T q_h * scale
                Gemm.multiply(m: rows, n: d, k: n, a: dp, lda: n, b: kb, ldb: ldk,
                              c: dq + (start + r0) * ldq + head * d, ldc: ldq, alpha: scale)
                Gemm.multiply(m: n, n: d, k: rows, a: dp, lda: n, transposeA: true, b: qh + r0 * ldq, ldb: ldq,
                              c: dk + (k0 + keys.lowerBound) * ldk + g * d, ldc: ldk, alpha: scale, accumulate: true)
            }
        }
    }

    /// `forwardCached` for a few rows over a ring buffer (a sliding-window layer's bounded cache): position j's key and
    /// value are in slot j % ringRows. scratch holds heads * window floats.
    func forwardCachedRing(q: UnsafePointer<Float>, kRing: UnsafePointer<Float>, vRing: UnsafePointer<Float>, ringRows r: Int,
                           out: UnsafeMutablePointer<Float>, past: Int, rows m: Int, scratch: UnsafeMutablePointer<Float>) {
        let (h, hkv, d) = (heads, kvHeads, headDim)
        let ldq = h * d, ldk = hkv * d, s = scale, width = window ?? r
        Parallel.forEach(h) { head in
            let g = head / (h / hkv)
            let row = scratch + head * width
            for i in 0..<m {
                let qi = q + i * ldq + head * d, range = visible(past + i), n = range.count
                for (x, j) in range.enumerated() { row[x] = s * Ops.dot(qi, kRing + (j % r) * ldk + g * d, count: d) }
                adjust(row, 0..<n, head: head, firstKey: range.lowerBound, query: past + i)
                Ops.softmax(row, range: 0..<n, count: n)
                let o = out + i * ldq + head * d
                o.update(repeating: 0, count: d)
                for (x, j) in range.enumerated() { Ops.axpy(row[x], vRing + (j % r) * ldk + g * d, o, count: d) }
            }
        }
    }

    /// Attention of `m` new query rows (absolute positions past..<past+m) over a cache holding keys/values for
    /// positions [0, past + m). kCache/vCache: [capacity, Hkv * D]. scratch holds m * (past + m) floats.
    func forwardCached(q: UnsafePointer<Float>, kCache: UnsafePointer<Float>, vCache: UnsafePointer<Float>,
                       out: UnsafeMutablePointer<Float>, past: Int, rows m: Int, scratch: UnsafeMutablePointer<Float>) {
        let (h, hkv, d) = (heads, kvHeads, headDim)
        let ldq = h * d, ldk = hkv * d, total = past + m
        if m > 8 {
            for head in 0..<h {
                let g = head / (h / hkv)
                Gemm.multiply(m: m, n: total, k: d, a: q + head * d, lda: ldq, b: kCache + g * d, ldb: ldk,
                              transposeB: true, c: scratch, ldc: total, alpha: scale)
                for i in 0..<m {
                    adjust(scratch + i * total, visible(past + i), head: head, firstKey: 0, query: past + i)
                    Ops.softmax(scratch + i * total, range: visible(past + i), count: total)
                }
                Gemm.multiply(m: m, n: d, k: total, a: scratch, lda: total, b: vCache + g * d, ldb: ldk,
                              c: out + head * d, ldc: ldq)
            }
            return
        }
        // Decode: a few rows, heads in parallel, plain loops (bandwidth-bound over the cache).
        let s = scale
        Parallel.forEach(h) { head in
            let g = head / (h / hkv)
            let row = scratch + head * total
            for i in 0..<m {
                let qi = q + i * ldq + head * d
                let range = visible(past + i)
                for j in range { row[j] = s * Ops.dot(qi, kCache + j * ldk + g * d, count: d) }
                adjust(row, range, head: head, firstKey: 0, query: past + i)
                Ops.softmax(row, range: range, count: past + i + 1)
                let o = out + i * ldq + head * d
                o.update(repeating: 0, count: d)
                for j in range { Ops.axpy(row[j], vCache + j * ldk + g * d, o, count: d) }
            }
        }
    }
}

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

    /// Attention of layer `layer` (its window depends on the layer in some Qwen2 configurations).
    init(config: ModelConfig, layer: Int = 0) {
        heads = config.headCount
        kvHeads = config.kvHeadCount
        headDim = config.headDim
        window = config.attentionWindow(layer: layer)
    }

    var scale: Float { 1 / Float(headDim).squareRoot() }

    /// Keys visible from query row i (0-based within its sequence, at absolute offset `past` from the cache start).
    func visible(_ i: Int) -> Range<Int> {
        let hi = i + 1
        let lo = window.map { max(0, hi - $0) } ?? 0
        return lo..<hi
    }

    /// out = softmax(q k^T * scale + causal mask) v for one sequence of T rows starting at `start`.
    func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                 out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>?, start: Int, length t: Int,
                 scratch: UnsafeMutablePointer<Float>) {
        let (h, hkv, d) = (heads, kvHeads, headDim)
        let ldq = h * d, ldk = hkv * d
        for head in 0..<h {
            let g = head / (h / hkv)
            let qh = q + start * ldq + head * d, kh = k + start * ldk + g * d, vh = v + start * ldk + g * d
            // S[T, T] = q_h k_g^T * scale
            Gemm.multiply(m: t, n: t, k: d, a: qh, lda: ldq, b: kh, ldb: ldk, transposeB: true, c: scratch, ldc: t,
                          alpha: scale)
            let lseOut = lse
            Parallel.forRanges(t, minChunk: 64) { rows in
                for i in rows {
                    let l = Ops.softmax(scratch + i * t, range: visible(i), count: t)
                    lseOut?[(start + i) * h + head] = l
                }
            }
            // out_h[T, D] = P v_g
            Gemm.multiply(m: t, n: d, k: t, a: scratch, lda: t, b: vh, ldb: ldk, c: out + start * ldq + head * d,
                          ldc: ldq)
        }
    }

    /// Gradients of `forward` for one sequence: dq (written), dk and dv (accumulated; zero them first).
    /// `out` is the forward output and `dout` its gradient. scratch holds 2 * T * T floats.
    func backward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                  out: UnsafePointer<Float>, lse: UnsafePointer<Float>, dout: UnsafePointer<Float>,
                  dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                  start: Int, length t: Int, scratch: UnsafeMutablePointer<Float>) {
        let (h, hkv, d) = (heads, kvHeads, headDim)
        let ldq = h * d, ldk = hkv * d
        let p = scratch, dp = scratch + t * t
        for head in 0..<h {
            let g = head / (h / hkv)
            let qh = q + start * ldq + head * d, kh = k + start * ldk + g * d, vh = v + start * ldk + g * d
            let oh = out + start * ldq + head * d, doh = dout + start * ldq + head * d
            // Recompute P from the saved logsumexp.
            Gemm.multiply(m: t, n: t, k: d, a: qh, lda: ldq, b: kh, ldb: ldk, transposeB: true, c: p, ldc: t, alpha: scale)
            Parallel.forRanges(t, minChunk: 64) { rows in
                for i in rows { Ops.expShifted(p + i * t, range: visible(i), count: t, lse: lse[(start + i) * h + head]) }
            }
            // dv_g += P^T dout_h
            Gemm.multiply(m: t, n: d, k: t, a: p, lda: t, transposeA: true, b: doh, ldb: ldq,
                          c: dv + start * ldk + g * d, ldc: ldk, accumulate: true)
            // dP = dout_h v_g^T ; dS = P * (dP - rowsum(dout * out)) * scale (scale folded into the next products)
            Gemm.multiply(m: t, n: t, k: d, a: doh, lda: ldq, b: vh, ldb: ldk, transposeB: true, c: dp, ldc: t)
            Parallel.forRanges(t, minChunk: 64) { rows in
                for i in rows {
                    let di = Ops.dot(doh + i * ldq, oh + i * ldq, count: d)
                    Ops.softmaxBackward(p: p + i * t, dp: dp + i * t, count: t, d: di)
                }
            }
            // dq_h = dS k_g * scale ; dk_g += dS^T q_h * scale
            Gemm.multiply(m: t, n: d, k: t, a: dp, lda: t, b: kh, ldb: ldk, c: dq + start * ldq + head * d, ldc: ldq,
                          alpha: scale)
            Gemm.multiply(m: t, n: d, k: t, a: dp, lda: t, transposeA: true, b: qh, ldb: ldq,
                          c: dk + start * ldk + g * d, ldc: ldk, alpha: scale, accumulate: true)
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
                for i in 0..<m { Ops.softmax(scratch + i * total, range: visible(past + i), count: total) }
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
                Ops.softmax(row, range: range, count: past + i + 1)
                let o = out + i * ldq + head * d
                o.update(repeating: 0, count: d)
                for j in range { Ops.axpy(row[j], vCache + j * ldk + g * d, o, count: d) }
            }
        }
    }
}

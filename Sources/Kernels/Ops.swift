import Foundation
import CKernels

/// Row-parallel wrappers over the C kernels. Shapes in `[rows, cols]`, row-major, contiguous.
public enum Ops {
    /// out[n, c] = w[c] * x[n, c] / sqrt(mean_c(x^2) + eps); rstd[n] saved for backward (optional).
    public static func rmsNormForward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                      out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>?,
                                      rows n: Int, cols c: Int, eps: Float) {
        Parallel.forRanges(n, minChunk: 16) { r in
            pk_rmsnorm_forward(x + r.lowerBound * c, weight, out + r.lowerBound * c,
                               rstd.map { $0 + r.lowerBound }, r.count, c, eps)
        }
    }

    /// dw[c] += sum_n dout[n, c] * x[n, c] * rstd[n]: the weight gradient of `rmsNormForward` (trainable norms).
    /// Columns are split across threads, so the accumulation never races.
    public static func rmsNormWeightGradient(_ dout: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                             rstd: UnsafePointer<Float>, rows n: Int, cols c: Int,
                                             into dw: UnsafeMutablePointer<Float>) {
        Parallel.forRanges(c, minChunk: 64) { cols in
            for r in 0..<n {
                let rs = rstd[r], dy = dout + r * c, xr = x + r * c
                for i in cols { dw[i] += dy[i] * xr[i] * rs }
            }
        }
    }

    /// dx[n, c] (+)= d/dx of `rmsNormForward` given dout (the weight gradient is `rmsNormWeightGradient`).
    public static func rmsNormBackward(_ dout: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                       weight: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                                       dx: UnsafeMutablePointer<Float>, rows n: Int, cols c: Int, accumulate: Bool) {
        Parallel.forRanges(n, minChunk: 16) { r in
            let o = r.lowerBound * c
            pk_rmsnorm_backward(dout + o, x + o, weight, rstd + r.lowerBound, dx + o, nil, r.count, c,
                                accumulate ? 1 : 0)
        }
    }

    /// Rotates the first `rotaryDim` (default: all) dimensions of each head of x[rows, heads * headDim] in place
    /// (rotate-half RoPE) by its row's position's angles from tables cos/sin [positions, rotaryDim / 2]; sign -1
    /// rotates back.
    /// `pairs`: rotate adjacent pairs (x[2i], x[2i+1]) instead (GLM).
    public static func rope(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, headDim: Int, rotaryDim: Int? = nil,
                            positions: UnsafePointer<Int32>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                            sign: Float, pairs: Bool = false) {
        if pairs {
            pk_rope_pairs(x, rows, heads, headDim, rotaryDim ?? headDim, positions, cos, sin, sign)
        } else {
            pk_rope(x, rows, heads, headDim, rotaryDim ?? headDim, positions, cos, sin, sign)
        }
    }

    /// x = cap * tanh(x / cap), elementwise (Gemma 2's logit soft-capping).
    /// `parallel` false keeps it on the calling thread (inside another parallel loop).
    public static func softcap(_ x: UnsafeMutablePointer<Float>, count: Int, cap: Float, parallel: Bool = true) {
        guard parallel else { pk_softcap(x, count, cap); return }
        Parallel.forRanges(count, minChunk: 16384) { r in pk_softcap(x + r.lowerBound, r.count, cap) }
    }

    /// dy *= d(cap * tanh(raw / cap))/d(raw) = 1 - tanh(raw / cap)^2, elementwise, from the raw (uncapped) values.
    public static func softcapBackward(_ dy: UnsafeMutablePointer<Float>, raw: UnsafePointer<Float>, count: Int, cap: Float) {
        pk_softcap_backward(dy, raw, count, cap)
    }

    /// out = gelu_tanh(gate) * up over `count` elements (Gemma's MLP).
    public static func gegluForward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                                    out: UnsafeMutablePointer<Float>, count: Int) {
        gated(pk_geglu_forward, gate: gate, up: up, out: out, count: count)
    }

    /// dgate, dup from dout for `gegluForward`.
    public static func gegluBackward(_ dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                                     dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, count: Int) {
        gatedBackward(pk_geglu_backward, dout, gate: gate, up: up, dgate: dgate, dup: dup, count: count)
    }

    /// A gated activation's C kernel over `count` elements, in parallel ranges.
    private static func gated(_ kernel: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void,
                              gate: UnsafePointer<Float>, up: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minChunk: 16384) { r in
            kernel(gate + r.lowerBound, up + r.lowerBound, out + r.lowerBound, r.count)
        }
    }

    /// The backward C kernel of a gated activation over `count` elements, in parallel ranges.
    private static func gatedBackward(
        _ kernel: @convention(c) (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?,
                                  UnsafeMutablePointer<Float>?, Int) -> Void,
        _ dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>, dgate: UnsafeMutablePointer<Float>,
        dup: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minChunk: 16384) { r in
            let o = r.lowerBound
            kernel(dout + o, gate + o, up + o, dgate + o, dup + o, r.count)
        }
    }

    /// out = silu(gate) * up over `count` elements.
    public static func swigluForward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                                     out: UnsafeMutablePointer<Float>, count: Int) {
        gated(pk_swiglu_forward, gate: gate, up: up, out: out, count: count)
    }

    /// dgate, dup from dout for `swigluForward`.
    public static func swigluBackward(_ dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                                      dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>, count: Int) {
        gatedBackward(pk_swiglu_backward, dout, gate: gate, up: up, dgate: dgate, dup: dup, count: count)
    }

    /// out[r, :] += bias for every row r of out[rows, cols].
    public static func addBias(_ bias: UnsafePointer<Float>, to out: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        Parallel.forRanges(rows, minChunk: max(1, 32768 / max(cols, 1))) { r in
            for i in r { pk_axpy(1, bias, out + i * cols, cols) }
        }
    }

    /// out = a + b over `count` elements.
    public static func sum(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                           count: Int) {
        Parallel.forRanges(count, minChunk: 65536) { r in
            for i in r { out[i] = a[i] + b[i] }
        }
    }

    /// y += x over `count` elements.
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        Parallel.forRanges(count, minChunk: 65536) { r in pk_axpy(1, x + r.lowerBound, y + r.lowerBound, r.count) }
    }

    /// y += alpha * x.
    /// Scales each row of x [rows, cols] to unit length (its squares summed in f64; a zero row stays zero), as
    /// torch's `F.normalize` (Baichuan2's NormHead).
    public static func normalizeRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        Parallel.forRanges(rows, minChunk: 64) { rs in
            for r in rs {
                let row = x + r * cols
                var sum = 0.0
                for j in 0..<cols { sum += Double(row[j]) * Double(row[j]) }
                let scale = Float(1 / max(sum.squareRoot(), 1e-12))
                for j in 0..<cols { row[j] *= scale }
            }
        }
    }

    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        pk_axpy(alpha, x, y, count)
    }

    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        pk_dot(a, b, count)
    }

    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double { pk_sumsq(x, count) }

    /// Softmax in place over row[lo..<hi]; the rest of row[0..<count] set to 0. Returns the logsumexp of the range.
    @discardableResult
    public static func softmax(_ row: UnsafeMutablePointer<Float>, range: Range<Int>, count: Int) -> Float {
        pk_softmax_row(row, range.lowerBound, range.upperBound, count)
    }

    /// row[j] = exp(row[j] - lse) on `range`, 0 elsewhere: softmax recomputed from its saved logsumexp.
    public static func expShifted(_ row: UnsafeMutablePointer<Float>, range: Range<Int>, count: Int, lse: Float) {
        pk_exp_shifted_row(row, range.lowerBound, range.upperBound, count, lse)
    }

    /// dp[j] = p[j] * (dp[j] - d): softmax backward for one row, d = sum_j p[j] dp[j].
    public static func softmaxBackward(p: UnsafePointer<Float>, dp: UnsafeMutablePointer<Float>, count: Int, d: Float) {
        pk_softmax_backward_row(p, dp, count, d)
    }

    /// log(sum(exp(row))) and the index of the maximum.
    public static func logSumExp(_ row: UnsafePointer<Float>, count: Int) -> (lse: Float, argmax: Int) {
        var arg: Int32 = 0
        let lse = pk_logsumexp(row, count, &arg)
        return (lse, Int(arg))
    }

    /// row <- (softmax(row) - onehot(target)) * scale, with lse = logsumexp(row): the cross-entropy gradient.
    public static func crossEntropyGradient(_ row: UnsafeMutablePointer<Float>, count: Int, lse: Float, target: Int,
                                            scale: Float) {
        pk_softmax_xent_grad(row, count, lse, Int32(target), scale)
    }

    /// Distillation's generalized JSD of one row and its gradient in the student's logits (see pk_gjsd_row);
    /// `scratch` holds 2 x `count` floats.
    public static func generalizedJSD(student: UnsafePointer<Float>, teacher: UnsafePointer<Float>, count: Int, beta: Float,
                                      inverseTemperature: Float, gradient: UnsafeMutablePointer<Float>?,
                                      scratch: UnsafeMutablePointer<Float>) -> Double {
        pk_gjsd_row(student, teacher, count, beta, inverseTemperature, gradient, scratch)
    }

    /// out = dropout(x): element i kept with probability 1 - p (scaled by 1 / (1 - p)); the mask is a pure
    /// function of (key, i), so `dropoutBackwardAdd` with the same key regenerates it.
    public static func dropout(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int, p: Float,
                               key: UInt64) {
        let scale = 1 / (1 - p)
        Parallel.forRanges(count, minChunk: 16384) { r in
            pk_dropout(x + r.lowerBound, out + r.lowerBound, r.count, key, p, scale, r.lowerBound)
        }
    }

    /// dx += dropout'(g): the gradient of `dropout` with the same key and p, accumulated.
    public static func dropoutBackwardAdd(_ g: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, count: Int,
                                          p: Float, key: UInt64) {
        let scale = 1 / (1 - p)
        Parallel.forRanges(count, minChunk: 16384) { r in
            pk_dropout_backward_add(g + r.lowerBound, dx + r.lowerBound, r.count, key, p, scale, r.lowerBound)
        }
    }

    /// One AdamW update (PyTorch's formulation) over `count` parameters.
    public static func adamW(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>,
                             m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
                             lr: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, step: Int) {
        let bc1 = 1 - Float(Double(beta1).power(step))
        let bc2 = Float((1 - Double(beta2).power(step)).squareRoot())
        pk_adamw(params, grads, m, v, count, lr, beta1, beta2, eps, weightDecay, bc1, bc2)
    }
}

extension Double {
    func power(_ n: Int) -> Double {
        var r = 1.0
        for _ in 0..<max(0, n) { r *= self }
        return r
    }
}

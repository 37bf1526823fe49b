import Foundation

/// Straightforward twins of the optimised kernels: the reference every optimised path is tested against.
public enum Naive {
    /// C[m, n] = A[m, k] · B[k, n] (B given as [n, k] when `transposeB`).
    public static func matmul(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int, transposeB: Bool) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k { s += Double(a[i * k + p]) * Double(transposeB ? b[j * k + p] : b[p * n + j]) }
                c[i * n + j] = Float(s)
            }
        }
        return c
    }

    public static func rmsNorm(_ x: [Float], weight: [Float], rows: Int, cols: Int, eps: Float) -> [Float] {
        var out = x
        for r in 0..<rows {
            var ss: Double = 0
            for c in 0..<cols { ss += Double(x[r * cols + c] * x[r * cols + c]) }
            let rs = 1 / (ss / Double(cols) + Double(eps)).squareRoot()
            for c in 0..<cols { out[r * cols + c] = weight[c] * Float(Double(x[r * cols + c]) * rs) }
        }
        return out
    }

    public static func silu(_ x: Float) -> Float { x / (1 + expf(-x)) }

    public static func swiglu(gate: [Float], up: [Float]) -> [Float] {
        zip(gate, up).map { silu($0) * $1 }
    }

    /// gelu_tanh(gate) * up in Double: 0.5 g (1 + tanh(sqrt(2/pi) (g + 0.044715 g^3))) * up.
    public static func geglu(gate: [Float], up: [Float]) -> [Float] {
        zip(gate, up).map { g, u in
            let x = Double(g)
            return Float(0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x))) * Double(u))
        }
    }

    /// cap * tanh(x / cap) in Double.
    public static func softcap(_ x: [Float], cap: Float) -> [Float] {
        x.map { Float(Double(cap) * tanh(Double($0) / Double(cap))) }
    }

    public static func softmax(_ x: [Float]) -> [Float] {
        let mx = x.max() ?? 0
        let e = x.map { Double(expf($0 - mx)) }
        let s = e.reduce(0, +)
        return e.map { Float($0 / s) }
    }

    public static func logSumExp(_ x: [Float]) -> Float {
        let mx = x.max() ?? 0
        return mx + Float(log(x.map { exp(Double($0 - mx)) }.reduce(0, +)))
    }

    /// PyTorch AdamW step `t` (1-based) on plain arrays.
    public static func adamW(params: inout [Float], grads: [Float], m: inout [Float], v: inout [Float], lr: Float,
                             beta1: Float, beta2: Float, eps: Float, weightDecay: Float, step t: Int) {
        let bc1 = 1 - powf(beta1, Float(t)), bc2 = 1 - powf(beta2, Float(t))
        for i in params.indices {
            params[i] *= 1 - lr * weightDecay
            m[i] = beta1 * m[i] + (1 - beta1) * grads[i]
            v[i] = beta2 * v[i] + (1 - beta2) * grads[i] * grads[i]
            params[i] -= lr / bc1 * m[i] / ((v[i]).squareRoot() / bc2.squareRoot() + eps)
        }
    }
}

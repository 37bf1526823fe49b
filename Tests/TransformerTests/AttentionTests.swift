import Foundation
import Kernels
import TestSupport
@testable import Transformer
import XCTest

/// The attention op on its own: forward against a naive softmax(QK^T)V with GQA and a causal (optionally sliding)
/// mask, backward against finite differences, and RoPE's inverse.
final class AttentionTests: XCTestCase {
    func config(heads: Int = 4, kvHeads: Int = 2, headDim: Int = 8, window: Int? = nil) -> ModelConfig {
        ModelConfig(architecture: .qwen2, hiddenSize: heads * headDim, intermediateSize: 16, layerCount: 1, headCount: heads,
                    kvHeadCount: kvHeads, headDim: headDim, vocabSize: 10, tieWordEmbeddings: true, slidingWindow: window)
    }

    /// out[t, h, :] = sum_j softmax_j(q_t . k_j / sqrt(D)) v_j over visible j, in Double.
    func naive(_ q: [Float], _ k: [Float], _ v: [Float], t: Int, c: ModelConfig) -> [Float] {
        let (h, g, d) = (c.headCount, c.kvHeadCount, c.headDim)
        var out = [Float](repeating: 0, count: t * h * d)
        for i in 0..<t {
            for head in 0..<h {
                let kvh = head / (h / g)
                let lo = c.slidingWindow.map { max(0, i + 1 - $0) } ?? 0
                var scores: [Double] = []
                for j in lo...i {
                    var s = 0.0
                    for x in 0..<d { s += Double(q[i * h * d + head * d + x]) * Double(k[j * g * d + kvh * d + x]) }
                    scores.append(s / Double(d).squareRoot())
                }
                let m = scores.max()!
                let e = scores.map { exp($0 - m) }
                let z = e.reduce(0, +)
                for x in 0..<d {
                    var acc = 0.0
                    for (n, j) in (lo...i).enumerated() { acc += e[n] / z * Double(v[j * g * d + kvh * d + x]) }
                    out[i * h * d + head * d + x] = Float(acc)
                }
            }
        }
        return out
    }

    /// Query blocks of 2 rows: every test crosses block boundaries (the default block is 256 rows).
    let block = 2

    func run(_ q: [Float], _ k: [Float], _ v: [Float], t: Int, c: ModelConfig) -> (out: [Float], lse: [Float]) {
        var out = [Float](repeating: 0, count: t * c.qDim), lse = [Float](repeating: 0, count: t * c.headCount)
        let scratch = FloatBuffer(count: Attention.scratchCount(longest: t, queryBlock: block))
        Attention(config: c, queryBlock: block).forward(q: q, k: k, v: v, out: &out, lse: &lse, start: 0, length: t, scratch: scratch.pointer)
        return (out, lse)
    }

    func testForwardMatchesNaiveWithGQAAndWindows() {
        for window in [nil, 3] {
            let c = config(window: window), t = 7
            let q = randomArray(t * c.qDim, seed: 1), k = randomArray(t * c.kvDim, seed: 2), v = randomArray(t * c.kvDim, seed: 3)
            assertClose(run(q, k, v, t: t, c: c).out, naive(q, k, v, t: t, c: c), atol: 1e-5, "window \(String(describing: window))")
        }
    }

    func testBackwardMatchesFiniteDifferences() {
        for window in [nil, 3] {
            let c = config(window: window), t = 6
            let q = randomArray(t * c.qDim, seed: 4), k = randomArray(t * c.kvDim, seed: 5), v = randomArray(t * c.kvDim, seed: 6)
            let g = randomArray(t * c.qDim, seed: 7)  // loss = sum(out * g)
            let (out, lse) = run(q, k, v, t: t, c: c)
            var dq = [Float](repeating: 0, count: q.count), dk = [Float](repeating: 0, count: k.count)
            var dv = [Float](repeating: 0, count: v.count)
            let scratch = FloatBuffer(count: Attention.scratchCount(longest: t, queryBlock: block))
            Attention(config: c, queryBlock: block).backward(q: q, k: k, v: v, out: out, lse: lse, dout: g, dq: &dq, dk: &dk, dv: &dv,
                                          start: 0, length: t, scratch: scratch.pointer)
            func loss(_ q: [Float], _ k: [Float], _ v: [Float]) -> Double {
                zip(naive(q, k, v, t: t, c: c), g).reduce(0) { $0 + Double($1.0) * Double($1.1) }
            }
            // f32 inputs perturbed by 1e-3 around a Double reference: agreement to ~1e-3.
            assertClose(dq, finiteDifferenceGradient(q) { loss($0, k, v) }, atol: 2e-3, rtol: 1e-2, "dq")
            assertClose(dk, finiteDifferenceGradient(k) { loss(q, $0, v) }, atol: 2e-3, rtol: 1e-2, "dk")
            assertClose(dv, finiteDifferenceGradient(v) { loss(q, k, $0) }, atol: 2e-3, rtol: 1e-2, "dv")
        }
    }

    func testCachedAttentionEqualsFullForward() {
        let c = config(), t = 9
        let q = randomArray(t * c.qDim, seed: 8), k = randomArray(t * c.kvDim, seed: 9), v = randomArray(t * c.kvDim, seed: 10)
        let full = run(q, k, v, t: t, c: c).out
        // The last 3 rows against a cache holding all 9 keys: decode path (<= 8 rows) and GEMM path.
        for rows in [1, 3] {
            var out = [Float](repeating: 0, count: rows * c.qDim)
            let scratch = FloatBuffer(count: max(rows, c.headCount) * t)
            Attention(config: c).forwardCached(q: Array(q[((t - rows) * c.qDim)...]), kCache: k, vCache: v, out: &out,
                                               past: t - rows, rows: rows, scratch: scratch.pointer)
            assertClose(out, Array(full[((t - rows) * c.qDim)...]), atol: 1e-5, "rows \(rows)")
        }
    }

    func testRoPEInverseUndoesForwardAndMatchesRotateHalf() {
        let c = config()
        let rope = RoPE(config: c)
        rope.reserve(16)
        let x = randomArray(3 * c.qDim, seed: 11)
        var y = x
        let positions: [Int32] = [0, 5, 15]
        rope.apply(&y, rows: 3, heads: c.headCount, positions: positions)
        XCTAssertEqual(Array(y[0..<c.qDim]), Array(x[0..<c.qDim]), "position 0 is the identity")
        // Row 1, head 0, pair 1: rotation by 5 * theta^(-2/D).
        let d = c.headDim, half = d / 2, i = 1
        let angle = Double(Float(5) * (1 / Float(pow(10000.0, Double(2 * i) / Double(d)))))
        let (a, b) = (Double(x[c.qDim + i]), Double(x[c.qDim + i + half]))
        XCTAssertEqual(Double(y[c.qDim + i]), a * cos(angle) - b * sin(angle), accuracy: 1e-5)
        XCTAssertEqual(Double(y[c.qDim + i + half]), b * cos(angle) + a * sin(angle), accuracy: 1e-5)
        rope.apply(&y, rows: 3, heads: c.headCount, positions: positions, inverse: true)
        assertClose(y, x, atol: 1e-5)
    }
}

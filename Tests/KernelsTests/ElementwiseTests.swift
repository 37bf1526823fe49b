import Foundation
import Kernels
import TestSupport
import XCTest

/// Row kernels against their naive twins, and their backward passes against finite differences.
/// Every test runs each CPU tier this machine has (the scalar twin always).
final class ElementwiseTests: XCTestCase {
    private func bothPaths(_ body: (String) -> Void) { forEachCPUTier(body) }

    func testConversions() {
        // bf16 rounds to nearest even; 1 + 2^-8 is a tie between 1 and 1 + 2^-7 -> 1.
        XCTAssertEqual(Convert.bf16(1.0 + 1.0 / 256), 0x3F80)
        XCTAssertEqual(Convert.bf16(1.0 + 3.0 / 256), 0x3F82)
        XCTAssertEqual(Convert.float(bf16: 0xC040), -3.0)
        XCTAssertTrue(Convert.float(bf16: Convert.bf16(.nan)).isNaN)
        XCTAssertEqual(Convert.float(bf16: Convert.bf16(.infinity)), .infinity)
        bothPaths { path in
            let x = randomArray(1000, seed: 11, scale: 100)
            var bits = [UInt16](repeating: 0, count: x.count)
            var back = [Float](repeating: 0, count: x.count)
            Convert.fromFloat(x, dtype: .bfloat16, into: &bits, count: x.count)
            Convert.toFloat(bits, dtype: .bfloat16, into: &back, count: x.count)
            for i in x.indices { XCTAssertEqual(back[i], x[i], accuracy: abs(x[i]) / 128, path) }
            Convert.fromFloat(x, dtype: .float16, into: &bits, count: x.count)
            Convert.toFloat(bits, dtype: .float16, into: &back, count: x.count)
            for i in x.indices { XCTAssertEqual(back[i], x[i], accuracy: abs(x[i]) / 1024, path) }
        }
        // f16 specials: subnormal, overflow, negative zero.
        var bits = [UInt16](repeating: 0, count: 4)
        let specials: [Float] = [5.960464477539063e-08, 70000, -0.0, 65504]
        Convert.fromFloat(specials, dtype: .float16, into: &bits, count: 4)
        XCTAssertEqual(bits, [0x0001, 0x7C00, 0x8000, 0x7BFF])
        var back = [Float](repeating: 0, count: 4)
        Convert.toFloat(bits, dtype: .float16, into: &back, count: 4)
        XCTAssertEqual(back[0], 5.960464477539063e-08)
        XCTAssertEqual(back[3], 65504)
    }

    func testRMSNormForwardAndGradient() {
        let (n, c) = (5, 37)
        let w = randomArray(c, seed: 12, scale: 2)
        let eps: Float = 1e-6
        bothPaths { path in
            let x = randomArray(n * c, seed: 13)
            var out = [Float](repeating: 0, count: n * c), rstd = [Float](repeating: 0, count: n)
            Ops.rmsNormForward(x, weight: w, out: &out, rstd: &rstd, rows: n, cols: c, eps: eps)
            assertClose(out, Naive.rmsNorm(x, weight: w, rows: n, cols: c, eps: eps), atol: 1e-5, path)
            // Loss L = sum(out * g) for a fixed g; dL/dx by backward vs finite differences.
            let g = randomArray(n * c, seed: 14)
            var dx = [Float](repeating: 0, count: n * c)
            Ops.rmsNormBackward(g, x: x, weight: w, rstd: rstd, dx: &dx, rows: n, cols: c, accumulate: false)
            let fd = finiteDifferenceGradient(x, indices: [0, 7, 40, 100, 184]) { xs in
                let y = Naive.rmsNorm(xs, weight: w, rows: n, cols: c, eps: eps)
                return zip(y, g).reduce(0) { $0 + Double($1.0 * $1.1) }
            }
            // Finite differences in f32 with step 1e-3: agreement to ~2e-3.
            assertClose([0, 7, 40, 100, 184].map { dx[$0] }, fd, atol: 2e-3, rtol: 1e-2, path)
        }
    }

    /// A gated activation's forward against its Double definition and its backward against finite differences.
    func checkGated(forward: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
                    backward: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>,
                               UnsafeMutablePointer<Float>, Int) -> Void,
                    naive: @escaping ([Float], [Float]) -> [Float], seed: UInt64, _ label: String) {
        let count = 45
        let gate = randomArray(count, seed: seed, scale: 6), up = randomArray(count, seed: seed + 1, scale: 2)
        var out = [Float](repeating: 0, count: count)
        forward(gate, up, &out, count)
        assertClose(out, naive(gate, up), atol: 1e-5, label)
        let dout = randomArray(count, seed: seed + 2)
        var dg = [Float](repeating: 0, count: count), du = [Float](repeating: 0, count: count)
        backward(dout, gate, up, &dg, &du, count)
        let loss: ([Float], [Float]) -> Double = { g, u in zip(naive(g, u), dout).reduce(0) { $0 + Double($1.0 * $1.1) } }
        assertClose(dg, finiteDifferenceGradient(gate) { loss($0, up) }, atol: 2e-3, rtol: 1e-2, "dgate \(label)")
        assertClose(du, finiteDifferenceGradient(up) { loss(gate, $0) }, atol: 2e-3, rtol: 1e-2, "dup \(label)")
    }

    func testSwiGLUForwardAndGradient() {
        bothPaths { path in
            checkGated(forward: { Ops.swigluForward(gate: $0, up: $1, out: $2, count: $3) },
                       backward: { Ops.swigluBackward($0, gate: $1, up: $2, dgate: $3, dup: $4, count: $5) },
                       naive: Naive.swiglu, seed: 15, path)
        }
    }

    func testGeGLUForwardAndGradient() {
        bothPaths { path in
            checkGated(forward: { Ops.gegluForward(gate: $0, up: $1, out: $2, count: $3) },
                       backward: { Ops.gegluBackward($0, gate: $1, up: $2, dgate: $3, dup: $4, count: $5) },
                       naive: Naive.geglu, seed: 25, "geglu \(path)")
        }
    }

    /// cap * tanh(x / cap) on every tier against its definition (values near 0, around the vector bodies' switch to
    /// their series at |x / cap| = 0.125, and far out), and its backward against finite differences.
    func testSoftcapAndItsGradient() {
        bothPaths { path in
            var x = randomArray(37, seed: 28, scale: 20) + [0, 1e-5, -1e-5, 0.37, -0.38, 0.4, 300, -300]
            let raw = x
            Ops.softcap(&x, count: x.count, cap: 3)
            assertClose(x, Naive.softcap(raw, cap: 3), atol: 1e-6, rtol: 2e-6, path)
            XCTAssertTrue(x.allSatisfy { abs($0) <= 3 }, path)
            let dy = randomArray(raw.count, seed: 29)
            var grad = dy
            Ops.softcapBackward(&grad, raw: raw, count: raw.count, cap: 3)
            let loss: ([Float]) -> Double = { v in zip(Naive.softcap(v, cap: 3), dy).reduce(0) { $0 + Double($1.0 * $1.1) } }
            assertClose(grad, finiteDifferenceGradient(raw, loss), atol: 2e-3, rtol: 1e-2, "softcap backward \(path)")
        }
    }

    /// GLM's rotary on adjacent pairs of the first half of each head, against its definition; rotating back restores.
    func testRoPEOnAdjacentPairs() {
        let (rows, heads, d, rot, positions) = (4, 2, 16, 8, 7)
        let half = rot / 2
        var cosT = [Float](repeating: 0, count: positions * half), sinT = cosT
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Double(p) * pow(10000, -Double(2 * i) / Double(rot))
                cosT[p * half + i] = Float(cos(angle))
                sinT[p * half + i] = Float(sin(angle))
            }
        }
        let pos: [Int32] = [0, 6, 2, 5]
        let x = randomArray(rows * heads * d, seed: 29)
        var y = x
        Ops.rope(&y, rows: rows, heads: heads, headDim: d, rotaryDim: rot, positions: pos, cos: cosT, sin: sinT, sign: 1,
                 pairs: true)
        for r in 0..<rows {
            for h in 0..<heads {
                let at = (r * heads + h) * d
                for i in 0..<half {
                    let c = Double(cosT[Int(pos[r]) * half + i]), s = Double(sinT[Int(pos[r]) * half + i])
                    let a = Double(x[at + 2 * i]), b = Double(x[at + 2 * i + 1])
                    XCTAssertEqual(Double(y[at + 2 * i]), a * c - b * s, accuracy: 1e-6)
                    XCTAssertEqual(Double(y[at + 2 * i + 1]), b * c + a * s, accuracy: 1e-6)
                }
                for i in rot..<d { XCTAssertEqual(y[at + i], x[at + i]) }
            }
        }
        Ops.rope(&y, rows: rows, heads: heads, headDim: d, rotaryDim: rot, positions: pos, cos: cosT, sin: sinT, sign: -1,
                 pairs: true)
        assertClose(y, x, atol: 1e-6)
    }

    func testSoftmaxLogSumExpAndCrossEntropyGradient() {
        bothPaths { path in
            let n = 53
            let x = randomArray(n, seed: 18, scale: 10)
            var row = [7, 7] + x + [7, 7, 7]
            let rowLSE = Ops.softmax(&row, range: 2..<(n + 2), count: n + 5)
            assertClose(Array(row[2..<(n + 2)]), Naive.softmax(x), atol: 1e-6, path)
            XCTAssertEqual(Array(row[0..<2]) + Array(row[(n + 2)...]), [0, 0, 0, 0, 0])
            XCTAssertEqual(rowLSE, Naive.logSumExp(x), accuracy: 1e-5)
            var again = [7, 7] + x + [7, 7, 7]
            Ops.expShifted(&again, range: 2..<(n + 2), count: n + 5, lse: rowLSE)
            assertClose(again, row, atol: 1e-6, "recomputed softmax \(path)")
            // Softmax backward: d/dx of sum(softmax(x) * g).
            let g = randomArray(n, seed: 19)
            let p = Naive.softmax(x)
            var dp = g
            Ops.softmaxBackward(p: p, dp: &dp, count: n, d: zip(p, g).reduce(0) { $0 + $1.0 * $1.1 })
            let fdSoftmax = finiteDifferenceGradient(x) { xs in zip(Naive.softmax(xs), g).reduce(0) { $0 + Double($1.0 * $1.1) } }
            assertClose(dp, fdSoftmax, atol: 1e-3, "softmax backward \(path)")
            let (lse, argmax) = Ops.logSumExp(x, count: n)
            XCTAssertEqual(lse, Naive.logSumExp(x), accuracy: 1e-5)
            XCTAssertEqual(argmax, x.indices.max { x[$0] < x[$1] })
            // d/dx of scale * (lse - x[target]).
            let target = 11, scale: Float = 0.25
            var grad = x
            Ops.crossEntropyGradient(&grad, count: n, lse: lse, target: target, scale: scale)
            let fd = finiteDifferenceGradient(x) { xs in Double(scale) * Double(Naive.logSumExp(xs) - xs[target]) }
            assertClose(grad, fd, atol: 1e-3, path)
        }
    }

    func testAdamWMatchesNaiveOverSteps() {
        let n = 40
        var p = randomArray(n, seed: 19), m = [Float](repeating: 0, count: n), v = m
        var pRef = p, mRef = m, vRef = m
        for step in 1...5 {
            let g = randomArray(n, seed: UInt64(20 + step))
            Ops.adamW(params: &p, grads: g, m: &m, v: &v, count: n, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8,
                      weightDecay: 0.01, step: step)
            Naive.adamW(params: &pRef, grads: g, m: &mRef, v: &vRef, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8,
                        weightDecay: 0.01, step: step)
        }
        assertClose(p, pRef, atol: 1e-6)
    }

    func testDotAndSumOfSquares() {
        bothPaths { path in
            for n in [1, 15, 16, 17, 33, 100] {
                let a = randomArray(n, seed: 30), b = randomArray(n, seed: 31)
                let expected = zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 }
                XCTAssertEqual(Ops.dot(a, b, count: n), expected, accuracy: 1e-5, "\(path) n=\(n)")
            }
        }
        XCTAssertEqual(Ops.sumOfSquares([3, 4], count: 2), 25)
    }

    func testSeededGeneratorIsReproducible() {
        var a = SeededGenerator(seed: 7), b = SeededGenerator(seed: 7), c = SeededGenerator(seed: 8)
        let xa = (0..<5).map { _ in a.next() }, xb = (0..<5).map { _ in b.next() }
        XCTAssertEqual(xa, xb)
        XCTAssertNotEqual(xa, (0..<5).map { _ in c.next() })
        let u = (0..<10000).map { _ in a.nextUniform() }
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(u.reduce(0, +) / 10000, 0.5, accuracy: 0.02)
        let normals = (0..<10000).map { _ in a.nextNormal() }
        let mean = normals.reduce(0, +) / 10000
        let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 10000
        XCTAssertEqual(mean, 0, accuracy: 0.05)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
    }

    /// RoPE against its definition in Double on every tier, over the whole head and over its first half (partial
    /// rotary: the rest passes through); rotating back restores the input.
    func testRoPEMatchesNaiveAndInverts() {
        let (rows, heads, d, positions) = (5, 3, 16, 9)
        for rot in [d, d / 2] {
            let half = rot / 2
            var cosT = [Float](repeating: 0, count: positions * half), sinT = cosT
            for p in 0..<positions {
                for i in 0..<half {
                    let angle = Double(p) * pow(10000, -Double(2 * i) / Double(rot))
                    cosT[p * half + i] = Float(cos(angle))
                    sinT[p * half + i] = Float(sin(angle))
                }
            }
            let pos: [Int32] = [0, 3, 8, 1, 5]
            let x = randomArray(rows * heads * d, seed: 41)
            bothPaths { path in
                var y = x
                Ops.rope(&y, rows: rows, heads: heads, headDim: d, rotaryDim: rot, positions: pos, cos: cosT, sin: sinT, sign: 1)
                for r in 0..<rows {
                    for h in 0..<heads {
                        let at = (r * heads + h) * d
                        for i in 0..<half {
                            let c = Double(cosT[Int(pos[r]) * half + i]), s = Double(sinT[Int(pos[r]) * half + i])
                            let a = Double(x[at + i]), b = Double(x[at + i + half])
                            XCTAssertEqual(Double(y[at + i]), a * c - b * s, accuracy: 1e-6, path)
                            XCTAssertEqual(Double(y[at + i + half]), b * c + a * s, accuracy: 1e-6, path)
                        }
                        for i in rot..<d { XCTAssertEqual(y[at + i], x[at + i], path) }
                    }
                }
                Ops.rope(&y, rows: rows, heads: heads, headDim: d, rotaryDim: rot, positions: pos, cos: cosT, sin: sinT, sign: -1)
                assertClose(y, x, atol: 1e-6, path)
            }
        }
    }
}

import Kernels
import TestSupport
import XCTest

/// The GEMM back ends (oneDNN, the built-in GEMM on every CPU tier) and the bf16/GEMV paths of `WeightMatrix` against
/// `Naive.matmul` (computed in Double).
final class GemmTests: XCTestCase {
    /// Every backend present on this machine (oneDNN only where libdnnl.so.2 is installed).
    var backends: [Gemm.Backend] { Gemm.availableBackends }

    func testAllTransposeCombinationsMatchNaive() {
        for backend in backends {
            forEachCPUTier { tier in
                for (m, n, k) in [(37, 29, 53), (5, 70, 300), (100, 33, 7), (13, 47, 600)] {
                    checkTransposes(m: m, n: n, k: k, backend: backend, tier: tier)
                }
            }
        }
    }

    func checkTransposes(m: Int, n: Int, k: Int, backend: Gemm.Backend, tier: String) {
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                let a = randomArray(m * k, seed: 1), b = randomArray(k * n, seed: 2)
                // Lay A out as [k, m] when transposed, B as [n, k] when transposed.
                let aStored = transposeA ? transpose(a, rows: m, cols: k) : a
                var c = [Float](repeating: 0, count: m * n)
                aStored.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        c.withUnsafeMutableBufferPointer { cp in
                            Gemm.multiply(m: m, n: n, k: k, a: ap.baseAddress!, lda: transposeA ? m : k,
                                          transposeA: transposeA, b: bp.baseAddress!, ldb: transposeB ? k : n,
                                          transposeB: transposeB, c: cp.baseAddress!, ldc: n, backend: backend)
                        }
                    }
                }
                let bLogical = transposeB ? transpose(b, rows: n, cols: k) : b
                // f32 accumulation over <= 600 terms of magnitude <= 1: error well under 2e-4.
                assertClose(c, Naive.matmul(a, bLogical, m: m, n: n, k: k, transposeB: false), atol: 2e-4,
                            "\(backend) \(tier) \(m)x\(n)x\(k) transposeA \(transposeA) transposeB \(transposeB)")
            }
        }
    }

    func testAlphaAndAccumulate() {
        for backend in backends { forEachCPUTier { _ in checkAlphaAndAccumulate(backend) } }
    }

    func checkAlphaAndAccumulate(_ backend: Gemm.Backend) {
        let (m, n, k) = (16, 24, 8)
        let a = randomArray(m * k, seed: 3), b = randomArray(n * k, seed: 4)
        let start = randomArray(m * n, seed: 5)
        var c = start
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    Gemm.multiply(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k,
                                  transposeB: true, c: cp.baseAddress!, ldc: n, alpha: 0.5, accumulate: true,
                                  backend: backend)
                }
            }
        }
        let expected = zip(start, Naive.matmul(a, b, m: m, n: n, k: k, transposeB: true)).map { $0 + 0.5 * $1 }
        assertClose(c, expected, atol: 1e-5)
    }

    func testStridedOutputColumns() {
        for backend in backends { forEachCPUTier { _ in checkStridedOutput(backend) } }
    }

    func checkStridedOutput(_ backend: Gemm.Backend) {
        // Writing into a column slice of a wider matrix (ldc > n) must leave other columns untouched.
        let (m, n, k, ldc) = (9, 5, 7, 12)
        let a = randomArray(m * k, seed: 6), b = randomArray(n * k, seed: 7)
        var c = [Float](repeating: 42, count: m * ldc)
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    Gemm.multiply(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: k,
                                  transposeB: true, c: cp.baseAddress! + 3, ldc: ldc, backend: backend)
                }
            }
        }
        let expected = Naive.matmul(a, b, m: m, n: n, k: k, transposeB: true)
        for r in 0..<m {
            for j in 0..<ldc {
                if j >= 3 && j < 3 + n {
                    XCTAssertEqual(c[r * ldc + j], expected[r * n + j - 3], accuracy: 1e-5)
                } else {
                    XCTAssertEqual(c[r * ldc + j], 42)
                }
            }
        }
    }

    /// The meaning of each storage type, stated once and checked on every backend and tier: an f32 matrix multiplies
    /// the f32 inputs; a bf16 matrix multiplies the inputs (or, backward, the output gradients) rounded to bf16 with
    /// f32 accumulation, whatever the number of rows, the backend or the CPU.
    func testWeightMatrixForwardAndBackwardEveryPath() {
        let (rows, cols) = (45, 70)  // out, in
        let w = randomArray(rows * cols, seed: 8)
        let wBF16 = w.map { Convert.bf16($0) }
        let wRounded = wBF16.map { Convert.float(bf16: $0) }
        let f32 = w.withUnsafeBufferPointer { WeightMatrix(rows: rows, cols: cols, values: $0.baseAddress!) }
        let bfBuffer = HalfBuffer(count: rows * cols)
        for i in 0..<(rows * cols) { bfBuffer.pointer[i] = wBF16[i] }
        let bf = WeightMatrix(rows: rows, cols: cols, storage: .bfloat16(UnsafePointer(bfBuffer.pointer)), owner: bfBuffer)
        func rounded(_ v: [Float]) -> [Float] { v.map { Convert.float(bf16: Convert.bf16($0)) } }
        for backend in backends {
            Gemm.withBackend(backend) {
                forEachCPUTier(bf16DotVariants: true) { tier in
                    for m in [1, 3, 8, 9, 33, 70] {  // GEMV (1 row), small tiles, GEMM and widened bf16 panels
                        let x = randomArray(m * cols, seed: UInt64(m))
                        for (matrix, reference) in [(f32, w), (bf, wRounded)] {
                            let bf16 = matrix.dtype == .bfloat16
                            var y = [Float](repeating: 0, count: m * rows)
                            x.withUnsafeBufferPointer { xp in
                                y.withUnsafeMutableBufferPointer { matrix.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) }
                            }
                            // f32 sums of 70 products of magnitude <= 1 in another order: 2e-5 covers it; rounding
                            // the inputs on one side only would be off by up to 1e-2.
                            assertClose(y, Naive.matmul(bf16 ? rounded(x) : x, reference, m: m, n: rows, k: cols, transposeB: true),
                                        atol: 2e-5, rtol: 1e-5, "forward m=\(m) \(matrix.dtype) \(backend) \(tier)")
                            let dy = randomArray(m * rows, seed: UInt64(100 + m))
                            var dx = [Float](repeating: 1, count: m * cols)
                            dy.withUnsafeBufferPointer { dp in
                                dx.withUnsafeMutableBufferPointer {
                                    matrix.backwardInput(dp.baseAddress!, rows: m, into: $0.baseAddress!, accumulate: true)
                                }
                            }
                            let expected = Naive.matmul(bf16 ? rounded(dy) : dy, reference, m: m, n: cols, k: rows,
                                                        transposeB: false).map { $0 + 1 }
                            assertClose(dx, expected, atol: 2e-5, rtol: 1e-5, "backward m=\(m) \(matrix.dtype) \(backend) \(tier)")
                        }
                    }
                }
            }
        }
    }

    /// Products of bf16 weights (inputs rounded to bf16, the CPU's bf16 dot product where it has one, both operands
    /// widened otherwise) equal the product of the rounded values, and a row's result is the same bits whatever the
    /// number of rows multiplied with it: batched decoding must equal decoding alone.
    func testBF16DecodeProductsAreRowIndependent() {
        for (rows, cols) in [(45, 70), (9, 96), (130, 33)] {
            let w = randomArray(rows * cols, seed: 21).map { Convert.bf16($0) }
            let buffer = HalfBuffer(count: rows * cols)
            for i in w.indices { buffer.pointer[i] = w[i] }
            let matrix = WeightMatrix(rows: rows, cols: cols, storage: .bfloat16(UnsafePointer(buffer.pointer)), owner: buffer)
            forEachCPUTier(bf16DotVariants: true) { tier in
                let m = 11
                let x = randomArray(m * cols, seed: 22)
                func product(_ input: ArraySlice<Float>, rows count: Int) -> [Float] {
                    var y = [Float](repeating: 0, count: count * rows)
                    Array(input).withUnsafeBufferPointer { xp in
                        y.withUnsafeMutableBufferPointer { matrix.forward(xp.baseAddress!, rows: count, into: $0.baseAddress!, exact: false) }
                    }
                    return y
                }
                let all = product(x[...], rows: m)
                let rounded = x.map { Convert.float(bf16: Convert.bf16($0)) }
                assertClose(all, Naive.matmul(rounded, w.map { Convert.float(bf16: $0) }, m: m, n: rows, k: cols, transposeB: true),
                            atol: 2e-5 * Float(cols), "\(rows)x\(cols) \(tier)")
                for count in [1, 2, 3, 4, 5, 8] {
                    for start in stride(from: 0, to: m - count + 1, by: 3) {
                        let part = product(x[(start * cols)..<((start + count) * cols)], rows: count)
                        XCTAssertEqual(part, Array(all[(start * rows)..<((start + count) * rows)]),
                                       "rows \(start)..<\(start + count) of \(rows)x\(cols) \(tier)")
                    }
                }
            }
        }
    }

    func testGemvAccumulate() {
        forEachCPUTier { _ in checkGemvAccumulate() }
    }

    func checkGemvAccumulate() {
        let (rows, cols) = (20, 33)
        let w = randomArray(rows * cols, seed: 9)
        let matrix = w.withUnsafeBufferPointer { WeightMatrix(rows: rows, cols: cols, values: $0.baseAddress!) }
        let x = randomArray(2 * cols, seed: 10)
        var y = [Float](repeating: 0.25, count: 2 * rows)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { matrix.forward(xp.baseAddress!, rows: 2, into: $0.baseAddress!, accumulate: true) }
        }
        assertClose(y, Naive.matmul(x, w, m: 2, n: rows, k: cols, transposeB: true).map { $0 + 0.25 }, atol: 1e-5)
    }

    private func transpose(_ a: [Float], rows: Int, cols: Int) -> [Float] {
        var t = [Float](repeating: 0, count: a.count)
        for r in 0..<rows { for c in 0..<cols { t[c * rows + r] = a[r * cols + c] } }
        return t
    }
}

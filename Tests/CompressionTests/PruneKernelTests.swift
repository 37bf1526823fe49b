import Compression
import Foundation
import Kernels
import XCTest

/// The pieces of pruning against naive restatements: masks, SparseGPT's inverse-Hessian factor.
final class PruneKernelTests: XCTestCase {
    func testInverseFactorIsTheUpperCholeskyFactorOfTheDampedInverse() throws {
        var rng = SeededGenerator(seed: 4)
        for n in [1, 5, 37, 150] {
            // H = X^T X / rows + one dead input (zero row and column).
            let rows = 3 * n
            let x = (0..<(rows * n)).map { _ in Double.random(in: -1...1, using: &rng) }
            var h = [Double](repeating: 0, count: n * n)
            for i in 0..<n { for j in 0..<n { for r in 0..<rows where i != n / 2 && j != n / 2 { h[i * n + j] += x[r * n + i] * x[r * n + j] / Double(rows) } } }
            let (u, dead) = try SparseGPT.inverseFactor(hessian: h, cols: n, percentDamp: 0.01)
            XCTAssertEqual(dead, (0..<n).map { $0 == n / 2 })
            // The matrix that was inverted: dead diagonal 1, then damp = 0.01 * mean diagonal.
            var a = h
            a[(n / 2) * n + n / 2] = 1
            let damp = 0.01 * (0..<n).reduce(0.0) { $0 + a[$1 * n + $1] } / Double(n)
            for i in 0..<n { a[i * n + i] += damp }
            for i in 0..<n {
                XCTAssertGreaterThan(u[i * n + i], 0)
                for j in 0..<i { XCTAssertEqual(u[i * n + j], 0) }
            }
            // (U^T U) A = I.
            var inv = [Double](repeating: 0, count: n * n)
            for i in 0..<n { for k in 0..<n { for m in 0...min(i, k) { inv[i * n + k] += u[m * n + i] * u[m * n + k] } } }
            var worst = 0.0
            for i in 0..<n {
                for j in 0..<n {
                    var s = 0.0
                    for k in 0..<n { s += inv[i * n + k] * a[k * n + j] }
                    worst = max(worst, abs(s - (i == j ? 1 : 0)))
                }
            }
            XCTAssertLessThan(worst, 1e-9, "n \(n)")
        }
        // A matrix that is not positive definite (after dampening) is a clear error, not a NaN.
        XCTAssertThrowsError(try SparseGPT.inverseFactor(hessian: [1, 3, 3, 1], cols: 2, percentDamp: 0.01))
    }

    func testMasks() {
        var rng = SeededGenerator(seed: 8)
        let rows = 6, cols = 12
        let score = (0..<(rows * cols)).map { _ in Float.random(in: 0...1, using: &rng) }
        let global = Masks.global(score, sparsity: 0.4)
        XCTAssertEqual(global.filter { $0 }.count, Int(Double(rows * cols) * 0.4))
        let threshold = zip(score, global).filter { $0.1 }.map(\.0).max()!
        XCTAssertTrue(zip(score, global).allSatisfy { $0.1 || $0.0 > threshold })
        let perRow = Masks.perRow(score, rows: rows, cols: cols, sparsity: 0.5)
        for r in 0..<rows {
            let part = Array(perRow[(r * cols)..<((r + 1) * cols)]), s = Array(score[(r * cols)..<((r + 1) * cols)])
            XCTAssertEqual(part.filter { $0 }.count, 6)
            XCTAssertLessThan(zip(s, part).filter { $0.1 }.map(\.0).max()!, zip(s, part).filter { !$0.1 }.map(\.0).min()!)
        }
        let nm = Masks.nOfM(score, rows: rows, cols: cols, n: 1, m: 4)
        for g in stride(from: 0, to: rows * cols, by: 4) {
            XCTAssertEqual(nm[g..<(g + 4)].filter { $0 }.count, 1)
            let smallest = (g..<(g + 4)).min { score[$0] < score[$1] }!
            XCTAssertTrue(nm[smallest])
        }
        // Ties go to the earlier index.
        XCTAssertEqual(Masks.global([1, 1, 1, 1], sparsity: 0.5), [true, true, false, false])
    }
}

import Foundation
import Kernels

/// SparseGPT's one-shot pruning of one matrix (Frantar & Alistarh 2023; the IST-DASLab reference's order of
/// operations): from the inverse Hessian of the layer's reconstruction error, H = 2/N X X^T over the calibration
/// tokens, choose a mask block by block and move each pruned weight's error onto the weights still to be visited
/// (optimal brain surgeon). Computed in Double.
public enum SparseGPT {
    /// The upper Cholesky factor U of (H + damp I)^-1 (Hinv = U^T U) that the column sweep reads, after the dead
    /// inputs (zero diagonal: never active) get 1 on the diagonal. Returns the factor and the dead inputs.
    /// - Parameter hessian: [cols, cols], symmetric.
    public static func inverseFactor(hessian: [Double], cols n: Int, percentDamp: Double) throws -> (u: [Double], dead: [Bool]) {
        var h = hessian
        var dead = [Bool](repeating: false, count: n)
        for i in 0..<n where h[i * n + i] == 0 {
            dead[i] = true
            h[i * n + i] = 1
        }
        var mean = 0.0
        for i in 0..<n { mean += h[i * n + i] }
        let damp = percentDamp * mean / Double(n)
        for i in 0..<n { h[i * n + i] += damp }
        // With J the reversal of the order, J H J = L L^T gives H^-1 = U^T U for U = J L^-1 J, which is upper
        // triangular with a positive diagonal: the factor itself (Cholesky factors are unique). One factorisation
        // and one triangular inverse instead of inverting H and factorising again.
        var reversed = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n { reversed[i * n + j] = h[(n - 1 - i) * n + (n - 1 - j)] } }
        try cholesky(&reversed, n: n)
        let xt = lowerInverseColumns(reversed, n: n)   // xt[c][k] = (L^-1)[k][c]
        var upper = [Double](repeating: 0, count: n * n)
        // U[i][j] = (L^-1)[n-1-i][n-1-j] = xt[n-1-j][n-1-i], nonzero for i <= j.
        for i in 0..<n { for j in i..<n { upper[i * n + j] = xt[(n - 1 - j) * n + (n - 1 - i)] } }
        return (upper, dead)
    }

    /// sum_k a[k] b[k] over `count`, four lanes of two running sums each (the rounding differs from one running
    /// sum by far less than the algorithm's own).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ count: Int) -> Double {
        var s0 = SIMD4<Double>(), s1 = SIMD4<Double>()
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var k = 0
        while k + 8 <= count {
            s0 += ra.loadUnaligned(fromByteOffset: k * 8, as: SIMD4<Double>.self) * rb.loadUnaligned(fromByteOffset: k * 8, as: SIMD4<Double>.self)
            s1 += ra.loadUnaligned(fromByteOffset: k * 8 + 32, as: SIMD4<Double>.self) * rb.loadUnaligned(fromByteOffset: k * 8 + 32, as: SIMD4<Double>.self)
            k += 8
        }
        var tail = 0.0
        while k < count { tail += a[k] * b[k]; k += 1 }
        return (s0 + s1).sum() + tail
    }

    /// In place: the lower Cholesky factor of the symmetric positive definite `a` [n, n] (row-major; the upper
    /// triangle is zeroed). Blocked by 64 columns: each block is factored, its panel solved, and the rest updated
    /// from a contiguous copy of the panel, so the O(n^3) part reads cached data.
    static func cholesky(_ a: inout [Double], n: Int) throws {
        let bs = 64
        try a.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            var k0 = 0
            while k0 < n {
                let k1 = min(k0 + bs, n), w = k1 - k0
                // The diagonal block (earlier blocks' contributions are already subtracted).
                for j in k0..<k1 {
                    let rj = p + j * n
                    let d = rj[j] - dot(rj + k0, rj + k0, j - k0)
                    guard d > 0, d.isFinite else {
                        throw PruneError.numerical("the calibration Hessian is not positive definite at input \(j) (add calibration samples or raise the dampening)")
                    }
                    rj[j] = d.squareRoot()
                    for i in (j + 1)..<max(j + 1, k1) {
                        let ri = p + i * n
                        ri[j] = (ri[j] - dot(ri + k0, rj + k0, j - k0)) / rj[j]
                    }
                }
                let below = n - k1
                if below > 0 {
                    // The panel below it, then a contiguous copy of the panel rows [below, w].
                    let panel = UnsafeMutablePointer<Double>.allocate(capacity: below * w)
                    defer { panel.deallocate() }
                    Parallel.forRanges(below, minChunk: 16) { rs in
                        for r in rs {
                            let ri = p + (k1 + r) * n
                            for j in k0..<k1 {
                                let rj = p + j * n
                                ri[j] = (ri[j] - dot(ri + k0, rj + k0, j - k0)) / rj[j]
                            }
                            (panel + r * w).update(from: ri + k0, count: w)
                        }
                    }
                    // The trailing lower triangle: a[i][j] -= panel[i] . panel[j].
                    Parallel.forRanges(below, minChunk: 8, chunksPerThread: 8) { rs in
                        for r in rs {
                            let ri = p + (k1 + r) * n + k1, pr = panel + r * w
                            for c in 0...r { ri[c] -= dot(pr, panel + c * w, w) }
                        }
                    }
                }
                k0 = k1
            }
            for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { p[i * n + j] = 0 } }
        }
    }

    /// The columns of L^-1 for a lower triangular L, each stored as a row: out[c][k] = (L^-1)[k][c] (zero for
    /// k < c), by forward substitution, 16 columns at a time so that each row of L is read once per group.
    static func lowerInverseColumns(_ l: [Double], n: Int) -> [Double] {
        var xt = [Double](repeating: 0, count: n * n)
        let group = 16
        l.withUnsafeBufferPointer { lb in
            xt.withUnsafeMutableBufferPointer { xb in
                let L = lb.baseAddress!, X = xb.baseAddress!
                Parallel.forRanges((n + group - 1) / group, minChunk: 1, chunksPerThread: 8) { gs in
                    for g in gs {
                        let c0 = g * group, c1 = min(n, c0 + group)
                        for c in c0..<c1 { X[c * n + c] = 1 / L[c * n + c] }
                        for i in (c0 + 1)..<max(c0 + 1, n) {
                            let row = L + i * n
                            for c in c0..<min(c1, i) {
                                let x = X + c * n
                                x[i] = -dot(row + c, x + c, i - c) / row[i]
                            }
                        }
                    }
                }
            }
        }
        return xt
    }

    /// Prunes `weights` [rows, cols] in place with the inverse factor of its input's Hessian.
    public static func prune(_ weights: inout [Float], rows: Int, cols n: Int, factor: (u: [Double], dead: [Bool]),
                             sparsity: Double, pattern: SparsityPattern, blockSize: Int) {
        let u = factor.u
        var w = weights.map(Double.init)
        for r in 0..<rows { for j in 0..<n where factor.dead[j] { w[r * n + j] = 0 } }
        let (pn, pm): (Int, Int) = { if case .nOfM(let a, let b) = pattern { return (a, b) }; return (0, 0) }()
        var i1 = 0
        while i1 < n {
            let i2 = min(i1 + blockSize, n), count = i2 - i1
            // The block's mask (unstructured): scores w^2 / d^2 at or below the Int(numel * S)-th smallest.
            var mask = [Bool](repeating: false, count: rows * count)
            if pn == 0 {
                var score = [Double](repeating: 0, count: rows * count)
                for r in 0..<rows {
                    for c in 0..<count {
                        let d = u[(i1 + c) * n + i1 + c], x = w[r * n + i1 + c]
                        score[r * count + c] = x * x / (d * d)
                    }
                }
                let sorted = score.sorted()
                let k = min(sorted.count - 1, Int(Double(score.count) * sparsity))
                let thresh = sorted[k]
                for i in 0..<score.count { mask[i] = score[i] <= thresh }
            }
            // Rows are independent from here: each sweeps its block's columns, then updates the columns after it.
            w.withUnsafeMutableBufferPointer { wb in
                mask.withUnsafeMutableBufferPointer { mb in
                    u.withUnsafeBufferPointer { ub in
                        let W = wb.baseAddress!, M = mb.baseAddress!, U = ub.baseAddress!
                        Parallel.forRanges(rows, minChunk: 8) { rs in
                            var err = [Double](repeating: 0, count: count)
                            for r in rs {
                                let row = W + r * n, rmask = M + r * count
                                for c in 0..<count {
                                    let i = i1 + c, d = U[i * n + i]
                                    if pn != 0 && c % pm == 0 {
                                        // N:M: the pn lowest w^2 / d^2 of the next pm columns, from current values.
                                        let end = min(c + pm, count)
                                        let group = (c..<end).sorted { a, b in
                                            let da = U[(i1 + a) * n + i1 + a], db = U[(i1 + b) * n + i1 + b]
                                            let sa = row[i1 + a] * row[i1 + a] / (da * da)
                                            let sb = row[i1 + b] * row[i1 + b] / (db * db)
                                            return sa < sb || (sa == sb && a < b)
                                        }
                                        for g in group.prefix(min(pn, end - c)) { rmask[g] = true }
                                    }
                                    let x = row[i]
                                    let q = rmask[c] ? 0 : x
                                    let e = (x - q) / d
                                    err[c] = e
                                    row[i] = q
                                    if e != 0 {
                                        let hrow = U + i * n
                                        for j in (i + 1)..<i2 { row[j] -= e * hrow[j] }
                                    }
                                }
                                // The columns after the block: w[r, i2:] -= err · U[i1..<i2, i2:].
                                if i2 < n {
                                    for c in 0..<count where err[c] != 0 {
                                        let e = err[c], hrow = U + (i1 + c) * n
                                        for j in i2..<n { row[j] -= e * hrow[j] }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            i1 = i2
        }
        weights = w.map(Float.init)
    }
}

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
        // H = L L^T; H^-1 = L^-T L^-1; then H^-1 = U^T U.
        try cholesky(&h, n: n)
        let inverse = inverseFromCholesky(h, n: n)
        var u = inverse
        try cholesky(&u, n: n)
        // Lower factor -> its transpose (upper), row-major.
        var upper = [Double](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0...i { upper[j * n + i] = u[i * n + j] } }
        return (upper, dead)
    }

    /// In place: the lower Cholesky factor of the symmetric positive definite `a` [n, n] (row-major; the upper
    /// triangle is zeroed).
    static func cholesky(_ a: inout [Double], n: Int) throws {
        try a.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            for j in 0..<n {
                let rj = p + j * n
                var d = rj[j]
                for k in 0..<j { d -= rj[k] * rj[k] }
                guard d > 0, d.isFinite else {
                    throw PruneError.numerical("the calibration Hessian is not positive definite at input \(j) (add calibration samples or raise the dampening)")
                }
                let djj = d.squareRoot()
                rj[j] = djj
                let rows = n - j - 1
                Parallel.forRanges(rows, minChunk: 64) { rs in
                    for r in rs {
                        let ri = p + (j + 1 + r) * n
                        var s = ri[j]
                        for k in 0..<j { s -= ri[k] * rj[k] }
                        ri[j] = s / djj
                    }
                }
            }
            for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { p[i * n + j] = 0 } }
        }
    }

    /// (L L^T)^-1 from the lower factor L: X = L^-1 by forward substitution, then X^T X.
    static func inverseFromCholesky(_ l: [Double], n: Int) -> [Double] {
        // Row i of X^T is column i of X: solve L x = e_i for every i, stored as rows of xt (xt[i][k] = X[k][i]).
        var xt = [Double](repeating: 0, count: n * n)
        l.withUnsafeBufferPointer { lb in
            xt.withUnsafeMutableBufferPointer { xb in
                let L = lb.baseAddress!, X = xb.baseAddress!
                Parallel.forRanges(n, minChunk: 8) { cs in
                    for c in cs {
                        let x = X + c * n
                        x[c] = 1 / L[c * n + c]
                        for i in (c + 1)..<max(c + 1, n) {
                            let row = L + i * n
                            var s = 0.0
                            for k in c..<i { s -= row[k] * x[k] }
                            x[i] = s / row[i]
                        }
                    }
                }
            }
        }
        // inverse[i][j] = sum_k X[k][i] X[k][j] = dot(xt[i], xt[j]) over k >= max(i, j).
        var inv = [Double](repeating: 0, count: n * n)
        xt.withUnsafeBufferPointer { xb in
            inv.withUnsafeMutableBufferPointer { ib in
                let X = xb.baseAddress!, I = ib.baseAddress!
                Parallel.forRanges(n, minChunk: 8) { rs in
                    for i in rs {
                        for j in i..<n {
                            var s = 0.0
                            let a = X + i * n, b = X + j * n
                            for k in j..<n { s += a[k] * b[k] }
                            I[i * n + j] = s
                            I[j * n + i] = s
                        }
                    }
                }
            }
        }
        return inv
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

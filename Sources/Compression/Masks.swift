import Foundation
import Kernels

/// Which weights of a row-major matrix [rows, cols] to zero, from a score per weight (lower = less important).
/// Ties go to the earlier index, as a stable sort leaves them.
public enum Masks {
    /// The `Int(count * sparsity)` lowest scores of the whole matrix (magnitude pruning's one threshold per matrix).
    public static func global(_ score: [Float], sparsity: Double) -> [Bool] {
        let k = Int(Double(score.count) * sparsity)
        var mask = [Bool](repeating: false, count: score.count)
        for i in lowest(k, of: score, in: 0..<score.count) { mask[i] = true }
        return mask
    }

    /// The `Int(cols * sparsity)` lowest scores of every row (Wanda's per-output comparison group).
    public static func perRow(_ score: [Float], rows: Int, cols: Int, sparsity: Double) -> [Bool] {
        let k = Int(Double(cols) * sparsity)
        var mask = [Bool](repeating: false, count: score.count)
        mask.withUnsafeMutableBufferPointer { m in
            let mp = m
            Parallel.forRanges(rows, minChunk: 16) { rs in
                for r in rs { for i in lowest(k, of: score, in: (r * cols)..<((r + 1) * cols)) { mp[i] = true } }
            }
        }
        return mask
    }

    /// The `n` lowest scores of every group of `m` consecutive inputs of a row (a shorter last group keeps its own
    /// `min(n, length)` lowest, as top-k on the narrower slice does).
    public static func nOfM(_ score: [Float], rows: Int, cols: Int, n: Int, m: Int) -> [Bool] {
        var mask = [Bool](repeating: false, count: score.count)
        score.withUnsafeBufferPointer { sb in
            mask.withUnsafeMutableBufferPointer { mb in
                let sp = sb.baseAddress!, mp = mb.baseAddress!
                Parallel.forRanges(rows, minChunk: 16) { rs in
                    for r in rs {
                        var g = 0
                        while g < cols {
                            // n times the lowest not yet taken, the earliest on ties.
                            let lo = r * cols + g, hi = r * cols + min(g + m, cols)
                            for _ in 0..<min(n, hi - lo) {
                                var best = -1
                                for i in lo..<hi where !mp[i] && (best < 0 || sp[i] < sp[best]) { best = i }
                                mp[best] = true
                            }
                            g += m
                        }
                    }
                }
            }
        }
        return mask
    }

    /// Indices of the `k` lowest values of `score[range]`, ties to the lower index (what a stable sort leaves
    /// first): every value below the k-th smallest, then the earliest ones equal to it.
    static func lowest(_ k: Int, of score: [Float], in range: Range<Int>) -> [Int] {
        guard k > 0 else { return [] }
        guard k < range.count else { return Array(range) }
        let threshold = score[range].sorted()[k - 1]
        var out: [Int] = []
        out.reserveCapacity(k)
        for i in range where score[i] < threshold { out.append(i) }
        for i in range where out.count < k && score[i] == threshold { out.append(i) }
        return out
    }

    /// The share of zeros in `values`.
    public static func zeroShare(_ values: UnsafePointer<Float>, count: Int) -> Double {
        guard count > 0 else { return 0 }
        var zeros = 0
        for i in 0..<count where values[i] == 0 { zeros += 1 }
        return Double(zeros) / Double(count)
    }
}

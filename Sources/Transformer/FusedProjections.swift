import Foundation
import Kernels

/// Where the output columns of a fused projection go: runs of `length` columns starting at `fused` that belong to
/// part `part` (q, k, v = 0, 1, 2; gate, up = 0, 1) at column `offset` of that part.
struct FusedColumns: Sendable {
    struct Run: Sendable {
        let fused: Int
        let part: Int
        let offset: Int
        let length: Int
    }
    let runs: [Run]
    /// Columns of the fused output.
    let width: Int

    /// q, k and v of a fused attention input projection in the config's column order.
    static func qkv(_ c: ModelConfig) -> FusedColumns {
        let q = c.qDim, kv = c.kvDim, d = c.headDim
        switch c.qkvFusion {
        case .grouped?:
            // Per key/value head g: its query heads, its key head, its value head.
            let groups = c.headCount / c.kvHeadCount, stride = (groups + 2) * d
            var runs: [Run] = []
            for g in 0..<c.kvHeadCount {
                let base = g * stride
                runs.append(Run(fused: base, part: 0, offset: g * groups * d, length: groups * d))
                runs.append(Run(fused: base + groups * d, part: 1, offset: g * d, length: d))
                runs.append(Run(fused: base + (groups + 1) * d, part: 2, offset: g * d, length: d))
            }
            return FusedColumns(runs: runs, width: q + 2 * kv)
        case .concatenated?, nil:
            return FusedColumns(runs: [Run(fused: 0, part: 0, offset: 0, length: q),
                                       Run(fused: q, part: 1, offset: 0, length: kv),
                                       Run(fused: q + kv, part: 2, offset: 0, length: kv)], width: q + 2 * kv)
        }
    }

    /// [gate | up] (Phi-3 `gate_up_proj`).
    static func gateUp(_ c: ModelConfig) -> FusedColumns {
        let i = c.intermediateSize
        return FusedColumns(runs: [Run(fused: 0, part: 0, offset: 0, length: i), Run(fused: i, part: 1, offset: 0, length: i)],
                            width: 2 * i)
    }

    /// parts[p][rows, widths[p]] = their columns of fused[rows, width].
    func split(_ fused: UnsafePointer<Float>, rows: Int, into parts: [UnsafeMutablePointer<Float>], widths: [Int]) {
        let w = width
        Parallel.forRanges(rows, minChunk: 64) { rs in
            for r in rs {
                for run in runs {
                    (parts[run.part] + r * widths[run.part] + run.offset).update(from: fused + r * w + run.fused, count: run.length)
                }
            }
        }
    }

    /// fused[rows, width] = the parts' columns in fused order (the backward of `split`).
    func join(_ parts: [UnsafePointer<Float>], widths: [Int], rows: Int, into fused: UnsafeMutablePointer<Float>) {
        let w = width
        Parallel.forRanges(rows, minChunk: 64) { rs in
            for r in rs {
                for run in runs {
                    (fused + r * w + run.fused).update(from: parts[run.part] + r * widths[run.part] + run.offset, count: run.length)
                }
            }
        }
    }
}

extension ModelConfig {
    /// Floats per row of the scratch that holds a fused projection's output (0 when nothing is fused).
    var fusedWidth: Int {
        max(qkvFusion == nil ? 0 : qDim + 2 * kvDim, fusedGateUp ? 2 * intermediateSize : 0)
    }

    /// Qwen v1's log-n query scale of 0-based position `p` (1 when off or not past the training length).
    func lognScale(position p: Int) -> Float {
        guard let n = lognScalingLength, p + 1 > n else { return 1 }
        return Float(log(Double(p + 1)) / log(Double(n)))
    }
}

extension TransformerModel {
    /// q, k, v [rows, qDim / kvDim / kvDim] of the normed input x: three projections, or one fused product split.
    /// `fused` holds rows * `config.fusedWidth` floats.
    func projectQKV(layer l: Int, x: UnsafePointer<Float>, rows n: Int, q: UnsafeMutablePointer<Float>,
                    k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, fused: UnsafeMutablePointer<Float>?,
                    project: (Projection, UnsafeMutablePointer<Float>) -> Void) {
        let c = config
        guard c.qkvFusion != nil, let fused else {
            project(.q, q)
            project(.k, k)
            project(.v, v)
            return
        }
        project(.qkv, fused)
        FusedColumns.qkv(c).split(fused, rows: n, into: [q, k, v], widths: [c.qDim, c.kvDim, c.kvDim])
    }

    /// gate and up [rows, I] of the normed input: two projections, or `gate_up_proj` split.
    func projectGateUp(layer l: Int, rows n: Int, gate: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>,
                       fused: UnsafeMutablePointer<Float>?, project: (Projection, UnsafeMutablePointer<Float>) -> Void) {
        let c = config
        guard c.fusedGateUp, let fused else {
            project(.gate, gate)
            project(.up, up)
            return
        }
        project(.gateUp, fused)
        FusedColumns.gateUp(c).split(fused, rows: n, into: [gate, up], widths: [c.intermediateSize, c.intermediateSize])
    }

    /// Scales query rows by Qwen v1's log-n factor of their positions (inference only, as its remote code does).
    func applyLogn(_ q: UnsafeMutablePointer<Float>, rows n: Int, positions: UnsafePointer<Int32>) {
        guard config.lognScalingLength != nil else { return }
        let w = config.qDim
        for r in 0..<n {
            let s = config.lognScale(position: Int(positions[r]))
            if s != 1 { for i in 0..<w { q[r * w + i] *= s } }
        }
    }
}

extension ModelConfig {
    /// The rows of a fused q/k/v weight (or bias) that hold part `part` (q, k, v = 0, 1, 2), in that part's own row
    /// order: row i of the part is fused row `fusedQKVRows(part:)[i]` (Baichuan's [q | k | v], InternLM2's groups).
    public func fusedQKVRows(part: Int) -> [Int] {
        var rows = [Int](repeating: 0, count: part == 0 ? qDim : kvDim)
        for run in FusedColumns.qkv(self).runs where run.part == part {
            for i in 0..<run.length { rows[run.offset + i] = run.fused + i }
        }
        return rows
    }
}

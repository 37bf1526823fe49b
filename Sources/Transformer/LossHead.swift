import Foundation
import Kernels

/// Next-token cross-entropy over labelled rows only, in chunks: the [tokens, vocab] logits are never
/// materialised, and rows without a label never reach the LM head.
///
/// `labels[r]` is the id that row r should predict (the next token), or a negative value to ignore the row.
struct LossHead {
    let lmHead: WeightMatrix
    let hidden: Int
    /// Gemma 2: logits z are cap * tanh(z / cap).
    var softcap: Float? = nil

    var vocab: Int { lmHead.rows }

    /// Rows per chunk: keeps a chunk's logits near 64 MB.
    var chunkRows: Int { max(1, min(512, (16 << 20) / max(1, vocab))) }

    /// Sum of -log p(label) over labelled rows, and their count. When `gradScale` is given, also writes
    /// d(gradScale * loss)/d(normed) into `dNormed` [N, C] (zero on unlabelled rows), and adds the LM head's weight
    /// gradient into `dWeight` [V, C] when it trains.
    ///
    /// With `distill`, each row's objective is the divergence from the teacher's distribution at that row plus
    /// `ceWeight` times its cross-entropy (the sums of both go into `distill`).
    ///
    /// With `objective` (sequence-level objectives: preference tuning), a first pass gives every labelled row's
    /// log-probability to the objective, which returns d(loss)/d(log p) per row; the second pass back-propagates
    /// those (the gradient of each row is its weight times that of its log-probability).
    func run(normed: UnsafePointer<Float>, labels: [Int32], dNormed: UnsafeMutablePointer<Float>?,
             gradScale: Float, scratch: LossScratch, dWeight: UnsafeMutablePointer<Float>? = nil,
             distill: Distillation? = nil, objective: SequenceObjective? = nil) -> (lossSum: Double, count: Int) {
        let c = hidden, v = vocab
        let rows = labels.indices.filter { labels[$0] >= 0 }
        if let d = dNormed { d.update(repeating: 0, count: labels.count * c) }
        if rows.isEmpty { return (0, 0) }
        if let objective {
            return runObjective(objective, normed: normed, labels: labels, rows: rows, dNormed: dNormed, gradScale: gradScale,
                                scratch: scratch, dWeight: dWeight)
        }
        let chunk = chunkRows
        scratch.reserve(rows: chunk, hidden: c, vocab: v, distill: distill != nil)
        let input = scratch.input, logits = scratch.logits, dInput: FloatBuffer? = dNormed == nil ? nil : scratch.dInput
        var total = 0.0
        var lossPerRow = [Double](repeating: 0, count: chunk)
        var divergencePerRow = [Double](repeating: 0, count: chunk)
        distill?.distillSum = 0
        distill?.ceSum = 0
        var begin = 0
        while begin < rows.count {
            let part = Array(rows[begin..<min(rows.count, begin + chunk)])
            let m = part.count
            for (j, r) in part.enumerated() { (input.pointer + j * c).update(from: normed + r * c, count: c) }
            lmHead.forward(input.pointer, rows: m, into: logits.pointer)
            if let cap = softcap { Ops.softcap(logits.pointer, count: m * v, cap: cap) }
            let first = begin
            lossPerRow.withUnsafeMutableBufferPointer { lp in
              divergencePerRow.withUnsafeMutableBufferPointer { dp in
                let lossOut = lp.baseAddress!, divergenceOut = dp.baseAddress!
                Parallel.forRanges(m, minChunk: 4) { js in
                    for j in js {
                        let row = logits.pointer + j * v
                        let target = Int(labels[part[j]])
                        let (lse, _) = Ops.logSumExp(row, count: v)
                        lossOut[j] = Double(lse - row[target])
                        if let d = distill {
                            let teacher = d.teacherLogits.pointer + (first + j) * d.teacherVocab
                            let grad = dNormed == nil ? nil : scratch.distillGradient.pointer + j * v
                            divergenceOut[j] = DistillationLoss.row(student: row, teacher: teacher, count: d.vocab, beta: d.beta,
                                                                    temperature: d.temperature, gradient: grad,
                                                                    scratch: scratch.distillScratch.pointer + j * 2 * v)
                            guard let grad else { continue }
                            // d/dz of (divergence + w * cross-entropy), through Gemma 2's soft-cap where there is one.
                            let w = Float(d.ceWeight)
                            for i in 0..<v {
                                let z = row[i]
                                var gz = (i < d.vocab ? grad[i] : 0) + w * (Foundation.exp(z - lse) - (i == target ? 1 : 0))
                                if let cap = softcap { let t = z / cap; gz *= 1 - t * t }
                                row[i] = gz * gradScale
                            }
                            continue
                        }
                        guard dNormed != nil else { continue }
                        if let cap = softcap {
                            // d/dz of cap * tanh(z / cap) is 1 - (capped / cap)^2.
                            for i in 0..<v {
                                let z = row[i], t = z / cap
                                row[i] = ((Foundation.exp(z - lse)) - (i == target ? 1 : 0)) * gradScale * (1 - t * t)
                            }
                        } else {
                            Ops.crossEntropyGradient(row, count: v, lse: lse, target: target, scale: gradScale)
                        }
                    }
                }
              }
            }
            if let d = distill {
                let ce = lossPerRow[0..<m].reduce(0, +), divergence = divergencePerRow[0..<m].reduce(0, +)
                d.ceSum += ce
                d.distillSum += divergence
                total += divergence + d.ceWeight * ce
            } else {
                total += lossPerRow[0..<m].reduce(0, +)
            }
            if dNormed != nil, let dW = dWeight {
                // dW[V, C] += dlogits^T input
                Gemm.multiply(m: v, n: c, k: m, a: logits.pointer, lda: v, transposeA: true, b: input.pointer, ldb: c,
                              c: dW, ldc: c, accumulate: true)
            }
            if let d = dNormed, let di = dInput {
                lmHead.backwardInput(logits.pointer, rows: m, into: di.pointer)
                for (j, r) in part.enumerated() { (d + r * c).update(from: di.pointer + j * c, count: c) }
            }
            begin += m
        }
        return (total, rows.count)
    }
}

extension LossHead {
    /// The two passes of a sequence-level objective (see `run`).
    func runObjective(_ objective: SequenceObjective, normed: UnsafePointer<Float>, labels: [Int32], rows: [Int],
                      dNormed: UnsafeMutablePointer<Float>?, gradScale: Float, scratch: LossScratch,
                      dWeight: UnsafeMutablePointer<Float>?) -> (lossSum: Double, count: Int) {
        let c = hidden, v = vocab, chunk = chunkRows
        scratch.reserve(rows: chunk, hidden: c, vocab: v)
        let input = scratch.input, logits = scratch.logits
        var logProbs = [Double](repeating: 0, count: rows.count)
        var lses = [Float](repeating: 0, count: rows.count)
        func forChunks(_ body: (_ begin: Int, _ part: ArraySlice<Int>) -> Void) {
            var begin = 0
            while begin < rows.count {
                let part = rows[begin..<min(rows.count, begin + chunk)]
                for (j, r) in part.enumerated() { (input.pointer + j * c).update(from: normed + r * c, count: c) }
                lmHead.forward(input.pointer, rows: part.count, into: logits.pointer)
                if let cap = softcap { Ops.softcap(logits.pointer, count: part.count * v, cap: cap) }
                body(begin, part)
                begin += part.count
            }
        }
        forChunks { begin, part in
            for (j, r) in part.enumerated() {
                let row = logits.pointer + j * v
                let lse = Ops.logSumExp(row, count: v).lse
                lses[begin + j] = lse
                logProbs[begin + j] = Double(row[Int(labels[r])] - lse)
            }
        }
        objective.logProbs = logProbs
        guard let dNormed else { return (-logProbs.reduce(0, +), rows.count) }
        let weights = objective.gradient(logProbs)
        precondition(weights.count == rows.count, "one weight per labelled row")
        let dInput = scratch.dInput
        forChunks { begin, part in
            for (j, r) in part.enumerated() {
                let row = logits.pointer + j * v
                // d(loss)/dz = w * (onehot - softmax) = (softmax - onehot) * (-w).
                let scale = Float(-weights[begin + j]) * gradScale
                if let cap = softcap {
                    for i in 0..<v {
                        let z = row[i], t = z / cap
                        row[i] = ((Foundation.exp(z - lses[begin + j])) - (i == Int(labels[r]) ? 1 : 0)) * scale * (1 - t * t)
                    }
                } else {
                    Ops.crossEntropyGradient(row, count: v, lse: lses[begin + j], target: Int(labels[r]), scale: scale)
                }
            }
            if let dW = dWeight {
                Gemm.multiply(m: v, n: c, k: part.count, a: logits.pointer, lda: v, transposeA: true, b: input.pointer, ldb: c,
                              c: dW, ldc: c, accumulate: true)
            }
            lmHead.backwardInput(logits.pointer, rows: part.count, into: dInput.pointer)
            for (j, r) in part.enumerated() { (dNormed + r * c).update(from: dInput.pointer + j * c, count: c) }
        }
        return (-logProbs.reduce(0, +), rows.count)
    }
}

/// A sequence-level objective over the labelled rows of a pass (preference tuning): `gradient` receives every
/// labelled row's log-probability of its label, in row order, and returns d(loss)/d(log-probability) per row; the
/// pass leaves the log-probabilities in `logProbs` (a forward-only pass only records them).
public final class SequenceObjective {
    public let gradient: ([Double]) -> [Double]
    public internal(set) var logProbs: [Double] = []

    public init(gradient: @escaping ([Double]) -> [Double] = { $0.map { _ in 0 } }) { self.gradient = gradient }
}

/// The loss head's chunk buffers, kept with the activation buffers so the step loop does not allocate them.
final class LossScratch {
    private(set) var input = FloatBuffer(count: 0)    // [chunk, C]
    private(set) var logits = FloatBuffer(count: 0)   // [chunk, V]
    private(set) var dInput = FloatBuffer(count: 0)   // [chunk, C]
    private(set) var distillGradient = FloatBuffer(count: 0)   // [chunk, V] (distillation)
    private(set) var distillScratch = FloatBuffer(count: 0)    // [chunk, 2V] (distillation)

    func reserve(rows: Int, hidden: Int, vocab: Int, distill: Bool = false) {
        if input.count < rows * hidden { input = FloatBuffer(count: rows * hidden); dInput = FloatBuffer(count: rows * hidden) }
        if logits.count < rows * vocab { logits = FloatBuffer(count: rows * vocab) }
        if distill, distillGradient.count < rows * vocab {
            distillGradient = FloatBuffer(count: rows * vocab)
            distillScratch = FloatBuffer(count: 2 * rows * vocab)
        }
    }
}

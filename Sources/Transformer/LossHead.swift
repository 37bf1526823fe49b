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
        let logits = scratch.logits
        var total = 0.0
        var lossPerRow = [Double](repeating: 0, count: chunk)
        var divergencePerRow = [Double](repeating: 0, count: chunk)
        distill?.distillSum = 0
        distill?.ceSum = 0
        var begin = 0
        while begin < rows.count {
            let part = rows[begin..<min(rows.count, begin + chunk)]
            let m = part.count
            chunkLogits(part, normed: normed, scratch: scratch)
            let first = begin
            lossPerRow.withUnsafeMutableBufferPointer { lp in
              divergencePerRow.withUnsafeMutableBufferPointer { dp in
                let lossOut = lp.baseAddress!, divergenceOut = dp.baseAddress!
                Parallel.forRanges(m, minChunk: 4) { js in
                    for j in js {
                        let row = logits.pointer + j * v
                        let target = Int(labels[part[first + j]])
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
                        crossEntropyGradient(row, lse: lse, target: target, scale: gradScale)
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
            if let dNormed { backwardChunk(part, dNormed: dNormed, dWeight: dWeight, scratch: scratch) }
            begin += m
        }
        return (total, rows.count)
    }

    /// The logits [part.count, V] of rows `part` of `normed`, in `scratch.logits` (soft-capped where the family caps).
    func chunkLogits(_ part: ArraySlice<Int>, normed: UnsafePointer<Float>, scratch: LossScratch) {
        let c = hidden
        for (j, r) in part.enumerated() { (scratch.input.pointer + j * c).update(from: normed + r * c, count: c) }
        lmHead.forward(scratch.input.pointer, rows: part.count, into: scratch.logits.pointer)
        if let cap = softcap { Ops.softcap(scratch.logits.pointer, count: part.count * vocab, cap: cap) }
    }

    /// row <- scale x d(-log p(target))/dz for a row of logits with log-sum-exp `lse`, through the soft-cap where
    /// there is one (d/dz of cap * tanh(z / cap) is 1 - (capped / cap)^2).
    func crossEntropyGradient(_ row: UnsafeMutablePointer<Float>, lse: Float, target: Int, scale: Float) {
        guard let cap = softcap else {
            Ops.crossEntropyGradient(row, count: vocab, lse: lse, target: target, scale: scale)
            return
        }
        for i in 0..<vocab {
            let z = row[i], t = z / cap
            row[i] = ((Foundation.exp(z - lse)) - (i == target ? 1 : 0)) * scale * (1 - t * t)
        }
    }

    /// From the logit gradients of rows `part` in `scratch.logits`: their rows of d(normed), and the LM head's weight
    /// gradient added into `dWeight` when it trains.
    func backwardChunk(_ part: ArraySlice<Int>, dNormed: UnsafeMutablePointer<Float>, dWeight: UnsafeMutablePointer<Float>?,
                       scratch: LossScratch) {
        let c = hidden, v = vocab
        if let dW = dWeight {
            // dW[V, C] += dlogits^T input
            Gemm.multiply(m: v, n: c, k: part.count, a: scratch.logits.pointer, lda: v, transposeA: true,
                          b: scratch.input.pointer, ldb: c, c: dW, ldc: c, accumulate: true)
        }
        lmHead.backwardInput(scratch.logits.pointer, rows: part.count, into: scratch.dInput.pointer)
        for (j, r) in part.enumerated() { (dNormed + r * c).update(from: scratch.dInput.pointer + j * c, count: c) }
    }
}

extension LossHead {
    /// A sequence-level objective (see `run`). The log-probabilities come first; their weights are known only once
    /// every row is in. With the LM head frozen, one pass suffices: each labelled row's d(-log p)/d(normed) is written
    /// into its row of `dNormed` as its chunk goes by, and scaled by the row's weight at the end (the same two LM-head
    /// products per row as cross-entropy). A head that trains needs the weights inside its product, so it takes a
    /// second pass over the chunks.
    func runObjective(_ objective: SequenceObjective, normed: UnsafePointer<Float>, labels: [Int32], rows: [Int],
                      dNormed: UnsafeMutablePointer<Float>?, gradScale: Float, scratch: LossScratch,
                      dWeight: UnsafeMutablePointer<Float>?) -> (lossSum: Double, count: Int) {
        let v = vocab, c = hidden, chunk = chunkRows
        scratch.reserve(rows: chunk, hidden: c, vocab: v)
        let logits = scratch.logits
        let onePass = dNormed != nil && dWeight == nil
        var logProbs = [Double](repeating: 0, count: rows.count)
        var lses = [Float](repeating: 0, count: rows.count)
        func forChunks(_ body: (_ begin: Int, _ part: ArraySlice<Int>) -> Void) {
            var begin = 0
            while begin < rows.count {
                let part = rows[begin..<min(rows.count, begin + chunk)]
                chunkLogits(part, normed: normed, scratch: scratch)
                body(begin, part)
                begin += part.count
            }
        }
        forChunks { begin, part in
            logProbs.withUnsafeMutableBufferPointer { lp in
                lses.withUnsafeMutableBufferPointer { ls in
                    let lpOut = lp.baseAddress!, lsOut = ls.baseAddress!
                    Parallel.forRanges(part.count, minChunk: 4) { js in
                        for j in js {
                            let row = logits.pointer + j * v, target = Int(labels[part[begin + j]])
                            let lse = Ops.logSumExp(row, count: v).lse
                            lsOut[begin + j] = lse
                            lpOut[begin + j] = Double(row[target] - lse)
                            // One pass: the row becomes d(-log p)/dz = softmax - onehot.
                            if onePass { crossEntropyGradient(row, lse: lse, target: target, scale: 1) }
                        }
                    }
                }
            }
            if onePass, let dNormed { backwardChunk(part, dNormed: dNormed, dWeight: nil, scratch: scratch) }
        }
        objective.logProbs = logProbs
        guard let dNormed else { return (-logProbs.reduce(0, +), rows.count) }
        let weights = objective.gradient(logProbs)
        precondition(weights.count == rows.count, "one weight per labelled row")
        if onePass {
            // d(loss)/d(normed) = w * d(log p)/d(normed) = -w * (softmax - onehot) W.
            for (i, r) in rows.enumerated() {
                let row = dNormed + r * c, k = Float(-weights[i]) * gradScale
                for t in 0..<c { row[t] *= k }
            }
            return (-logProbs.reduce(0, +), rows.count)
        }
        forChunks { begin, part in
            lses.withUnsafeBufferPointer { ls in
                let lse = ls.baseAddress!
                Parallel.forRanges(part.count, minChunk: 4) { js in
                    for j in js {
                        // d(loss)/dz = w * (onehot - softmax) = (softmax - onehot) * (-w).
                        crossEntropyGradient(logits.pointer + j * v, lse: lse[begin + j], target: Int(labels[part[begin + j]]),
                                             scale: Float(-weights[begin + j]) * gradScale)
                    }
                }
            }
            backwardChunk(part, dNormed: dNormed, dWeight: dWeight, scratch: scratch)
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

import Foundation
import Kernels

/// P-tuning's LSTM prompt encoder: PyTorch's `nn.LSTM(input, hidden, num_layers: 2, bidirectional: true,
/// batch_first: true)` run over the nv virtual-token embeddings as one sequence, forward and backward by hand.
/// Gates in PyTorch's order (input, forget, cell, output); parameters live in the adapter's flat buffer under
/// PyTorch's names (`weight_ih_l0`, `weight_hh_l0_reverse`, ...).
final class PromptLSTM {
    /// One direction of one layer: W_ih [4H, in], W_hh [4H, H], b_ih [4H], b_hh [4H] at these offsets.
    struct Cell {
        let inFeatures: Int
        let weightIH: Int
        let weightHH: Int
        let biasIH: Int
        let biasHH: Int
        let suffix: String      // "l0", "l0_reverse", ...
        let reverse: Bool
    }

    let hidden: Int
    let steps: Int
    let cells: [[Cell]]         // [layer][direction]
    /// Saved for backward, per layer: its input [nv, in]; per cell: activated gates [nv, 4H], c [nv, H], h [nv, H].
    private var inputs: [FloatBuffer] = []
    private var gates: [[FloatBuffer]] = []
    private var cellStates: [[FloatBuffer]] = []
    private var hiddenStates: [[FloatBuffer]] = []
    /// The last layer's output [nv, 2H].
    private(set) var output: FloatBuffer

    /// Lays the parameters out from `offset` on; returns the offset after them.
    init(inputSize: Int, hidden: Int, layers: Int, steps: Int, offset: inout Int) {
        self.hidden = hidden
        self.steps = steps
        var list: [[Cell]] = []
        for l in 0..<layers {
            let input = l == 0 ? inputSize : 2 * hidden
            list.append([false, true].map { reverse in
                let c = Cell(inFeatures: input, weightIH: offset, weightHH: offset + 4 * hidden * input,
                             biasIH: offset + 4 * hidden * (input + hidden), biasHH: offset + 4 * hidden * (input + hidden + 1),
                             suffix: "l\(l)" + (reverse ? "_reverse" : ""), reverse: reverse)
                offset += 4 * hidden * (input + hidden + 2)
                return c
            })
        }
        cells = list
        let n = steps
        inputs = list.map { FloatBuffer(count: n * $0[0].inFeatures) }
        gates = list.map { $0.map { _ in FloatBuffer(count: n * 4 * hidden) } }
        cellStates = list.map { $0.map { _ in FloatBuffer(count: n * hidden) } }
        hiddenStates = list.map { $0.map { _ in FloatBuffer(count: n * hidden) } }
        output = FloatBuffer(count: n * 2 * hidden)
    }

    /// (name, shape, offset) of every parameter, PyTorch names under `prefix`.
    func named(_ prefix: String) -> [NamedParameter] {
        cells.flatMap { $0 }.flatMap { c in [
            NamedParameter(name: "\(prefix).weight_ih_\(c.suffix)", shape: [4 * hidden, c.inFeatures], offset: c.weightIH),
            NamedParameter(name: "\(prefix).weight_hh_\(c.suffix)", shape: [4 * hidden, hidden], offset: c.weightHH),
            NamedParameter(name: "\(prefix).bias_ih_\(c.suffix)", shape: [4 * hidden], offset: c.biasIH),
            NamedParameter(name: "\(prefix).bias_hh_\(c.suffix)", shape: [4 * hidden], offset: c.biasHH),
        ] }
    }

    private static func sigmoid(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }

    /// output[nv, 2H] = LSTM(x[nv, inputSize]).
    func forward(_ x: UnsafePointer<Float>, parameters p: UnsafePointer<Float>) {
        let H = hidden, n = steps
        inputs[0].copy(from: x, count: n * cells[0][0].inFeatures)
        for (l, layer) in cells.enumerated() {
            let inF = layer[0].inFeatures
            let layerInput = UnsafePointer(inputs[l].pointer)
            let out = l == cells.count - 1 ? output : FloatBuffer(count: n * 2 * H)
            for (d, c) in layer.enumerated() {
                let g = gates[l][d].pointer, cs = cellStates[l][d].pointer, hs = hiddenStates[l][d].pointer
                // Input contributions for every step: g[t] = x_t W_ih^T + b_ih + b_hh.
                Gemm.multiply(m: n, n: 4 * H, k: inF, a: layerInput, lda: inF, b: p + c.weightIH, ldb: inF,
                              transposeB: true, c: g, ldc: 4 * H)
                for t in 0..<n {
                    Ops.add(p + c.biasIH, into: g + t * 4 * H, count: 4 * H)
                    Ops.add(p + c.biasHH, into: g + t * 4 * H, count: 4 * H)
                }
                var previous: Int? = nil
                for step in 0..<n {
                    let t = c.reverse ? n - 1 - step : step
                    let gt = g + t * 4 * H
                    if let prev = previous {
                        // g[t] += W_hh h_{t-1}
                        Gemm.multiply(m: 1, n: 4 * H, k: H, a: hs + prev * H, lda: H, b: p + c.weightHH, ldb: H,
                                      transposeB: true, c: gt, ldc: 4 * H, accumulate: true)
                    }
                    for j in 0..<H {
                        let i = Self.sigmoid(gt[j]), f = Self.sigmoid(gt[H + j])
                        let gg = Foundation.tanh(gt[2 * H + j]), o = Self.sigmoid(gt[3 * H + j])
                        gt[j] = i; gt[H + j] = f; gt[2 * H + j] = gg; gt[3 * H + j] = o
                        let cPrev = previous.map { cs[$0 * H + j] } ?? 0
                        let cNew = f * cPrev + i * gg
                        cs[t * H + j] = cNew
                        hs[t * H + j] = o * Foundation.tanh(cNew)
                    }
                    previous = t
                }
                for t in 0..<n { (out.pointer + t * 2 * H + d * H).update(from: hs + t * H, count: H) }
            }
            // The next layer reads this one's output from its saved input.
            if l < cells.count - 1 { inputs[l + 1].copy(from: out.pointer, count: n * 2 * H) }
        }
    }

    /// Adds parameter gradients from dOutput[nv, 2H]; returns d(input)[nv, inputSize].
    func backward(_ dOutput: UnsafePointer<Float>, parameters p: UnsafePointer<Float>,
                  gradients gp: UnsafeMutablePointer<Float>) -> FloatBuffer {
        let H = hidden, n = steps
        var upstream = FloatBuffer(count: n * 2 * H)
        upstream.copy(from: dOutput, count: n * 2 * H)
        defer { withExtendedLifetime(upstream) {} }
        for l in stride(from: cells.count - 1, through: 0, by: -1) {
            let layer = cells[l], inF = layer[0].inFeatures
            let dInput = FloatBuffer(count: n * inF)
            for (d, c) in layer.enumerated() {
                let g = gates[l][d].pointer, cs = cellStates[l][d].pointer, hs = hiddenStates[l][d].pointer
                let dGates = FloatBuffer(count: n * 4 * H)
                var dhNext = [Float](repeating: 0, count: H), dcNext = [Float](repeating: 0, count: H)
                for step in stride(from: n - 1, through: 0, by: -1) {
                    let t = c.reverse ? n - 1 - step : step
                    let prev: Int? = step > 0 ? (c.reverse ? t + 1 : t - 1) : nil
                    let gt = g + t * 4 * H, dg = dGates.pointer + t * 4 * H
                    for j in 0..<H {
                        let i = gt[j], f = gt[H + j], gg = gt[2 * H + j], o = gt[3 * H + j]
                        let tc = Foundation.tanh(cs[t * H + j])
                        let dh = upstream[t * 2 * H + d * H + j] + dhNext[j]
                        let dc = dcNext[j] + dh * o * (1 - tc * tc)
                        let cPrev = prev.map { cs[$0 * H + j] } ?? 0
                        dg[j] = dc * gg * i * (1 - i)
                        dg[H + j] = dc * cPrev * f * (1 - f)
                        dg[2 * H + j] = dc * i * (1 - gg * gg)
                        dg[3 * H + j] = dh * tc * o * (1 - o)
                        dcNext[j] = dc * f
                    }
                    // dh_{t-1} = dg W_hh ; dW_hh += dg^T h_{t-1}
                    if let prev {
                        dhNext.withUnsafeMutableBufferPointer {
                            Gemm.multiply(m: 1, n: H, k: 4 * H, a: dg, lda: 4 * H, b: p + c.weightHH, ldb: H,
                                          c: $0.baseAddress!, ldc: H)
                        }
                        Gemm.multiply(m: 4 * H, n: H, k: 1, a: dg, lda: 4 * H, transposeA: true, b: hs + prev * H, ldb: H,
                                      c: gp + c.weightHH, ldc: H, accumulate: true)
                    }
                }
                // dW_ih += dG^T x ; biases += sum_t dG ; dx += dG W_ih
                Gemm.multiply(m: 4 * H, n: inF, k: n, a: dGates.pointer, lda: 4 * H, transposeA: true,
                              b: inputs[l].pointer, ldb: inF, c: gp + c.weightIH, ldc: inF, accumulate: true)
                for t in 0..<n {
                    Ops.add(dGates.pointer + t * 4 * H, into: gp + c.biasIH, count: 4 * H)
                    Ops.add(dGates.pointer + t * 4 * H, into: gp + c.biasHH, count: 4 * H)
                }
                Gemm.multiply(m: n, n: inF, k: 4 * H, a: dGates.pointer, lda: 4 * H, b: p + c.weightIH, ldb: inF,
                              c: dInput.pointer, ldc: inF, accumulate: true)
            }
            upstream = dInput
        }
        return upstream
    }
}

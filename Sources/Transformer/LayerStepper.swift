import Foundation
import Kernels

/// Runs a model one decoder layer at a time over single sequences, for the work that takes statistics between
/// layers (pruning, layer scoring): a sequence's residual stream enters layer 0 as its embedded tokens and leaves the
/// last layer before the final norm. An adapter set on the model sees every projection as in a normal pass.
///
/// ```swift
/// let stepper = LayerStepper(model: model, longest: 2048)
/// var h = stepper.embed(ids)                                   // [n, C]
/// for l in 0..<model.config.layerCount { h = stepper.run(layer: l, input: h) }
/// ```
public final class LayerStepper {
    public let model: TransformerModel
    public let longest: Int
    private let buffers: ActivationBuffers

    public init(model: TransformerModel, longest: Int) {
        self.model = model
        self.longest = max(1, longest)
        buffers = ActivationBuffers(config: model.config, capacity: self.longest, longest: self.longest, policy: .inference)
        model.reserveRotary(self.longest)
    }

    /// The embedded tokens [n, C] (Gemma's scaling included).
    public func embed(_ tokens: [Int32]) -> [Float] {
        precondition(tokens.count <= longest, "sequence longer than the stepper was made for")
        var out = [Float](repeating: 0, count: tokens.count * model.config.hiddenSize)
        out.withUnsafeMutableBufferPointer { model.embed(tokens, into: $0.baseAddress!) }
        return out
    }

    /// Layer `l`'s output [n, C] for one sequence whose layer input is `input` [n, C] (positions 0..<n).
    public func run(layer l: Int, input: [Float]) -> [Float] {
        let C = model.config.hiddenSize, n = input.count / C
        precondition(n * C == input.count && n <= longest, "input is not [n, hidden] within the stepper's length")
        let batch = PackedBatch(sequences: [[Int32](repeating: 0, count: n)])
        var out = [Float](repeating: 0, count: n * C)
        input.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in
                model.layerForward(l, batch: batch, x: x.baseAddress!, out: o.baseAddress!, saved: buffers.saved[0],
                                   buffers: buffers, context: .inference)
            }
        }
        return out
    }

    /// Sum over positions of the next-token loss of `tokens` given the last layer's output `hidden` [n, C], and
    /// the number of predictions (n - 1): the final norm, then the loss head (in chunks of rows).
    public func nextTokenLoss(tokens: [Int32], hidden: [Float]) -> (sum: Double, count: Int) {
        let c = model.config, C = c.hiddenSize, n = tokens.count
        guard n > 1 else { return (0, 0) }
        let normed = FloatBuffer(count: n * C), rstd = FloatBuffer(count: n)
        hidden.withUnsafeBufferPointer { h in
            Ops.rmsNormForward(h.baseAddress!, weight: model.weights.finalNorm.pointer, out: normed.pointer,
                               rstd: rstd.pointer, rows: n, cols: C, eps: c.rmsNormEps)
        }
        let labels = (0..<n).map { t in t + 1 < n ? tokens[t + 1] : -100 }
        let head = LossHead(lmHead: model.weights.lmHead, hidden: C, softcap: c.finalSoftcap)
        let (sum, count) = head.run(normed: normed.pointer, labels: labels, dNormed: nil, gradScale: 0, scratch: LossScratch())
        return (sum, count)
    }
}

import Foundation
import Kernels

/// What the trainer needs of an optimiser: an update of the flat parameter vector and the state to checkpoint.
public protocol Optimizer: AnyObject {
    /// Completed updates.
    var step: Int { get }
    func update(parameters: FloatBuffer, gradients: FloatBuffer, lr: Float)
    /// Named state buffers written to and read from `optimizer.safetensors`.
    var state: [(name: String, buffer: FloatBuffer)] { get }
    /// Restores the step counter from a checkpoint (state buffers are restored in place).
    func restore(step: Int)
}

/// The optimisers `--optim` names.
public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
    /// AdamW: two f32 moments per parameter (8 bytes).
    case adamw
    /// Adafactor as transformers' Trainer runs it (`scale_parameter=False, relative_step=False`, no first moment):
    /// a factored second moment (rows + columns per matrix), so almost no optimiser memory.
    case adafactor
}

extension AdamW: Optimizer {
    public var state: [(name: String, buffer: FloatBuffer)] { [("exp_avg", m), ("exp_avg_sq", v)] }
}

/// transformers' `Adafactor(lr=..., scale_parameter=False, relative_step=False, warmup_init=False, beta1=None,
/// decay_rate=-0.8, clip_threshold=1.0, eps=(1e-30, 1e-3))`, per tensor of the flat parameter vector: matrices keep
/// row and column means of the squared gradient, vectors a full second moment. The update is
/// `g / sqrt(v_hat)`, divided by max(1, RMS(update)), times lr.
public final class Adafactor: Optimizer {
    public struct Tensor: Sendable {
        public let offset: Int
        public let rows: Int       // 1 for vectors
        public let cols: Int
        public let stateOffset: Int
        public var factored: Bool { rows > 1 }
    }

    public let tensors: [Tensor]
    public let weightDecay: Float
    public private(set) var step = 0
    /// Row and column second moments of matrices, full second moments of vectors, back to back.
    public let moments: FloatBuffer
    public static let eps: Float = 1e-30
    public static let decayRate = -0.8
    public static let clipThreshold: Float = 1

    /// - Parameter shapes: (offset, shape) of every tensor in the flat vector; a shape of two or more dimensions is
    ///   treated as [product of leading dimensions, last dimension] as torch does.
    public init(shapes: [(offset: Int, shape: [Int])], weightDecay: Float = 0) {
        var list: [Tensor] = [], state = 0
        for (offset, shape) in shapes {
            let cols = shape.last ?? 1
            let rows = shape.count >= 2 ? shape.dropLast().reduce(1, *) : 1
            list.append(Tensor(offset: offset, rows: rows, cols: cols, stateOffset: state))
            state += rows > 1 ? rows + cols : cols
        }
        tensors = list
        self.weightDecay = weightDecay
        moments = FloatBuffer(count: max(1, state))
    }

    public var state: [(name: String, buffer: FloatBuffer)] { [("adafactor_exp_avg_sq", moments)] }

    public func restore(step: Int) { self.step = step }

    public func update(parameters: FloatBuffer, gradients: FloatBuffer, lr: Float) {
        step += 1
        let beta2t = Float(1 - pow(Double(step), Self.decayRate))
        for t in tensors { update(t, p: parameters.pointer + t.offset, g: gradients.pointer + t.offset, beta2t: beta2t, lr: lr) }
    }

    private func update(_ t: Tensor, p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, beta2t: Float, lr: Float) {
        let (R, C) = (t.rows, t.cols), s = moments.pointer + t.stateOffset, eps = Self.eps
        // The update's scale before clipping: u = g * rsqrt(row / mean(row)) * rsqrt(col), or g * rsqrt(v).
        var sumSquares = 0.0
        if t.factored {
            let row = s, col = s + R
            Parallel.forRanges(R, minChunk: 16) { rs in
                for r in rs {
                    var acc: Float = 0
                    for c in 0..<C { let x = g[r * C + c]; acc += x * x + eps }
                    row[r] = beta2t * row[r] + (1 - beta2t) * acc / Float(C)
                }
            }
            Parallel.forRanges(C, minChunk: 64) { cs in
                var acc = [Float](repeating: 0, count: cs.count)
                for r in 0..<R { for c in cs { let x = g[r * C + c]; acc[c - cs.lowerBound] += x * x + eps } }
                for c in cs { col[c] = beta2t * col[c] + (1 - beta2t) * acc[c - cs.lowerBound] / Float(R) }
            }
            var rowMean: Float = 0
            for r in 0..<R { rowMean += row[r] }
            rowMean /= Float(R)
            // u[r, c] = g[r, c] * rowFactor[r] * colFactor[c]: the square roots once per row and column.
            var factors = [Float](repeating: 0, count: R + C)
            factors.withUnsafeMutableBufferPointer { f in
                for r in 0..<R { f[r] = 1 / (row[r] / rowMean).squareRoot() }
                for c in 0..<C { f[R + c] = 1 / col[c].squareRoot() }
            }
            var partial = [Double](repeating: 0, count: R)
            factors.withUnsafeBufferPointer { fb in
                let rf = fb.baseAddress!, cf = fb.baseAddress! + R
                partial.withUnsafeMutableBufferPointer { part in
                    let out = part.baseAddress!
                    Parallel.forRanges(R, minChunk: 16) { rs in
                        for r in rs {
                            var acc: Float = 0
                            let gr = g + r * C
                            for c in 0..<C { let u = gr[c] * cf[c]; acc += u * u }
                            out[r] = Double(acc * rf[r] * rf[r])
                        }
                    }
                }
                sumSquares = partial.reduce(0, +)
                let scale = lr / max(1, Float((sumSquares / Double(R * C)).squareRoot()) / Self.clipThreshold)
                let decay = weightDecay * lr
                Parallel.forRanges(R, minChunk: 16) { rs in
                    for r in rs {
                        let s = scale * rf[r], pr = p + r * C, gr = g + r * C
                        if decay != 0 { for c in 0..<C { pr[c] -= pr[c] * decay } }
                        for c in 0..<C { pr[c] -= s * gr[c] * cf[c] }
                    }
                }
            }
        } else {
            for c in 0..<C {
                s[c] = beta2t * s[c] + (1 - beta2t) * (g[c] * g[c] + eps)
                let u = g[c] / s[c].squareRoot()
                sumSquares += Double(u * u)
            }
            let scale = lr / max(1, Float((sumSquares / Double(C)).squareRoot()) / Self.clipThreshold)
            for c in 0..<C {
                if weightDecay != 0 { p[c] -= p[c] * weightDecay * lr }
                p[c] -= scale * g[c] / s[c].squareRoot()
            }
        }
    }
}

import Kernels

/// AdamW over one flat parameter vector (PyTorch's update rule), with its state saved in checkpoints.
public final class AdamW {
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float
    /// Completed updates (the next update is number step + 1).
    public private(set) var step: Int = 0
    public let m: FloatBuffer
    public let v: FloatBuffer

    public init(parameterCount: Int, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.weightDecay = weightDecay
        m = FloatBuffer(count: parameterCount)
        v = FloatBuffer(count: parameterCount)
    }

    public func update(parameters: FloatBuffer, gradients: FloatBuffer, lr: Float) {
        step += 1
        let n = parameters.count, s = step
        Parallel.forRanges(n, minChunk: 1 << 16) { r in
            let o = r.lowerBound
            Ops.adamW(params: parameters.pointer + o, grads: gradients.pointer + o, m: m.pointer + o, v: v.pointer + o,
                      count: r.count, lr: lr, beta1: beta1, beta2: beta2, eps: eps, weightDecay: weightDecay, step: s)
        }
    }

    /// Restores the step counter from a checkpoint (m and v are restored in place).
    public func restore(step: Int) { self.step = step }
}

/// Global L2-norm gradient clipping as `torch.nn.utils.clip_grad_norm_`: returns the norm before clipping.
public enum GradientClipping {
    @discardableResult
    public static func clip(_ gradients: FloatBuffer, maxNorm: Float) -> Float {
        let norm = Float(Ops.sumOfSquares(gradients.pointer, count: gradients.count).squareRoot())
        if maxNorm > 0 {
            let coef = maxNorm / (norm + 1e-6)
            if coef < 1 { for i in 0..<gradients.count { gradients.pointer[i] *= coef } }
        }
        return norm
    }
}

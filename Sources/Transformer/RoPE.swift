import Foundation
import Kernels

/// Rotary position embedding tables and their application in the "rotate half" layout of Hugging Face models:
/// for i < D/2, (x[i], x[i + D/2]) is rotated by angle pos * invFreq[i].
public final class RoPE: @unchecked Sendable {
    public let headDim: Int
    let invFreq: [Float]
    private var cosTable: [Float] = []   // [positions, D/2]
    private var sinTable: [Float] = []
    private var positions = 0
    private let lock = NSLock()

    public init(config: ModelConfig) {
        headDim = config.headDim
        invFreq = config.rope.inverseFrequencies(headDim: config.headDim)
    }

    /// Makes sure tables cover positions [0, count).
    func reserve(_ count: Int) {
        lock.lock(); defer { lock.unlock() }
        guard count > positions else { return }
        let target = max(count, positions * 2, 256)
        let half = headDim / 2
        var c = [Float](repeating: 0, count: target * half), s = c
        for p in 0..<target {
            for i in 0..<half {
                // f32 angle like transformers (position * inv_freq in float32), then an exact cos/sin.
                let angle = Double(Float(p) * invFreq[i])
                c[p * half + i] = Float(cos(angle))
                s[p * half + i] = Float(sin(angle))
            }
        }
        cosTable = c
        sinTable = s
        positions = target
    }

    /// Rotates every head of x[rows, heads * D] in place; `inverse` rotates by the negative angle (the backward).
    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, positions pos: UnsafePointer<Int32>,
               inverse: Bool = false) {
        let d = headDim
        let sign: Float = inverse ? -1 : 1
        // Snapshot the tables: another session may be growing them.
        lock.lock()
        let (cosines, sines) = (cosTable, sinTable)
        lock.unlock()
        cosines.withUnsafeBufferPointer { cp in
            sines.withUnsafeBufferPointer { sp in
                let cb = cp.baseAddress!, sb = sp.baseAddress!
                Parallel.forRanges(rows, minChunk: 32) { range in
                    Ops.rope(x + range.lowerBound * heads * d, rows: range.count, heads: heads, headDim: d,
                             positions: pos + range.lowerBound, cos: cb, sin: sb, sign: sign)
                }
            }
        }
    }
}

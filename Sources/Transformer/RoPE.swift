import Foundation
import Kernels

/// Rotary position embedding tables and their application in the "rotate half" layout of Hugging Face models:
/// for i < R/2, (x[i], x[i + R/2]) is rotated by angle pos * invFreq[i], where R is the rotated part of the head
/// (all of it unless the config sets a partial rotary factor); dimensions R..<D pass through.
public final class RoPE: @unchecked Sendable {
    public let headDim: Int
    /// Dimensions rotated at the start of each head.
    public let rotaryDim: Int
    /// Adjacent pairs instead of halves (GLM).
    public let pairs: Bool
    let invFreq: [Float]
    /// LongRoPE: the long factors' frequencies, used for passes reaching past `longFrom` positions.
    let longInvFreq: [Float]?
    let longFrom: Int
    /// cos and sin are multiplied by this (LongRoPE's attention factor; 1 otherwise).
    let magnitude: Float
    private var tables = Tables(), longTables = Tables()
    private let lock = NSLock()

    struct Tables {
        var cos: [Float] = []   // [positions, R/2]
        var sin: [Float] = []
        var positions = 0
    }

    /// The rotary embedding of `config`'s layers, or with `settings` (Gemma 3's local layers).
    public init(config: ModelConfig, settings: RoPEConfig? = nil) {
        let rope = settings ?? config.rope
        headDim = config.headDim
        rotaryDim = config.rotaryDim
        pairs = config.interleavedRotary
        invFreq = rope.inverseFrequencies(headDim: config.rotaryDim)
        if case let .longrope(_, _, original, factor) = rope.scaling {
            longInvFreq = rope.inverseFrequencies(headDim: config.rotaryDim, long: true)
            longFrom = original
            magnitude = factor
        } else {
            longInvFreq = nil
            longFrom = Int.max
            magnitude = 1
        }
    }

    /// Makes sure tables cover positions [0, count).
    func reserve(_ count: Int) {
        lock.lock(); defer { lock.unlock() }
        grow(&tables, invFreq, count)
        if let longInvFreq, count > longFrom { grow(&longTables, longInvFreq, count) }
    }

    private func grow(_ t: inout Tables, _ inv: [Float], _ count: Int) {
        guard count > t.positions else { return }
        let target = max(count, t.positions * 2, 256)
        let half = rotaryDim / 2
        var c = [Float](repeating: 0, count: target * half), s = c
        for p in 0..<target {
            for i in 0..<half {
                // f32 angle like transformers (position * inv_freq in float32), then an exact cos/sin.
                let angle = Double(Float(p) * inv[i])
                c[p * half + i] = Float(cos(angle)) * magnitude
                s[p * half + i] = Float(sin(angle)) * magnitude
            }
        }
        t = Tables(cos: c, sin: s, positions: target)
    }

    /// The rows of one model pass over one sequence and the furthest position that pass reaches: LongRoPE picks
    /// one set of frequencies per pass by it, as transformers does per forward call.
    typealias Pass = (rows: Range<Int>, furthest: Int)

    /// Rotates every head of x[rows, heads * D] in place; `inverse` applies the transpose (the backward).
    /// `passes` split the rows by sequence for LongRoPE (nil: one pass reaching the rows' furthest position).
    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, positions pos: UnsafePointer<Int32>,
               inverse: Bool = false, passes: [Pass]? = nil) {
        if longInvFreq != nil, let passes, passes.count > 1 {
            for p in passes where !p.rows.isEmpty {
                let at = p.rows.lowerBound
                apply(x + at * heads * headDim, rows: p.rows.count, heads: heads, positions: pos + at, inverse: inverse,
                      passes: [(0..<p.rows.count, p.furthest)])
            }
            return
        }
        let d = headDim, r = rotaryDim
        var furthest = Int32(passes?.first?.furthest ?? 0)
        for i in 0..<rows { furthest = max(furthest, pos[i]) }
        let long = longInvFreq != nil && Int(furthest) + 1 > longFrom
        if long { reserve(Int(furthest) + 1) }
        // Snapshot the tables: another session may be growing them.
        lock.lock()
        let t = long ? longTables : tables
        lock.unlock()
        precondition(Int(furthest) < t.positions, "RoPE tables do not cover position \(furthest)")
        t.cos.withUnsafeBufferPointer { cp in
            t.sin.withUnsafeBufferPointer { sp in
                let cb = cp.baseAddress!, sb = sp.baseAddress!
                Parallel.forRanges(rows, minChunk: 32) { range in
                    Ops.rope(x + range.lowerBound * heads * d, rows: range.count, heads: heads, headDim: d,
                             rotaryDim: r, positions: pos + range.lowerBound, cos: cb, sin: sb, sign: inverse ? -1 : 1,
                             pairs: pairs)
                }
            }
        }
    }
}

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
    /// Qwen v1's dynamic NTK: the training length past which a pass raises the base, and the settings it raises.
    let ntkLength: Int?
    private let settings: RoPEConfig
    private var tables = Tables(), longTables = Tables()
    /// Dynamic NTK's tables by alpha (alpha 1 is `tables`).
    private var ntkCache: [Int: (invFreq: [Float], tables: Tables)] = [:]
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
        self.settings = rope
        ntkLength = config.dynamicNTKLength
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

    /// The rows of one model pass over one sequence, the furthest position that pass reaches (LongRoPE picks one set
    /// of frequencies per pass by it, as transformers does per forward call) and the context length that sets dynamic
    /// NTK's alpha (0 in training; Qwen v1 decides it once per generation, at the prefill).
    typealias Pass = (rows: Range<Int>, furthest: Int, ntkLength: Int)

    /// Qwen v1's dynamic-NTK alpha for a context of `length` positions trained at `trained`:
    /// 2^ceil(log2(length / trained) + 1) - 1, at least 1 (the logarithm taken as Python's math.log(x, 2)).
    public static func ntkAlpha(length: Int, trained: Int) -> Int {
        guard length > trained else { return 1 }
        let context = log(Double(length) / Double(trained)) / log(2.0) + 1
        return max(1, Int(pow(2, context.rounded(.up))) - 1)
    }

    /// Tables for alpha > 1 covering positions [0, count): the base times alpha^(R / (R - 2)).
    private func ntkTables(alpha: Int, count: Int) -> Tables {
        lock.lock(); defer { lock.unlock() }
        var entry = ntkCache[alpha] ?? {
            var raised = settings
            raised.theta = settings.theta * pow(Double(alpha), Double(rotaryDim) / Double(rotaryDim - 2))
            return (raised.inverseFrequencies(headDim: rotaryDim), Tables())
        }()
        grow(&entry.tables, entry.invFreq, count)
        ntkCache[alpha] = entry
        return entry.tables
    }

    /// Rotates every head of x[rows, heads * D] in place; `inverse` applies the transpose (the backward).
    /// `passes` split the rows by sequence for LongRoPE (nil: one pass reaching the rows' furthest position).
    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, heads: Int, positions pos: UnsafePointer<Int32>,
               inverse: Bool = false, passes: [Pass]? = nil) {
        if longInvFreq != nil || ntkLength != nil, let passes, passes.count > 1 {
            for p in passes where !p.rows.isEmpty {
                let at = p.rows.lowerBound
                apply(x + at * heads * headDim, rows: p.rows.count, heads: heads, positions: pos + at, inverse: inverse,
                      passes: [(0..<p.rows.count, p.furthest, p.ntkLength)])
            }
            return
        }
        let d = headDim, r = rotaryDim
        var furthest = Int32(passes?.first?.furthest ?? 0)
        for i in 0..<rows { furthest = max(furthest, pos[i]) }
        let long = longInvFreq != nil && Int(furthest) + 1 > longFrom
        if long { reserve(Int(furthest) + 1) }
        let alpha = ntkLength.map { RoPE.ntkAlpha(length: passes?.first?.ntkLength ?? 0, trained: $0) } ?? 1
        // Snapshot the tables: another session may be growing them.
        let t: Tables
        if alpha > 1 {
            t = ntkTables(alpha: alpha, count: Int(furthest) + 1)
        } else {
            lock.lock()
            t = long ? longTables : tables
            lock.unlock()
        }
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

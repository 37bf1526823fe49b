import Foundation
import Kernels
import Transformer

/// Low-rank side-cars `y += scaling * B(A(dropout(x)))` at chosen projections. All A and B matrices live in one
/// flat parameter buffer (with a twin for gradients), so optimisers and checkpoints see a single vector.
///
/// ```swift
/// let lora = try LoRAAdapter(config: LoRAConfig(r: 8, alpha: 16), model: model.config, seed: 42)
/// model.adapter = lora
/// ```
public final class LoRAAdapter: ProjectionAdapter, @unchecked Sendable {
    /// One adapted projection: A [r, in] at `aOffset`, B [out, r] at `bOffset` in the flat buffers.
    public struct Site: Sendable {
        public let site: ProjectionSite
        public let rank: Int
        public let inFeatures: Int
        public let outFeatures: Int
        public let scaling: Float
        public let aOffset: Int
        public let bOffset: Int
        /// Index used to derive this site's dropout stream.
        let index: Int
    }

    public let config: LoRAConfig
    public let sites: [ProjectionSite: Site]
    public let orderedSites: [Site]
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    /// Dropout probability applied to the side-car input while training.
    public var dropout: Float

    // Per-site h = dropout(x) A^T [rows, r] kept from forward for backward; sized by `reserve(rows:)`.
    private var saved: [ProjectionSite: FloatBuffer] = [:]
    private var savedCapacity = 0
    private var scratch = FloatBuffer(count: 0)
    private var dhScratch = FloatBuffer(count: 0)   // [rows, max rank]
    private let lock = NSLock()

    public var parameterCount: Int { parameters.count }

    public init(config: LoRAConfig, model: ModelConfig) throws {
        try config.validate()
        self.config = config
        dropout = Float(config.dropout)
        var list: [Site] = []
        var offset = 0
        for (i, s) in try TargetModules.sites(for: config, layerCount: model.layerCount).enumerated() {
            let (out, inp) = Self.shape(of: s.projection, model)
            let r = TargetModules.patternValue(config.rankPattern, moduleName: s.moduleName) ?? config.r
            let alpha = TargetModules.patternValue(config.alphaPattern, moduleName: s.moduleName) ?? config.alpha
            list.append(Site(site: s, rank: r, inFeatures: inp, outFeatures: out,
                             scaling: LoRAConfig.scaling(r: r, alpha: alpha, rsLoRA: config.useRSLoRA),
                             aOffset: offset, bOffset: offset + r * inp, index: i))
            offset += r * inp + out * r
        }
        orderedSites = list
        sites = Dictionary(uniqueKeysWithValues: list.map { ($0.site, $0) })
        parameters = FloatBuffer(count: offset)
        gradients = FloatBuffer(count: offset)
    }

    /// PEFT's default initialisation: A ~ Kaiming-uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0.
    public func initialize(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        for s in orderedSites {
            let bound = 1 / Float(s.inFeatures).squareRoot()
            for i in 0..<(s.rank * s.inFeatures) {
                parameters[s.aOffset + i] = (rng.nextUniform() * 2 - 1) * bound
            }
            (parameters.pointer + s.bOffset).update(repeating: 0, count: s.outFeatures * s.rank)
        }
    }

    static func shape(of p: Projection, _ c: ModelConfig) -> (out: Int, in: Int) {
        switch p {
        case .q: (c.qDim, c.hiddenSize)
        case .k, .v: (c.kvDim, c.hiddenSize)
        case .o: (c.hiddenSize, c.qDim)
        case .gate, .up: (c.intermediateSize, c.hiddenSize)
        case .down: (c.hiddenSize, c.intermediateSize)
        }
    }

    // MARK: ProjectionAdapter

    public func attaches(to site: ProjectionSite) -> Bool { sites[site] != nil }

    public var lowestTrainableLayer: Int? { orderedSites.map(\.site.layer).min() }

    /// Sizes the per-site saved activations for passes of up to `rows` rows (call before training).
    public func reserve(rows: Int) {
        lock.lock(); defer { lock.unlock() }
        guard rows > savedCapacity else { return }
        for s in orderedSites { saved[s.site] = FloatBuffer(count: rows * s.rank) }
        let widest = orderedSites.map { max($0.inFeatures, $0.outFeatures) }.max() ?? 0
        scratch = FloatBuffer(count: rows * widest)
        dhScratch = FloatBuffer(count: rows * (orderedSites.map(\.rank).max() ?? 0))
        savedCapacity = rows
    }

    private func usesDropout(_ context: PassContext) -> Bool { context.training && dropout > 0 }

    /// The dropout stream of a site in one pass.
    private func dropoutKey(_ site: Site, _ context: PassContext) -> UInt64 {
        SplitMix64.mix(context.randomKey &+ UInt64(site.index) &* 0x9E37_79B9)
    }

    /// x with dropout applied (x * mask / (1 - p)) into `out`; the mask is a pure function of (key, site, index).
    private func applyDropout(_ x: UnsafePointer<Float>, count: Int, site: Site, context: PassContext,
                              into out: UnsafeMutablePointer<Float>) {
        Ops.dropout(x, into: out, count: count, p: dropout, key: dropoutKey(site, context))
    }

    public func forward(site ps: ProjectionSite, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>,
                        context: PassContext) {
        guard let s = sites[ps] else { return }
        let a = parameters.pointer + s.aOffset, b = parameters.pointer + s.bOffset
        let h: UnsafeMutablePointer<Float>
        let temporary: FloatBuffer?
        if context.training {
            reserve(rows: rows)
            h = saved[ps]!.pointer
            temporary = nil
        } else {
            temporary = FloatBuffer(count: rows * s.rank)
            h = temporary!.pointer
        }
        defer { withExtendedLifetime(temporary) {} }
        var input = x
        if usesDropout(context) {
            applyDropout(x, count: rows * s.inFeatures, site: s, context: context, into: scratch.pointer)
            input = UnsafePointer(scratch.pointer)
        }
        // h[rows, r] = x A^T ; y[rows, out] += scaling * h B^T
        Gemm.multiply(m: rows, n: s.rank, k: s.inFeatures, a: input, lda: s.inFeatures, b: a, ldb: s.inFeatures,
                      transposeB: true, c: h, ldc: s.rank)
        Gemm.multiply(m: rows, n: s.outFeatures, k: s.rank, a: h, lda: s.rank, b: b, ldb: s.rank, transposeB: true,
                      c: y, ldc: s.outFeatures, alpha: s.scaling, accumulate: true)
    }

    public func backward(site ps: ProjectionSite, x: UnsafePointer<Float>, dy: UnsafePointer<Float>, rows: Int,
                         dx: UnsafeMutablePointer<Float>?, context: PassContext) {
        reserve(rows: rows)
        guard let s = sites[ps], let hBuffer = saved[ps] else { return }
        defer { withExtendedLifetime(hBuffer) {} }
        let a = parameters.pointer + s.aOffset, b = parameters.pointer + s.bOffset
        let ga = gradients.pointer + s.aOffset, gb = gradients.pointer + s.bOffset
        let h = hBuffer.pointer
        let dh = dhScratch
        // dB[out, r] += scaling * dy^T h
        Gemm.multiply(m: s.outFeatures, n: s.rank, k: rows, a: dy, lda: s.outFeatures, transposeA: true, b: h,
                      ldb: s.rank, c: gb, ldc: s.rank, alpha: s.scaling, accumulate: true)
        // dh[rows, r] = scaling * dy B
        Gemm.multiply(m: rows, n: s.rank, k: s.outFeatures, a: dy, lda: s.outFeatures, b: b, ldb: s.rank,
                      c: dh.pointer, ldc: s.rank, alpha: s.scaling)
        var input = x
        let dropped = usesDropout(context)
        if dropped {
            applyDropout(x, count: rows * s.inFeatures, site: s, context: context, into: scratch.pointer)
            input = UnsafePointer(scratch.pointer)
        }
        // dA[r, in] += dh^T dropout(x)
        Gemm.multiply(m: s.rank, n: s.inFeatures, k: rows, a: dh.pointer, lda: s.rank, transposeA: true, b: input,
                      ldb: s.inFeatures, c: ga, ldc: s.inFeatures, accumulate: true)
        guard let dx else { return }
        if !dropped {
            // dx[rows, in] += dh A
            Gemm.multiply(m: rows, n: s.inFeatures, k: s.rank, a: dh.pointer, lda: s.rank, b: a, ldb: s.inFeatures,
                          c: dx, ldc: s.inFeatures, accumulate: true)
            return
        }
        // With dropout: dx += (dh A) * mask / (1 - p). scratch holds dropout(x); reuse it for dh A.
        let count = rows * s.inFeatures
        Gemm.multiply(m: rows, n: s.inFeatures, k: s.rank, a: dh.pointer, lda: s.rank, b: a, ldb: s.inFeatures,
                      c: scratch.pointer, ldc: s.inFeatures)
        Ops.dropoutBackwardAdd(scratch.pointer, into: dx, count: count, p: dropout, key: dropoutKey(s, context))
    }

    /// Zeroes the gradient buffer (start of an optimiser step).
    public func zeroGradients() { gradients.zero() }
}

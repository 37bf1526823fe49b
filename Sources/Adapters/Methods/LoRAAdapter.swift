import Foundation
import Kernels
import Transformer

/// Low-rank side-cars `y = W x + b + scaling * B(A(dropout(x)))` at chosen projections, and DoRA (`useDoRA`),
/// which splits the adapted weight into a trainable magnitude and a direction:
/// `y = m / ||W + s B A||_row * (W x + s B A x) + b`, the norm detached as PEFT does. All A, B (and magnitude)
/// tensors live in one flat parameter buffer with a twin for gradients.
///
/// ```swift
/// let lora = try LoRAAdapter(config: LoRAConfig(r: 8, alpha: 16), model: model.config)
/// lora.initialize(seed: 42)
/// model.adapter = lora
/// ```
public final class LoRAAdapter: TrainableAdapter, @unchecked Sendable {
    /// One adapted projection: A [r, in] at `aOffset`, B [out, r] at `bOffset`, DoRA's magnitude [out] at
    /// `magnitudeOffset` in the flat buffers.
    public struct Site: Sendable {
        public let site: ProjectionSite
        /// The module's name in the model's checkpoints (`model.layers.0.self_attn.q_proj`).
        public let moduleName: String
        public let rank: Int
        public let inFeatures: Int
        public let outFeatures: Int
        public let scaling: Float
        public let aOffset: Int
        public let bOffset: Int
        public let magnitudeOffset: Int?
        /// Index used to derive this site's dropout stream.
        let index: Int
    }

    public let config: LoRAConfig
    public let sites: [ProjectionSite: Site]
    public let orderedSites: [Site]
    public let parameters: FloatBuffer
    public let gradients: FloatBuffer
    /// LoRA on the mixture's experts (`target_parameters`), after the sites' matrices in the same buffers.
    public let experts: LoRAExperts?
    /// Dropout probability applied to the side-car input while training.
    public var dropout: Float

    // Per-site h = dropout(x) A^T [rows, r] (and DoRA's z = W x' + s B A x' [rows, out]) kept for backward.
    private var saved: [ProjectionSite: FloatBuffer] = [:]
    private var savedZ: [ProjectionSite: FloatBuffer] = [:]
    private var savedCapacity = 0
    private var scratch = FloatBuffer(count: 0)     // [rows, widest]
    private var scratch2 = FloatBuffer(count: 0)    // [rows, widest] (DoRA)
    private var dhScratch = FloatBuffer(count: 0)   // [rows, max rank]
    // DoRA: ||W_j||^2 per site (fixed) and ||W + s B A||_j per site at `normVersion`.
    private var weightSquares: [ProjectionSite: [Float]] = [:]
    private var norms: [ProjectionSite: (version: Int, values: [Float])] = [:]
    private var version = 0
    private let lock = NSLock()

    public var method: AdapterMethod { config.useDoRA ? .dora : .lora }

    public init(config: LoRAConfig, model: ModelConfig) throws {
        try config.validate()
        self.config = config
        dropout = Float(config.dropout)
        var list: [Site] = []
        var offset = 0
        if !config.targetParameters.isEmpty && model.moe == nil {
            throw AdapterError.config(path: "target_parameters", reason: "\(config.targetParameters.joined(separator: ", ")) needs a mixture-of-experts model; this one has none")
        }
        // target_parameters alone (no target_modules) adapts the experts only.
        let onlyExperts = config.targetModules == .names([]) && !config.targetParameters.isEmpty
        for (i, s) in (onlyExperts ? [] : try TargetModules.sites(for: config, model: model)).enumerated() {
            let (inp, out) = model.features(s.projection), name = model.layout.moduleName(s)
            let r = TargetModules.patternValue(config.rankPattern, moduleName: name) ?? config.r
            let alpha = TargetModules.patternValue(config.alphaPattern, moduleName: name) ?? config.alpha
            let next = offset + r * inp + out * r
            list.append(Site(site: s, moduleName: name, rank: r, inFeatures: inp, outFeatures: out,
                             scaling: LoRAConfig.scaling(r: r, alpha: alpha, rsLoRA: config.useRSLoRA),
                             aOffset: offset, bOffset: offset + r * inp, magnitudeOffset: config.useDoRA ? next : nil,
                             index: i))
            offset = next + (config.useDoRA ? out : 0)
        }
        orderedSites = list
        sites = Dictionary(uniqueKeysWithValues: list.map { ($0.site, $0) })
        let expertOffset = offset
        offset += LoRAExperts.size(config: config, model: model)
        parameters = FloatBuffer(count: offset)
        gradients = FloatBuffer(count: offset)
        experts = config.targetParameters.isEmpty ? nil
            : LoRAExperts(config: config, model: model, offset: expertOffset, parameters: parameters, gradients: gradients)
    }

    /// PEFT's default initialisation: A ~ Kaiming-uniform(a = sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)), B = 0; DoRA's
    /// magnitude = ||W||_row of the frozen weights (`weights` is required for DoRA).
    public func initialize(seed: UInt64, weights: ModelWeights? = nil) {
        var rng = SeededGenerator(seed: seed)
        for s in orderedSites {
            let bound = 1 / Float(s.inFeatures).squareRoot()
            for i in 0..<(s.rank * s.inFeatures) {
                parameters[s.aOffset + i] = (rng.nextUniform() * 2 - 1) * bound
            }
            (parameters.pointer + s.bOffset).update(repeating: 0, count: s.outFeatures * s.rank)
            if let mo = s.magnitudeOffset, let weights {
                let squares = weightSquares(s, weights.layers[s.site.layer].linear(s.site.projection))
                for j in 0..<s.outFeatures { parameters[mo + j] = squares[j].squareRoot() }
            }
        }
        experts?.initialize(&rng)
        parametersDidChange()
    }

    // MARK: TrainableAdapter

    public var namedParameters: [NamedParameter] {
        orderedSites.flatMap { s -> [NamedParameter] in
            var list = [NamedParameter(name: Self.key(s.moduleName, "lora_A"), shape: [s.rank, s.inFeatures], offset: s.aOffset),
                        NamedParameter(name: Self.key(s.moduleName, "lora_B"), shape: [s.outFeatures, s.rank], offset: s.bOffset)]
            if let mo = s.magnitudeOffset {
                list.append(NamedParameter(name: "base_model.model.\(s.moduleName).lora_magnitude_vector.weight",
                                           shape: [s.outFeatures], offset: mo))
            }
            return list
        } + (experts?.namedParameters ?? [])
    }

    public func peftConfig(baseModel: String?) -> [String: Any] {
        var c = config.object()
        if let baseModel { c["base_model_name_or_path"] = baseModel }
        return c
    }

    public func savedTensors() -> [(key: String, shape: [Int], values: [Float])] {
        namedParameters.map { p in
            // PEFT saves DoRA's magnitude without the ".weight" suffix.
            let key = p.name.hasSuffix(".lora_magnitude_vector.weight") ? String(p.name.dropLast(".weight".count)) : p.name
            return (key, p.shape, Array(UnsafeBufferPointer(start: parameters.pointer + p.offset, count: p.count)))
        }
    }

    public var summary: String {
        let alpha = Int(exactly: config.alpha).map(String.init) ?? String(config.alpha)
        let experts = self.experts.map { e in " and \(e.blocks.count) stacked expert parameters (\(config.targetParameters.joined(separator: ", ")))" } ?? ""
        return "\(method.title) r=\(config.r) alpha=\(alpha)\(config.useRSLoRA ? " (rsLoRA)" : "") on \(orderedSites.count) projections\(experts)"
    }

    public func parametersDidChange() { version += 1 }

    public var mergedTensorNames: [String] { orderedSites.map { $0.moduleName + ".weight" } + (experts?.mergedTensorNames ?? []) }

    /// W' = W + s B A (LoRA) or m / ||W + s B A||_row * (W + s B A) (DoRA), in f32.
    public func merge(tensor name: String, values: UnsafeMutablePointer<Float>, shape: [Int]) -> Bool {
        guard let s = orderedSites.first(where: { $0.moduleName + ".weight" == name }) else {
            return experts?.merge(tensor: name, values: values, shape: shape) ?? false
        }
        guard shape == [s.outFeatures, s.inFeatures], let delta = delta(for: s.site) else { return false }
        delta.withUnsafeBufferPointer { d in Ops.add(d.baseAddress!, into: values, count: delta.count) }
        if let mo = s.magnitudeOffset {
            for j in 0..<s.outFeatures {
                let row = values + j * s.inFeatures
                let norm = Float(Ops.sumOfSquares(row, count: s.inFeatures).squareRoot())
                let g = parameters[mo + j] / norm
                for i in 0..<s.inFeatures { row[i] *= g }
            }
        }
        return true
    }

    // MARK: ModelAdapter

    public func attaches(to site: ProjectionSite) -> Bool { sites[site] != nil }

    public var lowestTrainableLayer: Int? { (orderedSites.map(\.site.layer) + (experts?.blocks.map(\.layer) ?? [])).min() }

    public var expertAdapter: ExpertAdapter? { experts }

    /// Sizes the per-site saved activations for passes of up to `rows` rows (call before training).
    public func reserve(rows: Int) {
        lock.lock(); defer { lock.unlock() }
        guard rows > savedCapacity else { return }
        for s in orderedSites {
            saved[s.site] = FloatBuffer(count: rows * s.rank)
            if config.useDoRA { savedZ[s.site] = FloatBuffer(count: rows * s.outFeatures) }
        }
        let widest = orderedSites.map { max($0.inFeatures, $0.outFeatures) }.max() ?? 0
        scratch = FloatBuffer(count: rows * widest)
        if config.useDoRA { scratch2 = FloatBuffer(count: rows * widest) }
        dhScratch = FloatBuffer(count: rows * (orderedSites.map(\.rank).max() ?? 0))
        savedCapacity = rows
    }

    private func usesDropout(_ context: PassContext) -> Bool { context.training && dropout > 0 }

    /// The dropout stream of a site in one pass.
    private func dropoutKey(_ site: Site, _ context: PassContext) -> UInt64 {
        SplitMix64.mix(context.randomKey &+ UInt64(site.index) &* 0x9E37_79B9)
    }

    /// x with dropout applied (x * mask / (1 - p)) into `out`; the mask is a pure function of (key, site, index),
    /// with one key per sequence when the context names them (the index then counts within the sequence).
    private func applyDropout(_ x: UnsafePointer<Float>, count: Int, site: Site, context: PassContext,
                              into out: UnsafeMutablePointer<Float>) {
        forEachDropoutSegment(count: count, site: site, context: context) { offset, n, key in
            Ops.dropout(x + offset, into: out + offset, count: n, p: dropout, key: key)
        }
    }

    /// The dropout streams of a pass: (element offset, count, key) per sequence, or the whole pass under one key.
    private func forEachDropoutSegment(count: Int, site: Site, context: PassContext, _ body: (Int, Int, UInt64) -> Void) {
        let rows = context.sequenceRows.reduce(0, +)
        guard !context.sequenceKeys.isEmpty, context.sequenceKeys.count == context.sequenceRows.count, rows > 0,
              count % rows == 0 else {
            body(0, count, dropoutKey(site, context))
            return
        }
        let width = count / rows
        var offset = 0
        for (key, n) in zip(context.sequenceKeys, context.sequenceRows) {
            body(offset, n * width, SplitMix64.mix(key &+ UInt64(site.index) &* 0x9E37_79B9))
            offset += n * width
        }
    }

    // MARK: DoRA weight norms

    /// ||W_j||^2 of every output row of the frozen weight (computed once per site).
    private func weightSquares(_ s: Site, _ linear: Linear) -> [Float] {
        if let w = weightSquares[s.site] { return w }
        var row = [Float](repeating: 0, count: s.inFeatures)
        let values = (0..<s.outFeatures).map { j -> Float in
            row.withUnsafeMutableBufferPointer { linear.weight.readRow(j, into: $0.baseAddress!) }
            return row.withUnsafeBufferPointer { Float(Ops.sumOfSquares($0.baseAddress!, count: s.inFeatures)) }
        }
        weightSquares[s.site] = values
        return values
    }

    /// ||W_j + s (B A)_j|| for every output row j, recomputed once per parameter change without forming W + s B A:
    /// ||W_j||^2 + 2 s B_j . (A W^T)_{:,j} + s^2 B_j (A A^T) B_j^T.
    private func weightNorms(_ s: Site, _ linear: Linear) -> [Float] {
        if let n = norms[s.site], n.version == version { return n.values }
        let squares = weightSquares(s, linear)
        let r = s.rank, a = parameters.pointer + s.aOffset, b = parameters.pointer + s.bOffset
        var aw = [Float](repeating: 0, count: r * s.outFeatures)     // [r, out] = A W^T
        var gram = [Float](repeating: 0, count: r * r)               // [r, r] = A A^T
        aw.withUnsafeMutableBufferPointer { linear.weight.forward(a, rows: r, into: $0.baseAddress!) }
        gram.withUnsafeMutableBufferPointer {
            Gemm.multiply(m: r, n: r, k: s.inFeatures, a: a, lda: s.inFeatures, b: a, ldb: s.inFeatures,
                          transposeB: true, c: $0.baseAddress!, ldc: r)
        }
        let sc = s.scaling
        let values = (0..<s.outFeatures).map { j -> Float in
            let bj = b + j * r
            var cross: Float = 0, quad: Float = 0
            for k in 0..<r {
                cross += bj[k] * aw[k * s.outFeatures + j]
                var gk: Float = 0
                for l in 0..<r { gk += gram[k * r + l] * bj[l] }
                quad += bj[k] * gk
            }
            return max(0, squares[j] + 2 * sc * cross + sc * sc * quad).squareRoot()
        }
        norms[s.site] = (version, values)
        return values
    }

    // MARK: Forward and backward

    public func project(site ps: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, rows: Int,
                        out: UnsafeMutablePointer<Float>, context: PassContext) {
        guard let s = sites[ps] else { linear.forward(x, rows: rows, into: out, exact: context.exact); return }
        let a = parameters.pointer + s.aOffset, b = parameters.pointer + s.bOffset
        if context.training { reserve(rows: rows) }
        let temporary: FloatBuffer? = context.training ? nil : FloatBuffer(count: rows * s.rank)
        let h = temporary?.pointer ?? saved[ps]!.pointer
        defer { withExtendedLifetime(temporary) {} }
        var input = x
        if usesDropout(context) {
            applyDropout(x, count: rows * s.inFeatures, site: s, context: context, into: scratch.pointer)
            input = UnsafePointer(scratch.pointer)
        }
        // h[rows, r] = x' A^T
        Gemm.multiply(m: rows, n: s.rank, k: s.inFeatures, a: input, lda: s.inFeatures, b: a, ldb: s.inFeatures,
                      transposeB: true, c: h, ldc: s.rank)
        guard let mo = s.magnitudeOffset else {
            // y[rows, out] = W x + b + scaling * h B^T
            linear.forward(x, rows: rows, into: out, exact: context.exact)
            Gemm.multiply(m: rows, n: s.outFeatures, k: s.rank, a: h, lda: s.rank, b: b, ldb: s.rank, transposeB: true,
                          c: out, ldc: s.outFeatures, alpha: s.scaling, accumulate: true)
            return
        }
        // DoRA: z = W x' + s h B^T ; g = m / ||W + s B A|| ; y = W x + b + g z - W x' (= g z + b without dropout).
        let g = doraScale(s, linear)
        let zTemp: FloatBuffer? = context.training ? nil : FloatBuffer(count: rows * s.outFeatures)
        let z = zTemp?.pointer ?? savedZ[ps]!.pointer
        defer { withExtendedLifetime(zTemp) {} }
        linear.weight.forward(input, rows: rows, into: z, exact: context.exact)
        if usesDropout(context) {
            linear.forward(x, rows: rows, into: out, exact: context.exact)
            Ops.axpy(-1, z, out, count: rows * s.outFeatures)
        } else {
            out.update(repeating: 0, count: rows * s.outFeatures)
            if let bias = linear.bias { Ops.addBias(bias.pointer, to: out, rows: rows, cols: s.outFeatures) }
        }
        Gemm.multiply(m: rows, n: s.outFeatures, k: s.rank, a: h, lda: s.rank, b: b, ldb: s.rank, transposeB: true,
                      c: z, ldc: s.outFeatures, alpha: s.scaling, accumulate: true)
        g.withUnsafeBufferPointer { gp in
            Parallel.forRanges(rows, minChunk: 16) { r in
                for i in r {
                    let zi = z + i * s.outFeatures, oi = out + i * s.outFeatures
                    for j in 0..<s.outFeatures { oi[j] += gp[j] * zi[j] }
                }
            }
        }
        _ = mo
    }

    /// g_j = m_j / ||W + s B A||_j.
    private func doraScale(_ s: Site, _ linear: Linear) -> [Float] {
        let norms = weightNorms(s, linear)
        let m = parameters.pointer + (s.magnitudeOffset ?? 0)
        return (0..<s.outFeatures).map { m[$0] / max(norms[$0], 1e-30) }
    }

    /// Inference on top of the frozen product: out += scaling * (x A^T) B^T, as `project` adds it. DoRA rescales the
    /// whole output and runs `project` again.
    public func refineProjection(site ps: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, rows: Int,
                                 out: UnsafeMutablePointer<Float>, context: PassContext) {
        guard let s = sites[ps] else { return }
        guard s.magnitudeOffset == nil, !context.training else {
            project(site: ps, linear: linear, x: x, rows: rows, out: out, context: context)
            return
        }
        let a = parameters.pointer + s.aOffset, b = parameters.pointer + s.bOffset
        let h = FloatBuffer(count: rows * s.rank)
        Gemm.multiply(m: rows, n: s.rank, k: s.inFeatures, a: x, lda: s.inFeatures, b: a, ldb: s.inFeatures,
                      transposeB: true, c: h.pointer, ldc: s.rank)
        Gemm.multiply(m: rows, n: s.outFeatures, k: s.rank, a: h.pointer, lda: s.rank, b: b, ldb: s.rank, transposeB: true,
                      c: out, ldc: s.outFeatures, alpha: s.scaling, accumulate: true)
    }

    public func projectBackward(site ps: ProjectionSite, linear: Linear, x: UnsafePointer<Float>,
                                dy: UnsafePointer<Float>, rows: Int, dx: UnsafeMutablePointer<Float>?,
                                accumulate: Bool, context: PassContext) {
        guard let s = sites[ps] else {
            if let dx { linear.backwardInput(dy, rows: rows, into: dx, accumulate: accumulate) }
            return
        }
        reserve(rows: rows)
        guard let hBuffer = saved[ps] else { return }
        let a = parameters.pointer + s.aOffset, b = parameters.pointer + s.bOffset
        let ga = gradients.pointer + s.aOffset, gb = gradients.pointer + s.bOffset
        let h = hBuffer.pointer, dh = dhScratch.pointer
        let dropped = usesDropout(context)
        let count = rows * s.inFeatures
        // dz: the gradient reaching the low-rank branch (dy, or dy * g for DoRA).
        var dz = dy
        var g: [Float] = []
        if let mo = s.magnitudeOffset, let zBuffer = savedZ[ps] {
            g = doraScale(s, linear)
            let norms = weightNorms(s, linear)
            let z = zBuffer.pointer, scaled = scratch2.pointer, gm = gradients.pointer + mo
            // dm_j += sum_rows dy * z / ||W + s B A||_j ; dz = dy * g
            for j in 0..<s.outFeatures {
                var acc: Float = 0
                for i in 0..<rows { acc += dy[i * s.outFeatures + j] * z[i * s.outFeatures + j] }
                gm[j] += acc / max(norms[j], 1e-30)
            }
            g.withUnsafeBufferPointer { gp in
                Parallel.forRanges(rows, minChunk: 16) { r in
                    for i in r {
                        for j in 0..<s.outFeatures { scaled[i * s.outFeatures + j] = dy[i * s.outFeatures + j] * gp[j] }
                    }
                }
            }
            dz = UnsafePointer(scaled)
        }
        // dB[out, r] += scaling * dz^T h ; dh[rows, r] = scaling * dz B
        Gemm.multiply(m: s.outFeatures, n: s.rank, k: rows, a: dz, lda: s.outFeatures, transposeA: true, b: h,
                      ldb: s.rank, c: gb, ldc: s.rank, alpha: s.scaling, accumulate: true)
        Gemm.multiply(m: rows, n: s.rank, k: s.outFeatures, a: dz, lda: s.outFeatures, b: b, ldb: s.rank,
                      c: dh, ldc: s.rank, alpha: s.scaling)
        var input = x
        if dropped {
            applyDropout(x, count: count, site: s, context: context, into: scratch.pointer)
            input = UnsafePointer(scratch.pointer)
        }
        // dA[r, in] += dh^T x'
        Gemm.multiply(m: s.rank, n: s.inFeatures, k: rows, a: dh, lda: s.rank, transposeA: true, b: input,
                      ldb: s.inFeatures, c: ga, ldc: s.inFeatures, accumulate: true)
        guard let dx else { return }
        let dora = s.magnitudeOffset != nil
        if !dropped {
            // dx (+)= dz W + dh A  (dz = dy for LoRA)
            linear.backwardInput(dz, rows: rows, into: dx, accumulate: accumulate)
            Gemm.multiply(m: rows, n: s.inFeatures, k: s.rank, a: dh, lda: s.rank, b: a, ldb: s.inFeatures,
                          c: dx, ldc: s.inFeatures, accumulate: true)
            return
        }
        // With dropout: dx (+)= dy W + dropout'(dx'), dx' = dh A (+ ((g - 1) dy) W for DoRA).
        linear.backwardInput(dy, rows: rows, into: dx, accumulate: accumulate)
        Gemm.multiply(m: rows, n: s.inFeatures, k: s.rank, a: dh, lda: s.rank, b: a, ldb: s.inFeatures,
                      c: scratch.pointer, ldc: s.inFeatures)
        if dora {
            // scratch2 holds dy * g; make it dy * (g - 1) and add its product with W.
            Ops.axpy(-1, dy, scratch2.pointer, count: rows * s.outFeatures)
            linear.weight.backwardInput(scratch2.pointer, rows: rows, into: scratch.pointer, accumulate: true)
        }
        let gradient = UnsafePointer(scratch.pointer)
        forEachDropoutSegment(count: count, site: s, context: context) { offset, n, key in
            Ops.dropoutBackwardAdd(gradient + offset, into: dx + offset, count: n, p: dropout, key: key)
        }
    }
}

import Foundation
import Kernels
import Transformer

/// PEFT's LoRA on a mixture's stacked experts (`target_parameters` `mlp.experts.gate_up_proj` and
/// `mlp.experts.down_proj`, transformers' [E, out, in] expert parameters) and on its router (`mlp.gate.weight`). Per sparse layer and parameter, in PEFT's
/// own layout: lora_A [r*E, in], expert e's A the rows e*r..<(e+1)*r; lora_B [out, r*E], expert e's B the columns
/// k*E + e. Expert e's weight becomes W_e + s B_e A_e; gate_up's rows are the gate's then the up's, so one A_e feeds
/// both. The matrices live in the LoRA adapter's parameter buffer (the optimiser, checkpoints and data-parallel sums
/// see them like any other); no dropout, no DoRA (PEFT allows neither here).
public final class LoRAExperts: ExpertAdapter {
    public enum Parameter: String, Sendable {
        case gateUp = "mlp.experts.gate_up_proj"
        case down = "mlp.experts.down_proj"
        /// The router's [E, C] weight: a plain LoRA (one stack), B A added to the routing logits.
        case router = "mlp.gate.weight"
    }

    /// One targeted parameter of one layer.
    public struct Block: Sendable {
        public let layer: Int
        public let parameter: Parameter
        /// The module path PEFT's keys use: `model.layers.L.mlp.experts`, with one `.base_layer` per parameter wrapped
        /// after this one (gate_up_proj's wrapper is the inner one when both are targeted).
        public let modulePath: String
        public let inFeatures: Int
        public let outFeatures: Int
        /// Matrices stacked in the parameter: the experts' count, 1 for the router.
        public let stack: Int
        public let aOffset: Int
        public let bOffset: Int
    }

    public let rank: Int
    public let experts: Int
    public let scaling: Float
    public let blocks: [Block]
    let parameters: FloatBuffer
    let gradients: FloatBuffer
    private let model: ModelConfig
    private let byLayer: [Int: (gateUp: Block?, down: Block?, router: Block?)]

    /// Lays the blocks out from `offset` in the adapter's buffers (sized by the caller with `size`).
    init(config: LoRAConfig, model: ModelConfig, offset: Int, parameters: FloatBuffer, gradients: FloatBuffer) {
        let moe = model.moe!
        rank = config.r
        experts = moe.experts
        scaling = config.scaling
        self.parameters = parameters
        self.gradients = gradients
        self.model = model
        blocks = Self.layout(config: config, model: model, offset: offset)
        var index: [Int: (gateUp: Block?, down: Block?, router: Block?)] = [:]
        for b in blocks {
            var entry = index[b.layer] ?? (nil, nil, nil)
            switch b.parameter {
            case .gateUp: entry.gateUp = b
            case .down: entry.down = b
            case .router: entry.router = b
            }
            index[b.layer] = entry
        }
        byLayer = index
    }

    /// The blocks from `offset` on: every sparse layer, the parameters in the config's order.
    static func layout(config: LoRAConfig, model: ModelConfig, offset start: Int) -> [Block] {
        guard let moe = model.moe else { return [] }
        let r = config.r, e = moe.experts, c = model.hiddenSize, i = moe.intermediateSize
        // PEFT wraps the module's parameters in their registration order (gate_up_proj, then down_proj), each wrapper
        // around the previous: the first is the innermost, one `.base_layer` deeper per parameter wrapped after it.
        let targeted = [Parameter.gateUp, .down].filter { config.targetParameters.contains($0.rawValue) }
        let n = targeted.count
        var offset = start
        var out: [Block] = []
        let router = config.targetParameters.contains(Parameter.router.rawValue)
        for l in 0..<model.layerCount where model.isSparse(layer: l) {
            if let layers = config.layersToTransform, !layers.contains(l) { continue }
            for (j, p) in targeted.enumerated() {
                let (inp, outp) = p == .gateUp ? (c, 2 * i) : (i, c)
                let path = "\(model.layout.layerPrefix(l)).mlp.experts" + String(repeating: ".base_layer", count: n - 1 - j)
                out.append(Block(layer: l, parameter: p, modulePath: path, inFeatures: inp, outFeatures: outp, stack: e,
                                 aOffset: offset, bOffset: offset + r * e * inp))
                offset += r * e * inp + outp * r * e
            }
            if router {
                out.append(Block(layer: l, parameter: .router, modulePath: "\(model.layout.layerPrefix(l)).mlp.gate", inFeatures: c,
                                 outFeatures: e, stack: 1, aOffset: offset, bOffset: offset + r * c))
                offset += r * c + e * r
            }
        }
        return out
    }

    /// Floats the blocks take.
    static func size(config: LoRAConfig, model: ModelConfig) -> Int {
        layout(config: config, model: model, offset: 0).reduce(0) { $0 + config.r * $1.stack * ($1.inFeatures + $1.outFeatures) }
    }

    public var namedParameters: [NamedParameter] {
        blocks.flatMap { b in
            [NamedParameter(name: "base_model.model.\(b.modulePath).lora_A.weight", shape: [rank * b.stack, b.inFeatures], offset: b.aOffset),
             NamedParameter(name: "base_model.model.\(b.modulePath).lora_B.weight", shape: [b.outFeatures, rank * b.stack], offset: b.bOffset)]
        }
    }

    /// PEFT's initialisation: lora_A as an nn.Linear(in, r*E) (Kaiming-uniform, bound 1/sqrt(in)), lora_B zero.
    func initialize(_ rng: inout SeededGenerator) {
        for b in blocks {
            let bound = 1 / Float(b.inFeatures).squareRoot()
            for i in 0..<(rank * b.stack * b.inFeatures) { parameters[b.aOffset + i] = (rng.nextUniform() * 2 - 1) * bound }
            (parameters.pointer + b.bOffset).update(repeating: 0, count: b.outFeatures * rank * b.stack)
        }
    }

    // MARK: Expert e's factors

    private func a(_ b: Block, _ e: Int) -> UnsafeMutablePointer<Float> { parameters.pointer + b.aOffset + e * rank * b.inFeatures }

    /// B_e [out, r], gathered from the rank-major columns.
    private func gatherB(_ b: Block, _ e: Int) -> [Float] {
        let r = rank, stride = rank * b.stack, base = parameters.pointer + b.bOffset
        var out = [Float](repeating: 0, count: b.outFeatures * r)
        for o in 0..<b.outFeatures {
            for k in 0..<r { out[o * r + k] = base[o * stride + k * b.stack + e] }
        }
        return out
    }

    /// Adds dB_e [out, r] into the gradient's rank-major columns.
    private func scatterGradientB(_ b: Block, _ e: Int, _ d: [Float]) {
        let r = rank, stride = rank * b.stack, base = gradients.pointer + b.bOffset
        for o in 0..<b.outFeatures {
            for k in 0..<r { base[o * stride + k * b.stack + e] += d[o * r + k] }
        }
    }

    /// t [m, r] = x [m, in] · A_e^T.
    private func down(_ b: Block, _ e: Int, _ x: UnsafePointer<Float>, rows m: Int) -> [Float] {
        var t = [Float](repeating: 0, count: m * rank)
        t.withUnsafeMutableBufferPointer {
            Gemm.multiply(m: m, n: rank, k: b.inFeatures, a: x, lda: b.inFeatures, b: a(b, e), ldb: b.inFeatures,
                          transposeB: true, c: $0.baseAddress!, ldc: rank)
        }
        return t
    }

    // MARK: The update of one stacked matrix

    /// One output of an update: rows `rows` of B_e (the gate's or the up's half of gate_up, or all of B_e) and the
    /// buffer [m, rows.count] they write to, or their output gradient [m, rows.count].
    private typealias Slice = (rows: Range<Int>, buffer: UnsafeMutablePointer<Float>)
    private typealias GradientSlice = (rows: Range<Int>, dy: UnsafePointer<Float>)

    /// out += s (x A_e^T) B_e[rows]^T for each slice.
    private func add(_ b: Block, _ e: Int, x: UnsafePointer<Float>, rows m: Int, into slices: [Slice]) {
        guard m > 0 else { return }
        let t = down(b, e, x, rows: m), bf = gatherB(b, e)
        t.withUnsafeBufferPointer { tp in
            bf.withUnsafeBufferPointer { bp in
                for (rows, out) in slices {
                    Gemm.multiply(m: m, n: rows.count, k: rank, a: tp.baseAddress!, lda: rank, b: bp.baseAddress! + rows.lowerBound * rank,
                                  ldb: rank, transposeB: true, c: out, ldc: rows.count, alpha: scaling, accumulate: true)
                }
            }
        }
    }

    /// The backward of `add`: dx [m, in] += dt A_e with dt = s sum over slices of dy B_e[rows] (before `weights`);
    /// dA_e += (w dt)^T x and dB_e[rows] += s (w dy)^T (x A_e^T), each row's gradients times weights[row] when given
    /// (the routing weight a down product's output carries; dx feeds that weight's own gradient, so it takes none).
    private func backward(_ b: Block, _ e: Int, x: UnsafePointer<Float>, rows m: Int, gradients slices: [GradientSlice],
                          weights: UnsafePointer<Float>?, dx: UnsafeMutablePointer<Float>) {
        guard m > 0 else { return }
        let r = rank, inp = b.inFeatures
        let t = down(b, e, x, rows: m), bf = gatherB(b, e)
        var dt = [Float](repeating: 0, count: m * r)
        var dB = [Float](repeating: 0, count: b.outFeatures * r)
        dt.withUnsafeMutableBufferPointer { dtp in
            bf.withUnsafeBufferPointer { bp in
                for (i, (rows, dy)) in slices.enumerated() {
                    Gemm.multiply(m: m, n: r, k: rows.count, a: dy, lda: rows.count, b: bp.baseAddress! + rows.lowerBound * r, ldb: r,
                                  c: dtp.baseAddress!, ldc: r, alpha: scaling, accumulate: i > 0)
                }
            }
            Gemm.multiply(m: m, n: inp, k: r, a: dtp.baseAddress!, lda: r, b: a(b, e), ldb: inp, c: dx, ldc: inp, accumulate: true)
            if let weights { for row in 0..<m { for k in 0..<r { dtp[row * r + k] *= weights[row] } } }
            Gemm.multiply(m: r, n: inp, k: m, a: dtp.baseAddress!, lda: r, transposeA: true, b: x, ldb: inp,
                          c: gradients.pointer + b.aOffset + e * r * inp, ldc: inp, accumulate: true)
        }
        dB.withUnsafeMutableBufferPointer { dbp in
            t.withUnsafeBufferPointer { tp in
                for (rows, dy) in slices {
                    var weighted: [Float] = []
                    if let weights {
                        let width = rows.count
                        weighted = (0..<(m * width)).map { dy[$0] * weights[$0 / width] }
                    }
                    weighted.withUnsafeBufferPointer { wp in
                        Gemm.multiply(m: rows.count, n: r, k: m, a: weights == nil ? dy : wp.baseAddress!, lda: rows.count, transposeA: true,
                                      b: tp.baseAddress!, ldb: r, c: dbp.baseAddress! + rows.lowerBound * r, ldc: r, alpha: scaling)
                    }
                }
            }
        }
        scatterGradientB(b, e, dB)
    }

    // MARK: ExpertAdapter

    public func adaptsExperts(layer: Int) -> (gateUp: Bool, down: Bool) {
        let entry = byLayer[layer]
        return (entry?.gateUp != nil, entry?.down != nil)
    }

    public func addGateUp(layer: Int, expert e: Int, x: UnsafePointer<Float>, rows m: Int,
                          gate: UnsafeMutablePointer<Float>, up: UnsafeMutablePointer<Float>) {
        guard let b = byLayer[layer]?.gateUp else { return }
        let half = b.outFeatures / 2
        add(b, e, x: x, rows: m, into: [(0..<half, gate), (half..<(2 * half), up)])
    }

    public func addDown(layer: Int, expert e: Int, a x: UnsafePointer<Float>, rows m: Int, y: UnsafeMutablePointer<Float>) {
        guard let b = byLayer[layer]?.down else { return }
        add(b, e, x: x, rows: m, into: [(0..<b.outFeatures, y)])
    }

    public func backwardDown(layer: Int, expert e: Int, a x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                             weights: UnsafePointer<Float>, rows m: Int, da: UnsafeMutablePointer<Float>) {
        guard let b = byLayer[layer]?.down else { return }
        backward(b, e, x: x, rows: m, gradients: [(0..<b.outFeatures, dy)], weights: weights, dx: da)
    }

    public func backwardGateUp(layer: Int, expert e: Int, x: UnsafePointer<Float>, dgate: UnsafePointer<Float>,
                               dup: UnsafePointer<Float>, rows m: Int, dx: UnsafeMutablePointer<Float>) {
        guard let b = byLayer[layer]?.gateUp else { return }
        let half = b.outFeatures / 2
        backward(b, e, x: x, rows: m, gradients: [(0..<half, dgate), (half..<(2 * half), dup)], weights: nil, dx: dx)
    }

    public func adaptsRouter(layer: Int) -> Bool { byLayer[layer]?.router != nil }

    public func addRouter(layer: Int, x: UnsafePointer<Float>, rows n: Int, logits: UnsafeMutablePointer<Float>) {
        guard let b = byLayer[layer]?.router else { return }
        add(b, 0, x: x, rows: n, into: [(0..<b.outFeatures, logits)])
    }

    public func backwardRouter(layer: Int, x: UnsafePointer<Float>, dLogits: UnsafePointer<Float>, rows n: Int,
                               dx: UnsafeMutablePointer<Float>) {
        guard let b = byLayer[layer]?.router else { return }
        backward(b, 0, x: x, rows: n, gradients: [(0..<b.outFeatures, dLogits)], weights: nil, dx: dx)
    }

    // MARK: Merging

    /// The checkpoint tensors the merge rewrites: every expert's gate, up and down matrix of the targeted layers.
    var mergedTensorNames: [String] {
        blocks.flatMap { b -> [String] in
            if b.parameter == .router { return [model.layout.router(layer: b.layer)] }
            let projections: [Projection] = b.parameter == .gateUp ? [.gate, .up] : [.down]
            return (0..<experts).flatMap { e in projections.map { model.layout.expert(layer: b.layer, e, $0) } }
        }
    }

    /// W_e += s B_e A_e for the expert matrix `name` ([out, in] of one expert; gate and up take their half of B_e).
    func merge(tensor name: String, values: UnsafeMutablePointer<Float>, shape: [Int]) -> Bool {
        for b in blocks {
            if b.parameter == .router {
                guard model.layout.router(layer: b.layer) == name else { continue }
                guard shape == [b.outFeatures, b.inFeatures] else { return false }
                let bf = gatherB(b, 0)
                bf.withUnsafeBufferPointer { bp in
                    Gemm.multiply(m: b.outFeatures, n: b.inFeatures, k: rank, a: bp.baseAddress!, lda: rank, b: a(b, 0),
                                  ldb: b.inFeatures, c: values, ldc: b.inFeatures, alpha: scaling, accumulate: true)
                }
                return true
            }
            let projections: [Projection] = b.parameter == .gateUp ? [.gate, .up] : [.down]
            for e in 0..<experts {
                for (part, p) in projections.enumerated() where model.layout.expert(layer: b.layer, e, p) == name {
                    let rows = b.parameter == .gateUp ? b.outFeatures / 2 : b.outFeatures
                    guard shape == [rows, b.inFeatures] else { return false }
                    let bf = gatherB(b, e)
                    bf.withUnsafeBufferPointer { bp in
                        Gemm.multiply(m: rows, n: b.inFeatures, k: rank, a: bp.baseAddress! + part * rows * rank, lda: rank,
                                      b: a(b, e), ldb: b.inFeatures, c: values, ldc: b.inFeatures, alpha: scaling, accumulate: true)
                    }
                    return true
                }
            }
        }
        return false
    }
}

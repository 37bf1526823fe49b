import Foundation
import Kernels
import Transformer

/// Prunes a loaded model in place from calibration sequences, one decoder layer at a time: a layer's statistics
/// are taken on the inputs the already-pruned earlier layers produce (its own projections unpruned during that
/// pass, as the reference scripts hook them), then its projections are pruned, then the samples run through the
/// pruned layer to become the next layer's inputs. Peak memory: the model plus one residual stream per sample.
///
/// ```swift
/// let pruner = Pruner(model: model, samples: ids)
/// let matrices = try pruner.prune(PruneSettings(method: .wanda, sparsity: 0.5)) { layer, total in }
/// ```
public final class Pruner {
    public let model: TransformerModel
    public let samples: [[Int32]]

    /// One pruned matrix: its checkpoint name and the share of zeros it now holds.
    public struct Matrix: Sendable, Codable, Equatable {
        public var name: String
        public var rows: Int
        public var cols: Int
        public var sparsity: Double
    }

    public init(model: TransformerModel, samples: [[Int32]]) {
        self.model = model
        self.samples = samples.filter { !$0.isEmpty }
    }

    private var longest: Int { samples.map(\.count).max() ?? 1 }

    /// Mean next-token loss over the samples (the whole sequence of each), optionally without some layers.
    public func calibrationLoss(skipping: Set<Int> = []) -> Double {
        let saved = model.adapter
        model.adapter = nil
        defer { model.adapter = saved }
        let stepper = LayerStepper(model: model, longest: longest)
        var total = 0.0, count = 0
        for s in samples {
            var h = stepper.embed(s)
            for l in 0..<model.config.layerCount where !skipping.contains(l) { h = stepper.run(layer: l, input: h) }
            let (sum, n) = stepper.nextTokenLoss(tokens: s, hidden: h)
            total += sum
            count += n
        }
        return count > 0 ? total / Double(count) : .nan
    }

    /// Experts of mixture-of-experts layers that no calibration row reached in the last `prune` (pruned by magnitude
    /// within each row instead), as "layer 3 expert 17".
    public private(set) var unreachedExperts: [String] = []

    /// Prunes every projection of every decoder layer: attention, the MLP, and in mixture-of-experts layers every
    /// expert's and the shared expert's gate, up and down (never the router nor the shared expert's gate). An
    /// expert's statistics are taken over the rows routed to it.
    /// - Parameter progress: called after each layer with (layers done, layer count).
    public func prune(_ settings: PruneSettings, progress: (Int, Int) -> Void = { _, _ in }) throws -> [Matrix] {
        precondition(settings.method != .layers, "layer removal is LayerRemoval's work")
        let config = model.config, L = config.layerCount
        if case .nOfM = settings.pattern {} else {
            guard settings.sparsity >= 0, settings.sparsity < 1 else { throw PruneError.options("--sparsity must be in [0, 1), not \(settings.sparsity)") }
        }
        let saved = model.adapter
        defer { model.adapter = saved }
        model.adapter = nil
        var out: [Matrix] = []
        let sequential = settings.method != .magnitude
        guard !sequential || !samples.isEmpty else { throw PruneError.options("\(settings.method.rawValue) needs calibration samples; the data gave none") }
        let stepper = LayerStepper(model: model, longest: longest)
        var hidden = sequential ? samples.map { stepper.embed($0) } : []
        unreachedExperts = []
        for l in 0..<L {
            var stats: CalibrationStatistics?
            if sequential {
                let s = CalibrationStatistics(layer: l, kind: settings.method == .wanda ? .squares : .hessian)
                model.adapter = s
                model.expertObserver = s
                for h in hidden {
                    s.beginSample()
                    _ = stepper.run(layer: l, input: h)
                }
                model.adapter = nil
                model.expertObserver = nil
                stats = s
            }
            var factors: [CalibrationStatistics.Input: (u: [Double], dead: [Bool])] = [:]
            var unreached = Set<Int>()
            for target in PrunableMatrix.all(layer: l, model: model) {
                let lin = target.linear(model.weights)
                let rows = lin.outFeatures, cols = lin.inFeatures
                let buffer = lin.weight.toFloat()
                var w = Array(UnsafeBufferPointer(start: buffer.pointer, count: rows * cols))
                var method = settings.method
                if sequential, !stats!.reached(target.input), case .expert(let e) = target.owner {
                    // No calibration row chose this expert: nothing to weigh its inputs by.
                    unreached.insert(e)
                    method = .magnitude
                }
                switch method {
                case .magnitude:
                    let score = w.map { abs($0) }
                    // One threshold per matrix, or (an unreached expert of a calibrated method) per row.
                    apply(mask(score, rows: rows, cols: cols, settings: settings, perRow: sequential), to: &w)
                case .wanda:
                    let s = stats!.squares(target.input)!
                    var score = [Float](repeating: 0, count: w.count)
                    for r in 0..<rows { for j in 0..<cols { score[r * cols + j] = Float(Double(abs(w[r * cols + j])) * s[j].squareRoot()) } }
                    apply(mask(score, rows: rows, cols: cols, settings: settings, perRow: true), to: &w)
                case .sparsegpt:
                    let factor: (u: [Double], dead: [Bool])
                    if let f = factors[target.input] {
                        factor = f
                    } else {
                        do {
                            factor = try SparseGPT.inverseFactor(hessian: stats!.hessian(target.input)!, cols: cols, percentDamp: settings.percentDamp)
                        } catch let e as PruneError {
                            throw PruneError.numerical("\(target.name(config.layout)): \(e)")
                        }
                        factors[target.input] = factor
                    }
                    SparseGPT.prune(&w, rows: rows, cols: cols, factor: factor, sparsity: settings.sparsity,
                                    pattern: settings.pattern, blockSize: settings.blockSize)
                case .layers:
                    break
                }
                let zeros = w.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
                target.set(Pruner.matrix(w, rows: rows, cols: cols, like: lin.weight), in: model.weights)
                out.append(Matrix(name: target.name(config.layout), rows: rows, cols: cols,
                                  sparsity: Double(zeros) / Double(max(1, w.count))))
            }
            unreachedExperts += unreached.sorted().map { $0 < 0 ? "layer \(l) shared expert" : "layer \(l) expert \($0)" }
            if sequential { hidden = hidden.map { stepper.run(layer: l, input: $0) } }
            progress(l + 1, L)
        }
        return out
    }

    private func mask(_ score: [Float], rows: Int, cols: Int, settings: PruneSettings, perRow: Bool) -> [Bool] {
        switch settings.pattern {
        case .nOfM(let n, let m): Masks.nOfM(score, rows: rows, cols: cols, n: n, m: m)
        case .unstructured:
            perRow ? Masks.perRow(score, rows: rows, cols: cols, sparsity: settings.sparsity)
                   : Masks.global(score, sparsity: settings.sparsity)
        }
    }

    private func apply(_ mask: [Bool], to w: inout [Float]) {
        for i in w.indices where mask[i] { w[i] = 0 }
    }

    /// A matrix of `values` in the storage kind of `like` (f32 or bf16; a quantized model prunes in f32).
    static func matrix(_ values: [Float], rows: Int, cols: Int, like: WeightMatrix) -> WeightMatrix {
        values.withUnsafeBufferPointer { v in
            switch like.storage {
            case .bfloat16:
                let half = HalfBuffer(count: rows * cols)
                Convert.fromFloat(v.baseAddress!, dtype: .bfloat16, into: half.pointer, count: rows * cols)
                return WeightMatrix(rows: rows, cols: cols, storage: .bfloat16(UnsafePointer(half.pointer)), owner: half)
            default:
                return WeightMatrix(rows: rows, cols: cols, values: v.baseAddress!)
            }
        }
    }
}

/// A matrix pruning may change: a projection of a decoder layer, or in a mixture-of-experts layer the gate, up or
/// down projection of one expert (-1: the shared expert). Never the router nor the shared expert's gate.
public struct PrunableMatrix {
    enum Owner: Equatable { case layer, expert(Int) }
    var layer: Int
    var projection: Projection
    var owner: Owner

    /// Every prunable matrix of layer `l`: its projections, then each expert's gate, up and down, then the shared
    /// expert's.
    static func all(layer l: Int, model: TransformerModel) -> [PrunableMatrix] { all(layer: l, config: model.config) }

    static func all(layer l: Int, config: ModelConfig) -> [PrunableMatrix] {
        var out = config.projections(layer: l).map { PrunableMatrix(layer: l, projection: $0, owner: .layer) }
        if config.isSparse(layer: l), let moe = config.moe {
            for e in Array(0..<moe.experts) + (moe.sharedIntermediateSize != nil ? [-1] : []) {
                out += [Projection.gate, .up, .down].map { PrunableMatrix(layer: l, projection: $0, owner: .expert(e)) }
            }
        }
        return out
    }

    /// The checkpoint names of every matrix `peft prune` prunes in a model of `config`, layer by layer.
    public static func checkpointNames(config: ModelConfig) -> [String] {
        (0..<config.layerCount).flatMap { l in all(layer: l, config: config).map { $0.name(config.layout) } }
    }

    /// The calibration statistic this matrix is weighed by (the projections that read one input share it).
    var input: CalibrationStatistics.Input {
        switch owner {
        case .layer: CalibrationStatistics.Input(projection)
        case .expert(let e): projection == .down ? .expertOutput(e) : .expert(e)
        }
    }

    /// The checkpoint name of the matrix (`model.layers.0.mlp.experts.3.up_proj.weight`).
    func name(_ layout: WeightLayout) -> String {
        switch owner {
        case .layer: layout.moduleName(ProjectionSite(layer: layer, projection: projection)) + ".weight"
        case .expert(let e): e < 0 ? layout.sharedExpert(layer: layer, projection) : layout.expert(layer: layer, e, projection)
        }
    }

    func linear(_ weights: ModelWeights) -> Linear {
        switch owner {
        case .layer: return weights.layers[layer].linear(projection)
        case .expert(let e):
            let moe = weights.layers[layer].moe!
            let w = e < 0 ? moe.shared! : moe.experts[e]
            return projection == .gate ? w.gate : projection == .up ? w.up : w.down
        }
    }

    func set(_ m: WeightMatrix, in weights: ModelWeights) {
        switch owner {
        case .layer:
            weights.replace(.weight(ProjectionSite(layer: layer, projection: projection)), with: .matrix(m))
        case .expert(let e):
            var moe = weights.layers[layer].moe!
            var w = e < 0 ? moe.shared! : moe.experts[e]
            switch projection {
            case .gate: w.gate = Linear(weight: m, bias: w.gate.bias)
            case .up: w.up = Linear(weight: m, bias: w.up.bias)
            default: w.down = Linear(weight: m, bias: w.down.bias)
            }
            if e < 0 { moe.shared = w } else { moe.experts[e] = w }
            weights.replaceMixture(layer: layer, with: moe)
        }
    }

    /// The matrices of `model` whose checkpoint names are in `names`, by name (what a pruned model's writer stores).
    static func current(in model: TransformerModel, named names: Set<String>) -> [String: WeightMatrix] {
        var out: [String: WeightMatrix] = [:]
        for l in 0..<model.config.layerCount {
            for t in all(layer: l, model: model) {
                let name = t.name(model.config.layout)
                if names.contains(name) { out[name] = t.linear(model.weights).weight }
            }
        }
        return out
    }
}

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

    /// Prunes every projection of every decoder layer (attention only in mixture-of-experts layers).
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
        for l in 0..<L {
            var stats: CalibrationStatistics?
            if sequential {
                let s = CalibrationStatistics(layer: l, kind: settings.method == .wanda ? .squares : .hessian)
                model.adapter = s
                for h in hidden {
                    s.beginSample()
                    _ = stepper.run(layer: l, input: h)
                }
                model.adapter = nil
                stats = s
            }
            var factors: [CalibrationStatistics.Input: (u: [Double], dead: [Bool])] = [:]
            for p in config.projections(layer: l) {
                let site = ProjectionSite(layer: l, projection: p)
                let lin = model.weights.layers[l].linear(p)
                let rows = lin.outFeatures, cols = lin.inFeatures
                let buffer = lin.weight.toFloat()
                var w = Array(UnsafeBufferPointer(start: buffer.pointer, count: rows * cols))
                switch settings.method {
                case .magnitude:
                    let score = w.map { abs($0) }
                    apply(mask(score, rows: rows, cols: cols, settings: settings, perRow: false), to: &w)
                case .wanda:
                    let s = stats!.squares(p)!
                    var score = [Float](repeating: 0, count: w.count)
                    for r in 0..<rows { for j in 0..<cols { score[r * cols + j] = Float(Double(abs(w[r * cols + j])) * s[j].squareRoot()) } }
                    apply(mask(score, rows: rows, cols: cols, settings: settings, perRow: true), to: &w)
                case .sparsegpt:
                    let input = CalibrationStatistics.Input(p)
                    let factor: (u: [Double], dead: [Bool])
                    if let f = factors[input] {
                        factor = f
                    } else {
                        do {
                            factor = try SparseGPT.inverseFactor(hessian: stats!.hessian(p)!, cols: cols, percentDamp: settings.percentDamp)
                        } catch let e as PruneError {
                            throw PruneError.numerical("\(config.layout.moduleName(site)): \(e)")
                        }
                        factors[input] = factor
                    }
                    SparseGPT.prune(&w, rows: rows, cols: cols, factor: factor, sparsity: settings.sparsity,
                                    pattern: settings.pattern, blockSize: settings.blockSize)
                case .layers:
                    break
                }
                let zeros = w.reduce(0) { $0 + ($1 == 0 ? 1 : 0) }
                model.weights.replace(.weight(site), with: .matrix(Pruner.matrix(w, rows: rows, cols: cols, like: lin.weight)))
                out.append(Matrix(name: config.layout.moduleName(site) + ".weight", rows: rows, cols: cols,
                                  sparsity: Double(zeros) / Double(max(1, w.count))))
            }
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

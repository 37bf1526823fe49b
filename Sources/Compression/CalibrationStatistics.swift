import Foundation
import Kernels
import Transformer

/// What a layer's projections saw during one calibration pass: per input (q, k and v share one, gate and up
/// another; in a mixture-of-experts layer each expert's gate and up one and its down another, over the rows routed
/// to it), the sum over tokens of x_j^2 (Wanda) or of x x^T (SparseGPT's Hessian), and the samples counted.
final class CalibrationStatistics: ModelAdapter, ExpertObserver {
    enum Kind { case squares, hessian }

    /// The projections that read the same input share one statistic.
    enum Input: Hashable {
        case attention, attentionOutput, mlp, mlpOutput
        /// Expert e's gate and up input, and its down input (-1: the shared expert).
        case expert(Int), expertOutput(Int)

        init(_ p: Projection) {
            switch p {
            case .q, .k, .v, .qkv: self = .attention
            case .o: self = .attentionOutput
            case .gate, .up, .gateUp: self = .mlp
            case .down: self = .mlpOutput
            }
        }
    }

    let layer: Int
    let kind: Kind
    /// Per input: [cols] sums of squares or [cols, cols] sums of products (Double).
    private(set) var sums: [Input: [Double]] = [:]
    private var seen: Set<Input> = []
    private(set) var samples = 0

    init(layer: Int, kind: Kind) {
        self.layer = layer
        self.kind = kind
    }

    /// Call before each sample's pass through the layer.
    func beginSample() {
        seen = []
        samples += 1
    }

    var lowestTrainableLayer: Int? { nil }

    func attaches(to site: ProjectionSite) -> Bool { site.layer == layer }

    func project(site: ProjectionSite, linear: Linear, x: UnsafePointer<Float>, rows: Int,
                 out: UnsafeMutablePointer<Float>, context: PassContext) {
        let input = Input(site.projection)
        if seen.insert(input).inserted { accumulate(input, x: x, rows: rows, cols: linear.inFeatures) }
        linear.forward(x, rows: rows, into: out, exact: context.exact)
    }

    func observe(layer: Int, expert: Int, down: Bool, x: UnsafePointer<Float>, rows: Int, cols: Int) {
        guard layer == self.layer, rows > 0 else { return }
        let input: Input = down ? .expertOutput(expert) : .expert(expert)
        if seen.insert(input).inserted { accumulate(input, x: x, rows: rows, cols: cols) }
    }

    private func accumulate(_ input: Input, x: UnsafePointer<Float>, rows: Int, cols: Int) {
        switch kind {
        case .squares:
            var s = sums[input] ?? [Double](repeating: 0, count: cols)
            for r in 0..<rows {
                let row = x + r * cols
                for j in 0..<cols { s[j] += Double(row[j]) * Double(row[j]) }
            }
            sums[input] = s
        case .hessian:
            // X^T X of this sample in f32 (exact products, sums over its tokens), added into the Double total.
            let product = FloatBuffer(count: cols * cols)
            Gemm.multiply(m: cols, n: cols, k: rows, a: x, lda: cols, transposeA: true, b: x, ldb: cols,
                          c: product.pointer, ldc: cols)
            var s = sums[input] ?? [Double](repeating: 0, count: cols * cols)
            for i in 0..<(cols * cols) { s[i] += Double(product.pointer[i]) }
            sums[input] = s
        }
    }

    /// Whether any row reached the input during the pass.
    func reached(_ input: Input) -> Bool { sums[input] != nil }

    /// Wanda's s_j for an input: the mean over samples of each sample's sum of x_j^2 (nil: no row reached it).
    func squares(_ input: Input) -> [Double]? {
        sums[input].map { s in s.map { $0 / Double(max(1, samples)) } }
    }

    /// SparseGPT's H = 2/N sum x x^T for an input (nil: no row reached it).
    func hessian(_ input: Input) -> [Double]? {
        sums[input].map { s in s.map { $0 * 2 / Double(max(1, samples)) } }
    }
}

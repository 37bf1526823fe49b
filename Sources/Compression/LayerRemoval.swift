import Foundation
import Transformer

/// Depth pruning: which decoder layers matter least, from the residual stream of the calibration samples (entering
/// layer 0 as the embedded tokens; the last layer's output taken before the final norm).
public enum LayerRemoval {
    public struct Scores: Sendable, Codable, Equatable {
        /// ShortGPT's block influence of each layer: the sum over calibration tokens of 1 - cos(input, output).
        public var blockInfluence: [Double]
        /// Gromov et al.'s angular distance of each block of `block` layers starting at layer l: the mean over
        /// tokens of arccos(cos(h_l, h_l+block)) / pi (nil without a block size).
        public var angularDistance: [Double]?
        public var block: Int?

        enum CodingKeys: String, CodingKey {
            case blockInfluence = "block_influence", angularDistance = "angular_distance", block = "block_size"
        }
    }

    /// Scores over `samples`; `block` also measures the angular distance of every run of that many layers.
    public static func scores(model: TransformerModel, samples: [[Int32]], block: Int?,
                              progress: (Int, Int) -> Void = { _, _ in }) -> Scores {
        let L = model.config.layerCount, C = model.config.hiddenSize
        let saved = model.adapter
        model.adapter = nil
        defer { model.adapter = saved }
        let stepper = LayerStepper(model: model, longest: samples.map(\.count).max() ?? 1)
        var influence = [Double](repeating: 0, count: L)
        let starts = block.map { max(0, L - $0 + 1) } ?? 0
        var angular = [Double](repeating: 0, count: starts)
        var tokens = 0
        for (i, s) in samples.enumerated() where !s.isEmpty {
            var states = [stepper.embed(s)]
            for l in 0..<L { states.append(stepper.run(layer: l, input: states[l])) }
            for l in 0..<L {
                for t in 0..<s.count { influence[l] += 1 - cosine(states[l], states[l + 1], row: t, cols: C) }
            }
            if let block {
                for l in 0..<starts {
                    for t in 0..<s.count {
                        let c = min(1, max(-1, cosine(states[l], states[l + block], row: t, cols: C)))
                        angular[l] += acos(c) / Double.pi
                    }
                }
            }
            tokens += s.count
            progress(i + 1, samples.count)
        }
        return Scores(blockInfluence: influence, angularDistance: block == nil ? nil : angular.map { $0 / Double(max(1, tokens)) },
                      block: block)
    }

    /// The layers to remove: the `layers` lowest block influences (ties to the earlier layer), or the block of
    /// `block` layers at the smallest angular distance.
    public static func choose(_ scores: Scores, layers: Int?, block: Int?) -> [Int] {
        if let layers {
            let order = scores.blockInfluence.indices.sorted {
                scores.blockInfluence[$0] < scores.blockInfluence[$1] || (scores.blockInfluence[$0] == scores.blockInfluence[$1] && $0 < $1)
            }
            return Array(order.prefix(layers)).sorted()
        }
        if let block, let d = scores.angularDistance, let start = d.indices.min(by: { d[$0] < d[$1] }) {
            return Array(start..<(start + block))
        }
        return []
    }

    /// cos(a[row], b[row]) in Double; 1 when either row is zero.
    static func cosine(_ a: [Float], _ b: [Float], row: Int, cols: Int) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        let base = row * cols
        for j in 0..<cols {
            let x = Double(a[base + j]), y = Double(b[base + j])
            dot += x * y
            na += x * x
            nb += y * y
        }
        guard na > 0, nb > 0 else { return 1 }
        return dot / (na.squareRoot() * nb.squareRoot())
    }
}

import Foundation

/// Rotary position embedding settings: `rope_theta` plus an optional scaling (`rope_scaling` in older configs,
/// `rope_parameters` in transformers 5). Implemented kinds: default, linear, llama3. Others are errors.
public struct RoPEConfig: Sendable, Equatable {
    public enum Scaling: Sendable, Equatable {
        case none
        case linear(factor: Double)
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
        /// Each inverse frequency divided by its own factor (GGUF's `rope_freqs.weight`, as llama.cpp applies it).
        case frequencyFactors([Float])
    }

    public var theta: Double
    public var scaling: Scaling

    public init(theta: Double, scaling: Scaling = .none) {
        self.theta = theta
        self.scaling = scaling
    }

    init(fields: ConfigFields, headDim: Int) throws {
        let params = fields.object("rope_parameters")
        theta = fields.optionalDouble("rope_theta") ?? (params?["rope_theta"] as? NSNumber)?.doubleValue ?? 10000
        let scalingObj = fields.object("rope_scaling") ?? params
        let kind = (scalingObj?["rope_type"] as? String) ?? (scalingObj?["type"] as? String) ?? "default"
        func number(_ k: String) throws -> Double {
            guard let v = (scalingObj?[k] as? NSNumber)?.doubleValue else {
                throw TransformerError.config(path: fields.path, reason: "rope scaling '\(kind)' needs field '\(k)'")
            }
            return v
        }
        switch kind {
        case "default": scaling = .none
        case "linear": scaling = .linear(factor: try number("factor"))
        case "llama3":
            scaling = .llama3(factor: try number("factor"), lowFreqFactor: try number("low_freq_factor"),
                              highFreqFactor: try number("high_freq_factor"),
                              originalMaxPositions: try {
                                  guard let n = Int(exactly: try number("original_max_position_embeddings")), n > 0 else {
                                      throw TransformerError.config(path: fields.path, reason: "rope scaling original_max_position_embeddings must be a positive integer")
                                  }
                                  return n
                              }())
        default:
            throw TransformerError.unsupported(path: fields.path, reason: "rope scaling type '\(kind)' is not supported (supported: default, linear, llama3)")
        }
    }

    /// Inverse frequencies [headDim / 2], computed in f32 as transformers does.
    public func inverseFrequencies(headDim: Int) -> [Float] {
        let half = headDim / 2
        var inv = (0..<half).map { i -> Float in
            let exponent = Float(2 * i) / Float(headDim)
            return 1 / Float(pow(theta, Double(exponent)))
        }
        switch scaling {
        case .none: break
        case .linear(let factor): inv = inv.map { $0 / Float(factor) }
        case .frequencyFactors(let factors): inv = zip(inv, factors).map { $0 / $1 }
        case let .llama3(factor, low, high, original):
            let lowWavelen = Double(original) / low, highWavelen = Double(original) / high
            inv = inv.map { f in
                let wavelen = 2 * Double.pi / Double(f)
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return Float(Double(f) / factor) }
                let smooth = (Double(original) / wavelen - low) / (high - low)
                return Float((1 - smooth) * Double(f) / factor + smooth * Double(f))
            }
        }
        return inv
    }
}

import Foundation

/// Rotary position embedding settings: `rope_theta` plus an optional scaling (`rope_scaling` in older configs,
/// `rope_parameters` in transformers 5). Implemented kinds: default, linear, llama3, longrope (Phi-3's `su`), and
/// dynamic (NTK), which only changes anything past `max_position_embeddings`, where we never run. Others are errors.
public struct RoPEConfig: Sendable, Equatable {
    public enum Scaling: Sendable, Equatable {
        case none
        case linear(factor: Double)
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
        /// Each inverse frequency divided by its own factor (GGUF's `rope_freqs.weight`, as llama.cpp applies it).
        case frequencyFactors([Float])
        /// Phi-3's LongRoPE: inverse frequency i divided by short[i], or by long[i] when a pass reaches past
        /// `originalMaxPositions`; cos and sin multiplied by `attentionFactor`.
        case longrope(short: [Float], long: [Float], originalMaxPositions: Int, attentionFactor: Float)
    }

    public var theta: Double
    public var scaling: Scaling

    public init(theta: Double, scaling: Scaling = .none) {
        self.theta = theta
        self.scaling = scaling
    }

    init(fields: ConfigFields, rotaryDim: Int, maxPositions: Int) throws {
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
        case "default", "dynamic": scaling = .none
        case "longrope", "su":
            func factors(_ k: String) throws -> [Float] {
                guard let list = scalingObj?[k] as? [NSNumber], list.count == rotaryDim / 2 else {
                    throw TransformerError.config(path: fields.path, reason: "rope scaling '\(kind)' needs '\(k)' with \(rotaryDim / 2) numbers (half the rotated dimensions)")
                }
                let values = list.map { $0.floatValue }
                guard values.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                    throw TransformerError.config(path: fields.path, reason: "rope scaling '\(k)' must hold positive numbers")
                }
                return values
            }
            let original = (scalingObj?["original_max_position_embeddings"] as? NSNumber)?.intValue
                ?? fields.optionalInt("original_max_position_embeddings") ?? maxPositions
            guard original > 0 else {
                throw TransformerError.config(path: fields.path, reason: "original_max_position_embeddings must be positive")
            }
            let factor = (scalingObj?["factor"] as? NSNumber)?.doubleValue ?? Double(maxPositions) / Double(original)
            let attention = (scalingObj?["attention_factor"] as? NSNumber)?.doubleValue
                ?? (factor <= 1 ? 1 : (1 + log(factor) / log(Double(original))).squareRoot())
            scaling = .longrope(short: try factors("short_factor"), long: try factors("long_factor"),
                                originalMaxPositions: original, attentionFactor: Float(attention))
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
            throw TransformerError.unsupported(path: fields.path, reason: "rope scaling type '\(kind)' is not supported (supported: default, linear, llama3, longrope, dynamic)")
        }
    }

    /// Inverse frequencies [headDim / 2], computed in f32 as transformers does (`long`: LongRoPE's long factors).
    public func inverseFrequencies(headDim: Int, long: Bool = false) -> [Float] {
        let half = headDim / 2
        let powers = (0..<half).map { i in Float(pow(theta, Double(Float(2 * i) / Float(headDim)))) }
        var inv = powers.map { 1 / $0 }
        switch scaling {
        case .none: break
        case .linear(let factor): inv = inv.map { $0 / Float(factor) }
        case .frequencyFactors(let factors): inv = zip(inv, factors).map { $0 / $1 }
        case let .longrope(short, longFactors, _, _):
            // transformers: 1 / (factor * base^(2i/d)), the product in f32.
            inv = zip(powers, long ? longFactors : short).map { 1 / ($1 * $0) }
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

import Foundation

/// Learning-rate schedules as transformers defines them (`get_linear_schedule_with_warmup` and friends):
/// the rate for 0-based optimiser step `s` of `total`, with `warmup` steps rising linearly from 0.
public struct LRSchedule: Sendable, Equatable {
    /// As transformers names them: `constant` ignores warmup, `constant_with_warmup` uses it.
    public enum Kind: String, Sendable, CaseIterable, Codable {
        case linear, cosine, constant
        case constantWithWarmup = "constant_with_warmup"
    }

    public var kind: Kind
    public var peak: Double
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(kind: Kind, peak: Double, warmupSteps: Int, totalSteps: Int) {
        self.kind = kind
        self.peak = peak
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// Warmup steps for a ratio, rounded up as transformers does.
    public static func warmupSteps(ratio: Double, total: Int) -> Int { Int((ratio * Double(total)).rounded(.up)) }

    public func rate(at step: Int) -> Double {
        if kind == .constant { return peak }
        if step < warmupSteps { return peak * Double(step) / Double(max(1, warmupSteps)) }
        let span = Double(max(1, totalSteps - warmupSteps))
        let progress = Double(step - warmupSteps) / span
        switch kind {
        case .constant, .constantWithWarmup: return peak
        case .linear: return peak * max(0, Double(totalSteps - step) / span)
        case .cosine: return peak * max(0, 0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}

import CKernels
import Foundation

/// The CPU tier the kernels run (chosen once at start-up in CKernels' dispatch.c): the best this CPU has, or a lower
/// one named by `PEFT_CPU` (`scalar`, `avx2`, `avx512`, `neon`). Every kernel has a body per tier and the scalar twin.
///
/// ```swift
/// print(CPU.active, CPU.features)         // "avx2", "avx2 fma f16c"
/// CPU.withTier(.scalar) { /* run the scalar twins */ }
/// ```
public enum CPU {
    public enum Tier: String, CaseIterable, Sendable, CustomStringConvertible {
        case scalar, avx2, avx512, neon

        var cValue: Int32 {
            switch self {
            case .scalar: Int32(PK_TIER_SCALAR)
            case .avx2: Int32(PK_TIER_AVX2)
            case .avx512: Int32(PK_TIER_AVX512)
            case .neon: Int32(PK_TIER_NEON)
            }
        }

        init(cValue: Int32) { self = Tier.allCases.first { $0.cValue == cValue } ?? .scalar }

        public var description: String { rawValue }
    }

    /// The tier in use.
    public static var active: Tier { Tier(cValue: pk_tier()) }
    /// The best tier this CPU has.
    public static var best: Tier { Tier(cValue: pk_cpu_best_tier()) }
    /// Every tier this CPU can run, scalar first.
    public static var available: [Tier] { Tier.allCases.filter { pk_tier_available($0.cValue) != 0 } }
    /// The SIMD features found ("avx2 fma f16c avx-vnni", "neon dotprod i8mm").
    public static var features: String { String(cString: pk_cpu_features()) }
    /// Integer dot products of the active tier (AVX512-VNNI, AVX-VNNI, NEON dotprod).
    public static var hasIntegerDot: Bool { pk_has_vnni() != 0 }
    /// bf16 dot products in hardware on the active tier (AVX512-BF16).
    public static var hasBF16Dot: Bool { pk_has_avx512bf16() != 0 }

    /// "avx2 (avx2 fma f16c)": the tier and what the CPU has, for logs and benchmarks.
    public static var summary: String { "\(active) (\(features.isEmpty ? "no SIMD" : features))" }

    /// An error when `PEFT_CPU` names no tier or one this CPU lacks (the best tier runs instead).
    public static var environmentProblem: String? {
        guard pk_cpu_env_refused() != 0 else { return nil }
        let value = ProcessInfo.processInfo.environment["PEFT_CPU"] ?? ""
        let names = Tier.allCases.map(\.rawValue).joined(separator: ", ")
        return Tier(rawValue: value) == nil
            ? "PEFT_CPU=\(value) is not a CPU tier (one of \(names))"
            : "PEFT_CPU=\(value): this CPU lacks it (it has \(available.map(\.rawValue).joined(separator: ", ")))"
    }

    /// Switches every kernel to `tier`; false when this CPU lacks it.
    @discardableResult
    public static func set(_ tier: Tier) -> Bool { pk_set_cpu_tier(tier.cValue) == 0 }

    /// Runs body with the kernels on `tier`, then restores the tier that was active.
    public static func withTier<T>(_ tier: Tier, _ body: () throws -> T) rethrows -> T {
        let previous = active
        precondition(set(tier), "this CPU cannot run the \(tier) tier")
        defer { set(previous) }
        return try body()
    }

    /// Switches the integer dot-product instructions off (VNNI, AVX-VNNI, dotprod) so their fallback body runs.
    public static func forceNoIntegerDot(_ on: Bool) { pk_force_no_vnni(on ? 1 : 0) }

    /// Switches the bf16 dot-product instructions off (AVX512-BF16), so the widening body of AVX-512 CPUs without
    /// them runs.
    public static func forceNoBF16Dot(_ on: Bool) { pk_force_no_bf16_dot(on ? 1 : 0) }
}

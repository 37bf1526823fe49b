import Foundation
import Kernels
import XCTest

/// `|actual - expected| <= atol + rtol * |expected|` elementwise, reporting the worst element.
public func assertClose(_ actual: [Float], _ expected: [Float], atol: Float, rtol: Float = 0,
                        _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("count \(actual.count) != expected \(expected.count) \(message())", file: file, line: line)
        return
    }
    var worst = 0, worstExcess: Float = -.infinity
    for i in actual.indices {
        let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
        if excess > worstExcess || actual[i].isNaN { worstExcess = actual[i].isNaN ? .infinity : excess; worst = i }
    }
    if worstExcess > 0 {
        XCTFail("element \(worst): \(actual[worst]) vs expected \(expected[worst]) (atol \(atol), rtol \(rtol)) \(message())",
                file: file, line: line)
    }
}

public func assertClose(_ actual: Float, _ expected: Float, atol: Float, rtol: Float = 0,
                        _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
    assertClose([actual], [expected], atol: atol, rtol: rtol, message(), file: file, line: line)
}

/// Largest absolute difference.
public func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Random values in [-scale, scale) from a seeded generator.
public func randomArray(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in (rng.nextUniform() * 2 - 1) * scale }
}

/// Central finite-difference gradient of a scalar function of `x` (computed in Double around f32 values).
/// `f` must be deterministic. Returns d f / d x[i] for every i in `indices` (all when nil).
public func finiteDifferenceGradient(_ x: [Float], indices: [Int]? = nil, step: Float = 1e-3,
                                     _ f: ([Float]) -> Double) -> [Float] {
    let idx = indices ?? Array(x.indices)
    var out = [Float]()
    var probe = x
    for i in idx {
        let orig = probe[i]
        probe[i] = orig + step
        let fp = f(probe)
        probe[i] = orig - step
        let fm = f(probe)
        probe[i] = orig
        out.append(Float((fp - fm) / (2 * Double(step))))
    }
    return out
}

/// A path under the repository's `Tests/Fixtures` folder, found from a source file's path.
public func fixtureURL(_ relative: String, file: StaticString = #filePath) -> URL {
    packageRoot(file: file).appendingPathComponent("Tests/Fixtures").appendingPathComponent(relative)
}

/// The directory holding Package.swift, found by walking up from a source file.
public func packageRoot(file: StaticString = #filePath) -> URL {
    var url = URL(fileURLWithPath: "\(file)").deletingLastPathComponent()
    while url.pathComponents.count > 1 {
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        url.deleteLastPathComponent()
    }
    return url
}

/// Runs body once per CPU tier this machine has (scalar always, then AVX2 / AVX-512 / NEON where present), with every
/// kernel switched to that tier, and with the integer dot-product instructions both on and off where the tier has
/// them when `integerDotVariants` is set, and once more without the bf16 dot products (AVX512-BF16) where the tier has
/// them when `bf16DotVariants` is set. The label names the tier for assertion messages.
public func forEachCPUTier(integerDotVariants: Bool = false, bf16DotVariants: Bool = false,
                           _ body: (String) throws -> Void) rethrows {
    for tier in CPU.available {
        try CPU.withTier(tier) {
            let variants = integerDotVariants && CPU.hasIntegerDot ? [false, true] : [false]
            for off in variants {
                CPU.forceNoIntegerDot(off)
                defer { CPU.forceNoIntegerDot(false) }
                try body(off ? "\(tier) without integer dot" : "\(tier)")
            }
            if bf16DotVariants && CPU.hasBF16Dot {
                CPU.forceNoBF16Dot(true)
                defer { CPU.forceNoBF16Dot(false) }
                try body("\(tier) without bf16 dot")
            }
        }
    }
}

import CKernels
import Foundation

/// Dense f32 matrix products. oneDNN's matmul primitive (the fastest GEMM measured on these CPUs) when its
/// library is installed, loaded at run time with primitives cached per shape; otherwise the built-in blocked
/// GEMM (a register micro-kernel per CPU tier). All matrices are row-major with explicit leading dimensions.
///
/// ```swift
/// // y[M, N] = x[M, K] · W^T, W stored [N, K] (a Hugging Face Linear weight)
/// Gemm.multiply(m: M, n: N, k: K, a: x, lda: K, b: w, ldb: K, transposeB: true, c: y, ldc: N)
/// ```
public enum Gemm {
    public enum Backend: String, Sendable { case oneDNN = "onednn", builtin }

    /// oneDNN when libdnnl.so.2 loads, unless `PEFT_GEMM=builtin` (or `PEFT_NO_ONEDNN`) is set. Tests switch it to
    /// check that every backend computes the same thing.
    public static var backend: Backend = {
        if ProcessInfo.processInfo.environment["PEFT_GEMM"] == "builtin" { return .builtin }
        return pk_dnnl_available() != 0 ? .oneDNN : .builtin
    }()

    /// The backends this machine has (oneDNN only where libdnnl.so.2 loads).
    public static var availableBackends: [Backend] { pk_dnnl_available() != 0 ? [.oneDNN, .builtin] : [.builtin] }

    /// Runs body with `backend` in use, then restores the previous one.
    public static func withBackend<T>(_ backend: Backend, _ body: () throws -> T) rethrows -> T {
        let previous = Gemm.backend
        Gemm.backend = backend
        defer { Gemm.backend = previous }
        return try body()
    }

    /// "oneDNN 2.6.3" or "built-in".
    public static var backendDescription: String {
        backend == .oneDNN ? "oneDNN \(String(cString: pk_dnnl_version()))" : "built-in"
    }

    /// C[m, n] = alpha * op(A)[m, k] · op(B)[k, n] (+ C when `accumulate`).
    /// op(A) = A stored [m, k] (lda), or A^T when `transposeA` (A stored [k, m]).
    /// op(B) = B stored [k, n] (ldb), or B^T when `transposeB` (B stored [n, k]).
    public static func multiply(m: Int, n: Int, k: Int,
                                a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
                                b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
                                c: UnsafeMutablePointer<Float>, ldc: Int,
                                alpha: Float = 1, accumulate: Bool = false, backend: Backend = Gemm.backend) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            if !accumulate { for r in 0..<m { (c + r * ldc).update(repeating: 0, count: n) } }
            return
        }
        if backend == .oneDNN {
            let key = Key(m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, transposeA: transposeA,
                          transposeB: transposeB, alpha: alpha, accumulate: accumulate, bf16: false)
            if PrimitiveCache.shared.run(key, a: a, b: b, c: c) { return }
        }
        // Built-in: column ranges (multiples of 32) on the worker threads.
        let tA: Int32 = transposeA ? 1 : 0, tB: Int32 = transposeB ? 1 : 0
        let blocks = (n + 31) / 32
        let minBlocks = max(1, (1 << 22) / max(1, m * k * 32))   // keep tiny products on one thread
        Parallel.forRanges(blocks, minChunk: minBlocks) { r in
            pk_sgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, accumulate ? 1 : 0, c, ldc, r.lowerBound * 32,
                     min(n, r.upperBound * 32))
        }
    }

    /// True when bf16 products run natively: oneDNN on a CPU with AVX512-BF16 (about twice the f32 rate there).
    /// Elsewhere a bf16 product computes the same thing (bf16-rounded operands, f32 accumulation) as an f32 product
    /// of the operands widened, which is exact, and faster than oneDNN's emulated bf16 kernels.
    public static var hasBF16Products: Bool { backend == .oneDNN && CPU.hasBF16Dot }

    /// C[m, n] (f32) = alpha * op(A) op(B) (+ C) with bf16 A and B and f32 accumulation. Needs oneDNN
    /// (`hasBF16Products`); returns false when the product could not run there (the caller then widens to f32).
    public static func multiplyBF16(m: Int, n: Int, k: Int,
                                    a: UnsafePointer<UInt16>, lda: Int, transposeA: Bool = false,
                                    b: UnsafePointer<UInt16>, ldb: Int, transposeB: Bool = false,
                                    c: UnsafeMutablePointer<Float>, ldc: Int,
                                    alpha: Float = 1, accumulate: Bool = false) -> Bool {
        guard hasBF16Products else { return false }
        if m == 0 || n == 0 { return true }
        let key = Key(m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, transposeA: transposeA, transposeB: transposeB,
                      alpha: alpha, accumulate: accumulate, bf16: true)
        return PrimitiveCache.shared.run(key, a: a, b: b, c: c)
    }

    struct Key: Hashable {
        var m, n, k, lda, ldb, ldc: Int
        var transposeA, transposeB: Bool
        var alpha: Float
        var accumulate: Bool
        var bf16: Bool
    }
}

/// oneDNN primitives by shape. Calls are serialised: oneDNN parallelises each call over all cores itself.
final class PrimitiveCache: @unchecked Sendable {
    static let shared = PrimitiveCache()
    private var cache: [Gemm.Key: OpaquePointer] = [:]
    private var failed = Set<Gemm.Key>()
    private let lock = NSLock()

    /// Runs the product through oneDNN; false when oneDNN cannot (the caller falls back).
    func run(_ key: Gemm.Key, a: UnsafeRawPointer, b: UnsafeRawPointer, c: UnsafeMutablePointer<Float>) -> Bool {
        lock.lock(); defer { lock.unlock() }
        var primitive = cache[key]
        if primitive == nil {
            if failed.contains(key) { return false }
            guard let p = pk_dnnl_matmul_create(key.m, key.n, key.k, key.lda, key.ldb, key.ldc, key.transposeA ? 1 : 0,
                                                key.transposeB ? 1 : 0, key.alpha, key.accumulate ? 1 : 0,
                                                key.bf16 ? 1 : 0) else {
                failed.insert(key)
                return false
            }
            if cache.count >= 4096 {
                for (_, old) in cache { pk_dnnl_matmul_destroy(UnsafeMutableRawPointer(old)) }
                cache.removeAll()
            }
            primitive = OpaquePointer(p)
            cache[key] = primitive
        }
        return pk_dnnl_matmul_execute(UnsafeMutableRawPointer(primitive), a, b, c) == 0
    }
}

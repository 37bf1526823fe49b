import CDNNL
import Foundation

/// Dense f32 matrix products through oneDNN's matmul primitive (the fastest GEMM measured on these CPUs),
/// with primitives cached per shape. All matrices are row-major with explicit leading dimensions.
///
/// ```swift
/// // y[M, N] = x[M, K] · W^T, W stored [N, K] (a Hugging Face Linear weight)
/// Gemm.multiply(m: M, n: N, k: K, a: x, lda: K, b: w, ldb: K, transposeB: true, c: y, ldc: N)
/// ```
public enum Gemm {
    /// C[m, n] = alpha * op(A)[m, k] · op(B)[k, n] (+ C when `accumulate`).
    /// op(A) = A stored [m, k] (lda), or A^T when `transposeA` (A stored [k, m]).
    /// op(B) = B stored [k, n] (ldb), or B^T when `transposeB` (B stored [n, k]).
    public static func multiply(m: Int, n: Int, k: Int,
                                a: UnsafePointer<Float>, lda: Int, transposeA: Bool = false,
                                b: UnsafePointer<Float>, ldb: Int, transposeB: Bool = false,
                                c: UnsafeMutablePointer<Float>, ldc: Int,
                                alpha: Float = 1, accumulate: Bool = false) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            if !accumulate { for r in 0..<m { (c + r * ldc).update(repeating: 0, count: n) } }
            return
        }
        let key = Key(m: m, n: n, k: k, lda: lda, ldb: ldb, ldc: ldc, transposeA: transposeA,
                      transposeB: transposeB, alpha: alpha, accumulate: accumulate)
        let primitive = OneDNN.shared.primitive(for: key)
        OneDNN.shared.execute(primitive, a: UnsafeMutableRawPointer(mutating: a),
                              b: UnsafeMutableRawPointer(mutating: b), c: UnsafeMutableRawPointer(c))
    }

    struct Key: Hashable {
        var m, n, k, lda, ldb, ldc: Int
        var transposeA, transposeB: Bool
        var alpha: Float
        var accumulate: Bool
    }
}

/// One engine, one stream and the primitive cache. GEMM calls are serialised: oneDNN parallelises each
/// call over all cores itself.
final class OneDNN: @unchecked Sendable {
    static let shared = OneDNN()

    struct Prepared {
        let primitive: dnnl_primitive_t
        var srcDesc, weightsDesc, dstDesc: dnnl_memory_desc_t
    }

    private var engine: dnnl_engine_t?
    private var stream: dnnl_stream_t?
    private var cache: [Gemm.Key: Prepared] = [:]
    private let lock = NSLock()

    private init() {
        var e: dnnl_engine_t?
        check(dnnl_engine_create(&e, dnnl_cpu, 0), "engine")
        engine = e
        var s: dnnl_stream_t?
        check(dnnl_stream_create(&s, e, dnnl_stream_default_flags.rawValue), "stream")
        stream = s
    }

    private func check(_ status: dnnl_status_t, _ what: String) {
        // Failures here are programming errors (shapes are validated by callers), not user input.
        precondition(status == dnnl_success, "oneDNN \(what) failed with status \(status.rawValue)")
    }

    private static func desc(rows: Int, cols: Int, ld: Int, transposed: Bool) -> dnnl_memory_desc_t {
        var md = dnnl_memory_desc_t()
        var dims: dnnl_dims_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var strides: dnnl_dims_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        dims.0 = Int64(rows); dims.1 = Int64(cols)
        if transposed { strides.0 = 1; strides.1 = Int64(ld) } else { strides.0 = Int64(ld); strides.1 = 1 }
        withUnsafePointer(to: &dims) { dp in
            withUnsafePointer(to: &strides) { sp in
                _ = dnnl_memory_desc_init_by_strides(&md, 2, UnsafeRawPointer(dp).assumingMemoryBound(to: Int64.self),
                                                     dnnl_f32, UnsafeRawPointer(sp).assumingMemoryBound(to: Int64.self))
            }
        }
        return md
    }

    func primitive(for key: Gemm.Key) -> Prepared {
        lock.lock(); defer { lock.unlock() }
        if let p = cache[key] { return p }
        var src = Self.desc(rows: key.m, cols: key.k, ld: key.lda, transposed: key.transposeA)
        var wei = Self.desc(rows: key.k, cols: key.n, ld: key.ldb, transposed: key.transposeB)
        var dst = Self.desc(rows: key.m, cols: key.n, ld: key.ldc, transposed: false)
        var md = dnnl_matmul_desc_t()
        check(dnnl_matmul_desc_init(&md, &src, &wei, nil, &dst), "matmul desc")
        var attr: dnnl_primitive_attr_t?
        check(dnnl_primitive_attr_create(&attr), "attr")
        defer { dnnl_primitive_attr_destroy(attr) }
        if key.alpha != 1 {
            var alpha = key.alpha
            check(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha), "scales")
        }
        if key.accumulate {
            var ops: dnnl_post_ops_t?
            check(dnnl_post_ops_create(&ops), "post ops")
            check(dnnl_post_ops_append_sum(ops, 1.0), "sum")
            check(dnnl_primitive_attr_set_post_ops(attr, ops), "set post ops")
            dnnl_post_ops_destroy(ops)
        }
        var pd: dnnl_primitive_desc_t?
        check(dnnl_primitive_desc_create(&pd, &md, attr, engine, nil), "primitive desc")
        defer { dnnl_primitive_desc_destroy(pd) }
        var prim: dnnl_primitive_t?
        check(dnnl_primitive_create(&prim, pd), "primitive")
        guard let prim else { preconditionFailure("oneDNN returned no primitive") }
        if cache.count > 4096 { evictAll() }
        let prepared = Prepared(primitive: prim, srcDesc: src, weightsDesc: wei, dstDesc: dst)
        cache[key] = prepared
        return prepared
    }

    private func evictAll() {
        for (_, p) in cache { dnnl_primitive_destroy(p.primitive) }
        cache.removeAll()
    }

    func execute(_ p: Prepared, a: UnsafeMutableRawPointer, b: UnsafeMutableRawPointer, c: UnsafeMutableRawPointer) {
        var p = p
        var ma: dnnl_memory_t?, mb: dnnl_memory_t?, mc: dnnl_memory_t?
        check(dnnl_memory_create(&ma, &p.srcDesc, engine, a), "memory")
        check(dnnl_memory_create(&mb, &p.weightsDesc, engine, b), "memory")
        check(dnnl_memory_create(&mc, &p.dstDesc, engine, c), "memory")
        defer { dnnl_memory_destroy(ma); dnnl_memory_destroy(mb); dnnl_memory_destroy(mc) }
        var args = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: ma),
                    dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: mb),
                    dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: mc)]
        lock.lock(); defer { lock.unlock() }
        check(dnnl_primitive_execute(p.primitive, stream, 3, &args), "execute")
        check(dnnl_stream_wait(stream), "wait")
    }
}

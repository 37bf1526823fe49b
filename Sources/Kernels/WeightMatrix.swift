import CKernels
import Foundation

/// A frozen weight matrix `[rows, cols]` = `[out_features, in_features]` (Hugging Face `Linear.weight` layout),
/// stored as f32, bf16 or a GGML block format (q8_0, q4_0, q4_k). Narrower storage costs less memory and memory
/// bandwidth; products widen it to f32 tile by tile (or in registers, for decode) and always accumulate in f32.
///
/// ```swift
/// w.forward(x, rows: M, into: y)          // y[M, out] = x[M, in] · W^T
/// w.backwardInput(dy, rows: M, into: dx)  // dx[M, in] (+)= dy[M, out] · W
/// ```
public struct WeightMatrix: @unchecked Sendable {
    public enum Storage {
        case float32(UnsafePointer<Float>)
        case bfloat16(UnsafePointer<UInt16>)
        /// GGML blocks regrouped eight rows at a time (rows padded to a multiple of 8; see quant_packed.c): group g
        /// starts at g * cols / blockSize * packedBlockBytes. Build with `packing`.
        case quantized(QuantType, UnsafePointer<UInt8>)
    }

    public let rows: Int
    public let cols: Int
    public let storage: Storage
    /// Keeps whatever owns the memory alive (a buffer or a memory-mapped file).
    public let owner: AnyObject
    /// Quantized storage only: products over many rows (prefill, training) run in bf16 with f32 accumulation (the
    /// model's bf16 compute), on dequantized bf16 panels; otherwise in f32.
    public var bf16Products = false

    /// The order in which the stored columns read the inputs: stored column j multiplies input `indices[j]` (GPTQ
    /// act-order checkpoints, whose groups are regrouped into contiguous blocks). nil: the natural order.
    public final class InputOrder: @unchecked Sendable {
        public let indices: [Int32]
        public init(_ indices: [Int32]) { self.indices = indices }
    }
    public var inputOrder: InputOrder?

    public init(rows: Int, cols: Int, storage: Storage, owner: AnyObject) {
        self.rows = rows; self.cols = cols; self.storage = storage; self.owner = owner
    }

    /// An owned f32 matrix copied from `values` (row-major).
    public init(rows: Int, cols: Int, values: UnsafePointer<Float>) {
        let buffer = FloatBuffer(count: rows * cols)
        buffer.copy(from: values, count: rows * cols)
        self.init(rows: rows, cols: cols, storage: .float32(UnsafePointer(buffer.pointer)), owner: buffer)
    }

    /// The storage's float type; quantized matrices compute in f32.
    public var dtype: DType {
        switch storage {
        case .float32, .quantized: .float32
        case .bfloat16: .bfloat16
        }
    }

    /// The block format of a quantized matrix.
    public var quantType: QuantType? {
        if case .quantized(let t, _) = storage { return t }
        return nil
    }

    /// Bytes held by the elements.
    public var byteCount: Int { quantType.map { $0.packedByteCount(rows: rows, cols: cols) } ?? rows * cols * dtype.byteSize }

    /// This matrix in block format `type` (GGML's reference rounding), or nil when its rows are not a whole number of
    /// blocks.
    public func quantized(_ type: QuantType) -> WeightMatrix? {
        guard cols % type.blockSize == 0, quantType == nil else { return nil }
        let c = cols
        return Self.packing(type, rows: rows, cols: cols, bf16Products: dtype == .bfloat16) { r, out in
            var row = [Float](repeating: 0, count: c)
            row.withUnsafeMutableBufferPointer { rp in
                readRow(r, into: rp.baseAddress!)
                type.quantize(rp.baseAddress!, count: c, into: out)
            }
        }
    }

    /// A quantized matrix built row by row: `fill(r, out)` writes row r as GGML blocks (`type.byteCount(rows: 1,
    /// cols:)` bytes); rows are regrouped into the packed layout as they come, groups in parallel.
    public static func packing(_ type: QuantType, rows: Int, cols: Int, bf16Products: Bool = false,
                               fill: (Int, UnsafeMutablePointer<UInt8>) -> Void) -> WeightMatrix {
        precondition(cols % type.blockSize == 0, "rows of \(cols) are not whole \(type) blocks")
        let rowBytes = type.byteCount(rows: 1, cols: cols), groupBytes = type.packedByteCount(rows: 8, cols: cols)
        let groups = (rows + 7) / 8
        let out = AlignedBuffer<UInt8>(count: groups * groupBytes)
        Parallel.forRanges(groups, minChunk: 2) { gs in
            let temp = AlignedBuffer<UInt8>(count: 8 * rowBytes)
            for g in gs {
                var pointers: [UnsafePointer<UInt8>?] = Array(repeating: nil, count: 8)
                for i in 0..<8 where g * 8 + i < rows {
                    fill(g * 8 + i, temp.pointer + i * rowBytes)
                    pointers[i] = UnsafePointer(temp.pointer + i * rowBytes)
                }
                pointers.withUnsafeBufferPointer { p in
                    pk_pack_group(type.cType, p.baseAddress!, cols, out.pointer + g * groupBytes)
                }
            }
        }
        var m = WeightMatrix(rows: rows, cols: cols, storage: .quantized(type, UnsafePointer(out.pointer)), owner: out)
        m.bf16Products = bf16Products
        return m
    }

    /// Row r of a quantized matrix as GGML blocks, bit for bit as quantized (`type.byteCount(rows: 1, cols:)` bytes).
    public func blocks(ofRow r: Int, into out: UnsafeMutablePointer<UInt8>) {
        guard case .quantized(let t, let w) = storage else { preconditionFailure("not a quantized matrix") }
        pk_unpack_row(t.cType, w + (r / 8) * t.packedByteCount(rows: 8, cols: cols), cols, Int32(r % 8), out)
    }

    /// Inputs with at most this many rows are multiplied straight from the stored weights (GEMV for one row,
    /// 4x4 register tiles for a few) instead of through oneDNN; bf16 weights also skip panel widening.
    public static let smallRowLimit: (float32: Int, bfloat16: Int, quantized: Int) = {
        let env = ProcessInfo.processInfo.environment
        return (Int(env["PEFT_SMALL_M_F32"] ?? "") ?? 8, Int(env["PEFT_SMALL_M_BF16"] ?? "") ?? 64,
                Int(env["PEFT_SMALL_M_QUANT"] ?? "") ?? 16)
    }()

    /// Quantized weights. Decoding (`exact` false), any number of rows: integer dot products of the blocks with the
    /// activations rounded to 8 bits per block of 32, as llama.cpp does. Exact products (training, evaluation): a few
    /// rows against groups of rows dequantized to f32 in cache; more rows through the GEMM on dequantized panels (bf16
    /// panels for a bf16-compute model).
    private func forwardQuantized(_ type: QuantType, _ w: UnsafePointer<UInt8>, _ x: UnsafePointer<Float>, m: Int,
                                  ldx: Int, y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool, exact: Bool) {
        let groups = (rows + 7) / 8, k = cols, n = rows
        if !exact || m <= Self.smallRowLimit.quantized {
            writing(m: m, into: y, ldy: ldy, accumulate: accumulate) { out, ldo in
                if exact {
                    Parallel.forRanges(groups, minChunk: 4) { gs in
                        // 64 rows at a time into a cache-sized buffer, however large the matrix.
                        let slice = 64
                        var panel = [Float](repeating: 0, count: slice * k)
                        panel.withUnsafeMutableBufferPointer { p in
                            var r0 = gs.lowerBound * 8
                            let end = min(n, gs.upperBound * 8)
                            while r0 < end {
                                let r1 = min(end, r0 + slice)
                                pk_packed_dequantize(type.cType, w, k, r0, r1, p.baseAddress!)
                                if m == 1 {
                                    pk_gemv_f32(p.baseAddress!, k, x, ldx, out + r0, ldo, 1, 0, r1 - r0)
                                } else {
                                    pk_gemm_small_f32(p.baseAddress!, k, x, ldx, out + r0, ldo, m, 0, r1 - r0)
                                }
                                r0 = r1
                            }
                        }
                    }
                } else {
                    // Activations in 8 bits per block of 32 (per 256 for the row-layout k-quants, as llama.cpp), integer dot
                    // products against the blocks.
                    let nb = k / 32
                    let qx = AlignedBuffer<Int8>(count: m * k), dx = FloatBuffer(count: m * nb)
                    let sx = AlignedBuffer<Int32>(count: m * nb)
                    Parallel.forRanges(m, minChunk: 8) { rs in
                        for i in rs {
                            pk_quantize_activations_for(type.cType, x + i * ldx, k, qx.pointer + i * k, dx.pointer + i * nb, sx.pointer + i * nb)
                        }
                    }
                    withExtendedLifetime((qx, dx, sx)) {
                        // Several chunks per thread, taken as threads come free: decoding streams the weights from
                        // memory, and a core slowed by anything else would otherwise keep the others waiting.
                        Parallel.forRanges(groups, minChunk: 4, chunksPerThread: 4) { gs in
                            pk_packed_gemv_q8x(type.cType, w, n, k, qx.pointer, dx.pointer, sx.pointer, out, ldo, m,
                                               gs.lowerBound, gs.upperBound)
                        }
                    }
                }
            }
            return
        }
        if bf16Products {
            // bf16 products: inputs rounded to bf16 once, the weights dequantized straight to bf16 panels.
            let inputs = BF16Inputs(x, rows: m, cols: cols, ld: ldx)
            forEachBF16Panel(type, w) { panel, r0, r1 in
                inputs.multiply(panel, rows: r1 - r0, into: y + r0, ldy: ldy, accumulate: accumulate)
            }
            return
        }
        forEachDequantizedPanel(type, w) { panel, r0, r1 in
            Gemm.multiply(m: m, n: r1 - r0, k: cols, a: x, lda: ldx, b: panel, ldb: cols, transposeB: true,
                          c: y + r0, ldc: ldy, accumulate: accumulate)
        }
    }

    /// Dequantizes rows of W panel by panel (near L2 size) into f32 scratch: body(panel [r1 - r0, cols], r0, r1).
    private func forEachDequantizedPanel(_ type: QuantType, _ w: UnsafePointer<UInt8>,
                                         _ body: (UnsafePointer<Float>, Int, Int) -> Void) {
        forEachPanel(rows: panelRows, scratch: Scratch.panel(count: panelRows * cols),
                     dequantize: { pk_packed_dequantize(type.cType, w, $0, $1, $2, $3) }, body)
    }

    /// Dequantizes rows of W straight to bf16 in panels of up to 8 MiB (one oneDNN product per panel; the largest
    /// matrices, such as a vocabulary-sized LM head, take several): body(panel [r1 - r0, cols], r0, r1).
    private func forEachBF16Panel(_ type: QuantType, _ w: UnsafePointer<UInt8>,
                                  _ body: (UnsafePointer<UInt16>, Int, Int) -> Void) {
        let pr = max(8, min(rows, (4 << 20) / max(1, cols) / 8 * 8))
        forEachPanel(rows: pr, scratch: Scratch.panelHalves(count: pr * cols),
                     dequantize: { pk_packed_dequantize_bf16(type.cType, w, $0, $1, $2, $3) }, body)
    }

    /// Panels of `panelRows` rows of a quantized W into `scratch`, each dequantized by groups of 8 rows in parallel
    /// (`dequantize(cols, r0, r1, out)`), then handed to body(panel, r0, r1).
    private func forEachPanel<T>(rows panelRows: Int, scratch: UnsafeMutablePointer<T>,
                                 dequantize: (Int, Int, Int, UnsafeMutablePointer<T>) -> Void,
                                 _ body: (UnsafePointer<T>, Int, Int) -> Void) {
        let c = cols
        var r0 = 0
        while r0 < rows {
            let r1 = min(rows, r0 + panelRows)
            Parallel.forRanges((r1 - r0 + 7) / 8, minChunk: 1) { gs in
                let a = r0 + gs.lowerBound * 8, b = min(r1, r0 + gs.upperBound * 8)
                dequantize(c, a, b, scratch + (a - r0) * c)
            }
            body(scratch, r0, r1)
            r0 = r1
        }
    }

    /// Rows of W per widened bf16 panel (keeps a panel near L2 size).
    private var panelRows: Int { max(16, min(rows, (256 * 1024) / max(1, cols) / 16 * 16)) }

    /// y[m, rows] = x[m, cols] · W^T (+ y when `accumulate`). x has leading dimension `ldx`, y `ldy`.
    /// - Parameter exact: false lets quantized weights multiply a few rows with activations rounded to 8 bits (the
    ///   decode path, as llama.cpp); true (training, evaluation) always multiplies the f32 activations.
    public func forward(_ x: UnsafePointer<Float>, rows m: Int, ldx: Int? = nil, into y: UnsafeMutablePointer<Float>,
                        ldy: Int? = nil, accumulate: Bool = false, exact: Bool = true) {
        let ldx = ldx ?? cols, ldy = ldy ?? rows
        if m == 0 { return }
        if let order = inputOrder {
            // Inputs gathered into stored-column order, then the ordinary product.
            let gathered = FloatBuffer(count: m * cols), c = cols
            order.indices.withUnsafeBufferPointer { idx in
                for r in 0..<m {
                    let src = x + r * ldx, dst = gathered.pointer + r * c
                    for j in 0..<c { dst[j] = src[Int(idx[j])] }
                }
            }
            var plain = self
            plain.inputOrder = nil
            plain.forward(gathered.pointer, rows: m, ldx: cols, into: y, ldy: ldy, accumulate: accumulate, exact: exact)
            return
        }
        if case .quantized(let type, let w) = storage {
            forwardQuantized(type, w, x, m: m, ldx: ldx, y: y, ldy: ldy, accumulate: accumulate, exact: exact)
            return
        }
        switch storage {
        case .quantized: break   // handled above
        case .float32(let w):
            if m <= Self.smallRowLimit.float32 {
                gemv(w, x, m: m, ldx: ldx, y: y, ldy: ldy, accumulate: accumulate)
            } else {
                Gemm.multiply(m: m, n: rows, k: cols, a: x, lda: ldx, b: w, ldb: cols, transposeB: true,
                              c: y, ldc: ldy, accumulate: accumulate)
            }
        case .bfloat16(let w):
            // A bf16 product: the inputs rounded to bf16, f32 accumulation, on every path and tier.
            let inputs = BF16Inputs(x, rows: m, cols: cols, ld: ldx)
            if m <= Self.smallRowLimit.bfloat16 {
                dotBF16(w, inputs.halves, m: m, y: y, ldy: ldy, accumulate: accumulate)
            } else if !(Gemm.hasBF16Products && Gemm.multiplyBF16(m: m, n: rows, k: cols, a: inputs.halves, lda: cols,
                                                                 b: w, ldb: cols, transposeB: true, c: y, ldc: ldy,
                                                                 accumulate: accumulate)) {
                let xr = inputs.widened
                forEachWidenedPanel(w) { panel, r0, r1 in
                    Gemm.multiply(m: m, n: r1 - r0, k: cols, a: xr, lda: cols, b: panel, ldb: cols, transposeB: true,
                                  c: y + r0, ldc: ldy, accumulate: accumulate)
                }
            }
        }
    }

    /// Widens bf16 rows of W panel by panel (near L2 size) into f32 scratch: body(panel [r1 - r0, cols], r0, r1).
    private func forEachWidenedPanel(_ w: UnsafePointer<UInt16>,
                                     _ body: (UnsafePointer<Float>, Int, Int) -> Void) {
        let pr = panelRows
        let scratch = Scratch.panel(count: pr * cols)
        var r0 = 0
        while r0 < rows {
            let r1 = min(rows, r0 + pr)
            pk_bf16_to_f32(w + r0 * cols, scratch, (r1 - r0) * cols)
            body(scratch, r0, r1)
            r0 = r1
        }
    }

    /// Rows of x (leading dimension ld) rounded to bf16 into a contiguous [rows, cols] buffer.
    static func toBF16(_ x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int, into out: UnsafeMutablePointer<UInt16>) {
        Parallel.forRanges(rows, minChunk: max(1, 16384 / max(cols, 1))) { r in
            if ld == cols {
                pk_f32_to_bf16(x + r.lowerBound * cols, out + r.lowerBound * cols, r.count * cols)
            } else {
                for i in r { pk_f32_to_bf16(x + i * ld, out + i * cols, cols) }
            }
        }
    }

    /// dx[m, cols] = dy[m, rows] · W (+ dx when `accumulate`): the input gradient of `forward`.
    public func backwardInput(_ dy: UnsafePointer<Float>, rows m: Int, lddy: Int? = nil,
                              into dx: UnsafeMutablePointer<Float>, lddx: Int? = nil, accumulate: Bool = false) {
        let lddy = lddy ?? rows, lddx = lddx ?? cols
        if m == 0 { return }
        if let order = inputOrder {
            // The gradient in stored-column order, scattered back to the inputs.
            let stored = FloatBuffer(count: m * cols), c = cols
            var plain = self
            plain.inputOrder = nil
            plain.backwardInput(dy, rows: m, lddy: lddy, into: stored.pointer, lddx: cols)
            order.indices.withUnsafeBufferPointer { idx in
                for r in 0..<m {
                    let src = stored.pointer + r * c, dst = dx + r * lddx
                    if accumulate {
                        for j in 0..<c { dst[Int(idx[j])] += src[j] }
                    } else {
                        for j in 0..<c { dst[Int(idx[j])] = src[j] }
                    }
                }
            }
            return
        }
        switch storage {
        case .quantized(let type, let w):
            if bf16Products {
                let grads = BF16Inputs(dy, rows: m, cols: rows, ld: lddy)
                forEachBF16Panel(type, w) { panel, r0, r1 in
                    grads.multiplyInput(panel, rows: r0..<r1, cols: cols, into: dx, lddx: lddx, accumulate: accumulate || r0 > 0)
                }
                return
            }
            forEachDequantizedPanel(type, w) { panel, r0, r1 in
                Gemm.multiply(m: m, n: cols, k: r1 - r0, a: dy + r0, lda: lddy, b: panel, ldb: cols,
                              c: dx, ldc: lddx, accumulate: accumulate || r0 > 0)
            }
        case .float32(let w):
            Gemm.multiply(m: m, n: cols, k: rows, a: dy, lda: lddy, b: w, ldb: cols, c: dx, ldc: lddx,
                          accumulate: accumulate)
        case .bfloat16(let w):
            // dx = bf16(dy) · W, f32 accumulation: the same meaning as the forward product.
            let grads = BF16Inputs(dy, rows: m, cols: rows, ld: lddy)
            if Gemm.hasBF16Products && Gemm.multiplyBF16(m: m, n: cols, k: rows, a: grads.halves, lda: rows, b: w,
                                                         ldb: cols, c: dx, ldc: lddx, accumulate: accumulate) { return }
            let dr = grads.widened
            forEachWidenedPanel(w) { panel, r0, r1 in
                Gemm.multiply(m: m, n: cols, k: r1 - r0, a: dr + r0, lda: rows, b: panel, ldb: cols,
                              c: dx, ldc: lddx, accumulate: accumulate || r0 > 0)
            }
        }
    }

    /// y = xb · W^T for bf16 inputs xb [m, cols] with the bf16 dot-product kernel of the CPU tier (AVX512-BF16's
    /// instruction, or both operands widened, which is exact); an input row's result does not depend on `m`.
    private func dotBF16(_ w: UnsafePointer<UInt16>, _ xb: UnsafePointer<UInt16>, m: Int,
                         y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        let k = cols
        writing(m: m, into: y, ldy: ldy, accumulate: accumulate) { out, ldo in
            Parallel.forRanges(rows, minChunk: 64, chunksPerThread: 4) { r in pk_dot_bf16(w, k, xb, k, out, ldo, m, r.lowerBound, r.upperBound) }
        }
    }

    /// Runs `body(out, ldo)`, which writes the product's m rows: straight into y, or with `accumulate` into a
    /// temporary that is then added to y (the kernels only overwrite).
    private func writing(m: Int, into y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool,
                         _ body: (UnsafeMutablePointer<Float>, Int) -> Void) {
        guard accumulate else { body(y, ldy); return }
        let temp = FloatBuffer(count: m * rows)
        withExtendedLifetime(temp) {
            body(temp.pointer, rows)
            for i in 0..<m { pk_axpy(1, temp.pointer + i * rows, y + i * ldy, rows) }
        }
    }

    private func gemv(_ w: UnsafePointer<Float>, _ x: UnsafePointer<Float>, m: Int, ldx: Int,
                      y: UnsafeMutablePointer<Float>, ldy: Int, accumulate: Bool) {
        writing(m: m, into: y, ldy: ldy, accumulate: accumulate) { out, ldo in
            let k = cols
            // Chunks are multiples of 4 rows so the tiled kernel keeps full tiles.
            Parallel.forRanges(rows, minChunk: 64) { r in
                if m == 1 {
                    pk_gemv_f32(w, k, x, ldx, out, ldo, m, r.lowerBound, r.upperBound)
                } else {
                    pk_gemm_small_f32(w, k, x, ldx, out, ldo, m, r.lowerBound, r.upperBound)
                }
            }
        }
    }

    /// Copies rows `r` of W into `dst` as f32 (`dst` holds `cols` floats per row).
    public func readRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        if let order = inputOrder {
            let stored = FloatBuffer(count: cols)
            var plain = self
            plain.inputOrder = nil
            plain.readRow(r, into: stored.pointer)
            for (j, i) in order.indices.enumerated() { dst[Int(i)] = stored.pointer[j] }
            return
        }
        switch storage {
        case .float32(let w): dst.update(from: w + r * cols, count: cols)
        case .bfloat16(let w): pk_bf16_to_f32(w + r * cols, dst, cols)
        case .quantized(let t, let w): pk_packed_dequantize(t.cType, w, cols, r, r + 1, dst)
        }
    }

    /// Every row divided by its L2 norm (at least 1e-12, as torch's `normalize`), in the same storage kind
    /// (Baichuan2's NormHead).
    public func rowNormalized() -> WeightMatrix {
        let values = toFloat()
        Ops.normalizeRows(values.pointer, rows: rows, cols: cols)
        let plain = WeightMatrix(rows: rows, cols: cols, storage: .float32(UnsafePointer(values.pointer)), owner: values)
        var out: WeightMatrix
        switch storage {
        case .float32:
            out = plain
        case .bfloat16:
            let half = HalfBuffer(count: rows * cols)
            pk_f32_to_bf16(values.pointer, half.pointer, rows * cols)
            out = WeightMatrix(rows: rows, cols: cols, storage: .bfloat16(UnsafePointer(half.pointer)), owner: half)
        case .quantized(let t, _):
            out = plain.quantized(t) ?? plain
        }
        out.bf16Products = bf16Products
        return out
    }

    /// The whole matrix as f32 (for tests, merging and saving).
    public func toFloat() -> FloatBuffer {
        if inputOrder != nil {
            let out = FloatBuffer(count: rows * cols)
            for r in 0..<rows { readRow(r, into: out.pointer + r * cols) }
            return out
        }
        let out = FloatBuffer(count: rows * cols)
        switch storage {
        case .float32(let w): out.copy(from: w, count: rows * cols)
        case .bfloat16(let w): pk_bf16_to_f32(w, out.pointer, rows * cols)
        case .quantized(let t, let w):
            let c = cols
            Parallel.forRanges((rows + 7) / 8) { gs in
                pk_packed_dequantize(t.cType, w, c, gs.lowerBound * 8, min(rows, gs.upperBound * 8), out.pointer + gs.lowerBound * 8 * c)
            }
        }
        return out
    }
}

/// The operand of a bf16 product: rows of f32 inputs (activations or gradients) rounded to bf16 once, and, for
/// products that do not run natively, the rounded values widened back to f32 (exact), so every path multiplies the
/// same numbers.
final class BF16Inputs {
    let halves: UnsafeMutablePointer<UInt16>
    let rows: Int, cols: Int
    private var wide: UnsafeMutablePointer<Float>?

    init(_ x: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) {
        self.rows = rows; self.cols = cols
        halves = Scratch.halves(count: rows * cols)
        WeightMatrix.toBF16(x, rows: rows, cols: cols, ld: ld, into: halves)
    }

    /// The rounded rows as f32 [rows, cols].
    var widened: UnsafeMutablePointer<Float> {
        if let wide { return wide }
        let out = Scratch.rounded(count: rows * cols), h = halves, c = cols
        Parallel.forRanges(rows, minChunk: max(1, 16384 / max(c, 1))) { r in
            pk_bf16_to_f32(h + r.lowerBound * c, out + r.lowerBound * c, r.count * c)
        }
        wide = out
        return out
    }

    /// y[rows, n] (+)= inputs · panel^T for a bf16 panel [n, cols].
    func multiply(_ panel: UnsafePointer<UInt16>, rows n: Int, into y: UnsafeMutablePointer<Float>, ldy: Int,
                  accumulate: Bool) {
        if Gemm.hasBF16Products && Gemm.multiplyBF16(m: rows, n: n, k: cols, a: halves, lda: cols, b: panel, ldb: cols,
                                                     transposeB: true, c: y, ldc: ldy, accumulate: accumulate) { return }
        let xr = widened, wide = Scratch.panel(count: n * cols)
        pk_bf16_to_f32(panel, wide, n * cols)
        Gemm.multiply(m: rows, n: n, k: cols, a: xr, lda: cols, b: wide, ldb: cols, transposeB: true, c: y, ldc: ldy,
                      accumulate: accumulate)
    }

    /// dx[rows, n] (+)= inputs[:, band] · panel for a bf16 panel [band.count, n] holding rows `band` of W: the input
    /// gradient through those rows (the inputs here are output gradients, [rows, W.rows]).
    func multiplyInput(_ panel: UnsafePointer<UInt16>, rows band: Range<Int>, cols n: Int,
                       into dx: UnsafeMutablePointer<Float>, lddx: Int, accumulate: Bool) {
        let kb = band.count
        if Gemm.hasBF16Products && Gemm.multiplyBF16(m: rows, n: n, k: kb, a: halves + band.lowerBound, lda: cols,
                                                     b: panel, ldb: n, c: dx, ldc: lddx, accumulate: accumulate) { return }
        let dr = widened, wide = Scratch.panel(count: kb * n)
        pk_bf16_to_f32(panel, wide, kb * n)
        Gemm.multiply(m: rows, n: n, k: kb, a: dr + band.lowerBound, lda: cols, b: wide, ldb: n, c: dx, ldc: lddx,
                      accumulate: accumulate)
    }
}

/// Per-thread scratch for widened panels and bf16 copies of inputs; grows, never shrinks.
enum Scratch {
    private final class Box {
        var floats = FloatBuffer(count: 0)
        var halves = HalfBuffer(count: 0)
        var panelHalves = HalfBuffer(count: 0)
        var rounded = FloatBuffer(count: 0)
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { ptr in if let ptr { Unmanaged<Box>.fromOpaque(ptr).release() } }
        return k
    }()

    private static var box: Box {
        if let raw = pthread_getspecific(key) { return Unmanaged<Box>.fromOpaque(raw).takeUnretainedValue() }
        let b = Box()
        pthread_setspecific(key, Unmanaged.passRetained(b).toOpaque())
        return b
    }

    static func panel(count: Int) -> UnsafeMutablePointer<Float> {
        let b = box
        if b.floats.count < count { b.floats = FloatBuffer(count: count) }
        return b.floats.pointer
    }

    static func panelHalves(count: Int) -> UnsafeMutablePointer<UInt16> {
        let b = box
        if b.panelHalves.count < count { b.panelHalves = HalfBuffer(count: count) }
        return b.panelHalves.pointer
    }

    static func rounded(count: Int) -> UnsafeMutablePointer<Float> {
        let b = box
        if b.rounded.count < count { b.rounded = FloatBuffer(count: count) }
        return b.rounded.pointer
    }

    static func halves(count: Int) -> UnsafeMutablePointer<UInt16> {
        let b = box
        if b.halves.count < count { b.halves = HalfBuffer(count: count) }
        return b.halves.pointer
    }
}

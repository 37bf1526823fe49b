import Foundation
import Kernels
import TestSupport
import XCTest

/// GGML block formats: quantization bit for bit as the `gguf` package (scripts/make_quant_fixtures.py), dequantization
/// of every type as gguf's, and products from quantized storage equal to products with the dequantized f32 matrix
/// (AVX-512 and scalar kernels, GEMV and panel GEMM paths).
final class QuantTests: XCTestCase {
    struct Golden: Decodable {
        struct Quantized: Decodable { let bytes: String; let dequantized: [Float] }
        let values: [Float]
        let q8_0: Quantized
        let q4_0: Quantized
        let q5_0: Quantized
        let q4_k_blocks: Quantized
    }

    func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/quant.json")))
    }

    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = [], chars = Array(hex.utf8)
        out.reserveCapacity(chars.count / 2)
        var i = 0
        func nibble(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : c - 48 }
        while i + 1 < chars.count { out.append(nibble(chars[i]) << 4 | nibble(chars[i + 1])); i += 2 }
        chars.removeAll()
        return out
    }

    func testQ8Q4AndQ5QuantizeBitForBitAsGGUF() throws {
        let g = try golden()
        for (type, expected) in [(QuantType.q8_0, g.q8_0), (.q4_0, g.q4_0), (.q5_0, g.q5_0)] {
            var out = [UInt8](repeating: 0, count: type.byteCount(rows: 1, cols: g.values.count))
            g.values.withUnsafeBufferPointer { v in
                out.withUnsafeMutableBufferPointer { type.quantize(v.baseAddress!, count: g.values.count, into: $0.baseAddress!) }
            }
            XCTAssertEqual(out, Self.bytes(expected.bytes), "\(type) bytes")
            var back = [Float](repeating: 0, count: g.values.count)
            out.withUnsafeBufferPointer { b in back.withUnsafeMutableBufferPointer { type.dequantize(b.baseAddress!, count: g.values.count, into: $0.baseAddress!) } }
            XCTAssertEqual(back, expected.dequantized, "\(type) dequantized")
        }
    }

    func testQ4KDequantizesAsGGUF() throws {
        let g = try golden()
        let blocks = Self.bytes(g.q4_k_blocks.bytes)
        let n = g.q4_k_blocks.dequantized.count
        var out = [Float](repeating: 0, count: n)
        blocks.withUnsafeBufferPointer { b in out.withUnsafeMutableBufferPointer { QuantType.q4_k.dequantize(b.baseAddress!, count: n, into: $0.baseAddress!) } }
        XCTAssertEqual(out, g.q4_k_blocks.dequantized)
    }

    func testQ4KQuantizationIsCloseAndStable() throws {
        // No reference quantizer for q4_k in the gguf package: check the error bound of a 4-bit affine grid with
        // 6-bit sub-scales, and that quantizing the dequantized values again reproduces them exactly.
        let g = try golden()
        let type = QuantType.q4_k
        let n = g.values.count
        var q = [UInt8](repeating: 0, count: type.byteCount(rows: 1, cols: n)), back = [Float](repeating: 0, count: n)
        g.values.withUnsafeBufferPointer { v in q.withUnsafeMutableBufferPointer { type.quantize(v.baseAddress!, count: n, into: $0.baseAddress!) } }
        q.withUnsafeBufferPointer { b in back.withUnsafeMutableBufferPointer { type.dequantize(b.baseAddress!, count: n, into: $0.baseAddress!) } }
        for sb in 0..<(n / 256) {
            let superBlock = g.values[(sb * 256)..<(sb * 256 + 256)]
            let superSpan = superBlock.max()! - min(superBlock.min()!, 0)
            for j in 0..<8 {
                let range = (sb * 256 + 32 * j)..<(sb * 256 + 32 * (j + 1))
                let lo = g.values[range].min()!, hi = g.values[range].max()!
                // Half a step of a 15-level grid over the sub-block's span, plus the 6-bit scale quantization; a
                // sub-block far smaller than one 63rd of its super-block gets a zero scale (values near its min).
                let span = hi - min(lo, 0)
                let bound = (span < superSpan / 63 ? span : span / 15 * 0.75) + 1e-6
                for i in range { XCTAssertEqual(back[i], g.values[i], accuracy: bound, "super-block \(sb) sub-block \(j)") }
            }
        }
        var again = [UInt8](repeating: 0, count: q.count), back2 = [Float](repeating: 0, count: n)
        back.withUnsafeBufferPointer { v in again.withUnsafeMutableBufferPointer { type.quantize(v.baseAddress!, count: n, into: $0.baseAddress!) } }
        again.withUnsafeBufferPointer { b in back2.withUnsafeMutableBufferPointer { type.dequantize(b.baseAddress!, count: n, into: $0.baseAddress!) } }
        assertClose(back2, back, atol: 1e-3)
    }

    /// x rounded as the decode kernels round it: per block, scale max|x| / 127, values round(x / scale); the scale
    /// kept as f16 for blocks of 32 (llama.cpp's q8_0 activations), as f32 for blocks of 256 (its q8_K).
    static func eightBit(_ x: [Float], blockSize: Int) -> [Float] {
        var out = x
        for b in stride(from: 0, to: x.count, by: blockSize) {
            let block = x[b..<min(x.count, b + blockSize)]
            let d = block.map(abs).max()! / 127
            let id: Float = d != 0 ? 1 / d : 0
            var half: UInt16 = 0, stored: Float = d
            if blockSize == 32 {
                Convert.fromFloat([d], dtype: .float16, into: &half, count: 1)
                Convert.toFloat(&half, dtype: .float16, into: &stored, count: 1)
            }
            for i in block.indices { out[i] = (x[i] * id).rounded(.toNearestOrAwayFromZero) * stored }
        }
        return out
    }

    func testProductsEqualTheDequantizedMatrix() throws {
        var rng = SeededGenerator(seed: 3)
        // 141 rows: 17 full groups of 8 and a padded one (more than one 64-row slice per thread in exact products);
        // 512 columns: two k-quant super-blocks.
        let (rows, cols) = (141, 512)
        let values = (0..<(rows * cols)).map { _ in rng.nextNormal() * 0.1 }
        let dense = values.withUnsafeBufferPointer { WeightMatrix(rows: rows, cols: cols, values: $0.baseAddress!) }
        for type in QuantType.allCases {
            let q = try XCTUnwrap(dense.quantized(type))
            XCTAssertEqual(q.byteCount, type.packedByteCount(rows: 144, cols: cols))
            // The packed layout gives every row's GGML blocks back bit for bit.
            for r in [0, 7, 8, 44, 140] {
                var want = [UInt8](repeating: 0, count: type.byteCount(rows: 1, cols: cols)), got = want
                values.withUnsafeBufferPointer { v in want.withUnsafeMutableBufferPointer { type.quantize(v.baseAddress! + r * cols, count: cols, into: $0.baseAddress!) } }
                got.withUnsafeMutableBufferPointer { q.blocks(ofRow: r, into: $0.baseAddress!) }
                XCTAssertEqual(got, want, "\(type) row \(r) blocks")
            }
            let reference = q.toFloat()
            let exact = WeightMatrix(rows: rows, cols: cols, values: reference.pointer)
            // Every tier, with and without its integer dot-product instructions (VNNI, AVX-VNNI, dotprod).
            forEachCPUTier(integerDotVariants: true) { path in
                for m in [1, 3, 6, 20] {
                    let x = (0..<(m * cols)).map { _ in rng.nextNormal() }
                    var ours = [Float](repeating: 0, count: m * rows), want = ours
                    // Decoding (any number of rows) multiplies with activations rounded to 8 bits per block of 32, as
                    // llama.cpp: the reference rounds them the same way.
                    // The k-quants kept row by row take one activation scale per 256, as llama.cpp's q8_K.
                    let rowKQuant: Set<QuantType> = [.q2_k, .q3_k, .q5_k, .q6_k, .iq4_xs]
                    let xs = Self.eightBit(x, blockSize: rowKQuant.contains(type) ? 256 : 32)
                    x.withUnsafeBufferPointer { xp in
                        ours.withUnsafeMutableBufferPointer { q.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!, exact: false) }
                    }
                    xs.withUnsafeBufferPointer { xp in
                        want.withUnsafeMutableBufferPointer { exact.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) }
                    }
                    // Same weights and inputs, different summation order: f32 rounding only.
                    assertClose(ours, want, atol: 1e-4, rtol: 1e-4, "\(type) m=\(m) \(path)")
                    // Against the unrounded activations: within the 8-bit rounding of x (steps of max|x| / 127 per 32, or
                    // per 256: about 3 times the error).
                    var f32 = [Float](repeating: 0, count: m * rows)
                    x.withUnsafeBufferPointer { xp in f32.withUnsafeMutableBufferPointer { exact.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
                    assertClose(ours, f32, atol: rowKQuant.contains(type) ? 0.15 : 0.05, rtol: 0.02, "\(type) m=\(m) vs f32 activations")
                    do {
                        // Exact products (training, evaluation) use the f32 activations: a few rows against dequantized
                        // groups, more through the GEMM on dequantized panels.
                        var exactOurs = [Float](repeating: 0, count: m * rows)
                        x.withUnsafeBufferPointer { xp in exactOurs.withUnsafeMutableBufferPointer { q.forward(xp.baseAddress!, rows: m, into: $0.baseAddress!) } }
                        assertClose(exactOurs, f32, atol: 1e-4, rtol: 1e-4, "\(type) m=\(m) exact")
                    }
                    // The input gradient dx = dy W.
                    let dy = (0..<(m * rows)).map { _ in rng.nextNormal() }
                    var dx = [Float](repeating: 0, count: m * cols), dxWant = dx
                    dy.withUnsafeBufferPointer { d in
                        dx.withUnsafeMutableBufferPointer { q.backwardInput(d.baseAddress!, rows: m, into: $0.baseAddress!) }
                        dxWant.withUnsafeMutableBufferPointer { exact.backwardInput(d.baseAddress!, rows: m, into: $0.baseAddress!) }
                    }
                    assertClose(dx, dxWant, atol: 1e-4, rtol: 1e-4, "\(type) backward m=\(m)")
                }
            }
            var row = [Float](repeating: 0, count: cols)
            row.withUnsafeMutableBufferPointer { q.readRow(7, into: $0.baseAddress!) }
            XCTAssertEqual(row, Array(UnsafeBufferPointer(start: reference.pointer + 7 * cols, count: cols)))
        }
        // Rows that are not whole blocks cannot be quantized.
        let odd = [Float](repeating: 1, count: 4 * 48).withUnsafeBufferPointer { WeightMatrix(rows: 4, cols: 48, values: $0.baseAddress!) }
        XCTAssertNil(odd.quantized(.q8_0))
    }
}

/// The worker pool behind `Parallel`: every chunk runs exactly once, nested calls and calls from several threads at
/// once run (inline) instead of deadlocking.
final class ParallelTests: XCTestCase {
    func testEveryChunkOnceNestedAndConcurrent() {
        for count in [1, 2, 3, 17, 1000] {
            let hits = AlignedBuffer<Int32>(count: count)
            Parallel.forRanges(count) { r in for i in r { hits.pointer[i] += 1 } }
            XCTAssertEqual(Array(UnsafeBufferPointer(start: hits.pointer, count: count)), Array(repeating: 1, count: count))
        }
        let outer = 8, inner = 64
        let cells = AlignedBuffer<Int32>(count: outer * inner)
        Parallel.forEach(outer) { o in Parallel.forEach(inner) { i in cells.pointer[o * inner + i] += 1 } }
        XCTAssertEqual(Set(UnsafeBufferPointer(start: cells.pointer, count: outer * inner)), [1])
        let sums = AlignedBuffer<Int64>(count: 4)
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for _ in 0..<200 {
                let part = AlignedBuffer<Int64>(count: 100)
                Parallel.forRanges(100) { r in for i in r { part.pointer[i] = Int64(i) } }
                sums.pointer[t] += (0..<100).reduce(0) { $0 + part.pointer[$1] }
            }
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: sums.pointer, count: 4)), Array(repeating: 200 * 4950, count: 4))
    }
}

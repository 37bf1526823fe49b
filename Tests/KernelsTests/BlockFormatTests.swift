import Foundation
import Kernels
import TestSupport
import XCTest

/// Every GGML block format against llama.cpp (scripts/make_block_fixtures.py): 2048 values of varied character
/// quantized by its `quantize_row_*_ref`, dequantized by the `gguf` package. Our quantizer gives its bytes, our
/// dequantizer gguf's values bit for bit, and the matrix held in memory (regrouped or row by row) dequantizes to the
/// same values and gives back the same bytes, on every CPU tier.
final class BlockFormatTests: XCTestCase {
    struct Quantized: Decodable { let bytes: String; let dequantized: [Float] }

    func golden() throws -> (values: [Float], types: [QuantType: Quantized]) {
        let data = try Data(contentsOf: fixtureURL("golden/blocks.json"))
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let values = try XCTUnwrap(object["values"] as? [Double]).map(Float.init)
        var types: [QuantType: Quantized] = [:]
        for type in QuantType.allCases {
            let entry = try XCTUnwrap(object[type.rawValue], "blocks.json has no \(type)")
            types[type] = try JSONDecoder().decode(Quantized.self, from: JSONSerialization.data(withJSONObject: entry))
        }
        return (values, types)
    }

    func testEveryFormatQuantizesAsLlamaCppAndDequantizesAsGGUF() throws {
        let (values, types) = try golden()
        let n = values.count
        forEachCPUTier { path in
            for type in QuantType.allCases {
                let expected = types[type]!
                let want = QuantTests.bytes(expected.bytes)
                XCTAssertEqual(want.count, type.byteCount(rows: 1, cols: n), "\(type) fixture size")
                var out = [UInt8](repeating: 0, count: type.byteCount(rows: 1, cols: n))
                values.withUnsafeBufferPointer { v in out.withUnsafeMutableBufferPointer { type.quantize(v.baseAddress!, count: n, into: $0.baseAddress!) } }
                let blocks = n / type.blockSize
                let differing = (0..<blocks).filter { b in
                    let r = (b * type.blockBytes)..<((b + 1) * type.blockBytes)
                    return out[r] != want[r]
                }
                XCTAssertEqual(differing, [], "\(type): blocks whose bytes differ from llama.cpp's (\(path))")

                var back = [Float](repeating: 0, count: n)
                want.withUnsafeBufferPointer { b in back.withUnsafeMutableBufferPointer { type.dequantize(b.baseAddress!, count: n, into: $0.baseAddress!) } }
                XCTAssertEqual(back.map(\.bitPattern), expected.dequantized.map(\.bitPattern), "\(type) dequantized (\(path))")

                // The same bytes as an [8, n / 8] matrix in memory.
                let cols = n / 8, rowBytes = type.byteCount(rows: 1, cols: cols)
                let m = WeightMatrix.packing(type, rows: 8, cols: cols) { r, dst in
                    want.withUnsafeBufferPointer { dst.update(from: $0.baseAddress! + r * rowBytes, count: rowBytes) }
                }
                XCTAssertEqual(m.byteCount, type.packedByteCount(rows: 8, cols: cols))
                let dense = m.toFloat()
                XCTAssertEqual(Array(UnsafeBufferPointer(start: dense.pointer, count: n)).map(\.bitPattern),
                               expected.dequantized.map(\.bitPattern), "\(type) matrix dequantized (\(path))")
                var row = [UInt8](repeating: 0, count: rowBytes)
                row.withUnsafeMutableBufferPointer { m.blocks(ofRow: 5, into: $0.baseAddress!) }
                XCTAssertEqual(row, Array(want[(5 * rowBytes)..<(6 * rowBytes)]), "\(type) row 5 blocks")
            }
        }
    }

    /// In memory, every format takes exactly what it takes on disk (rows padded to 8), regrouped or not.
    func testMatricesInMemoryAreAsCompactAsOnDisk() {
        for type in QuantType.allCases {
            let memory = type.packedByteCount(rows: 64, cols: 1024), disk = type.byteCount(rows: 64, cols: 1024)
            XCTAssertEqual(memory, disk, "\(type)")
        }
    }
}

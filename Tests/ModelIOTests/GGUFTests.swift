import Foundation
import Kernels
import ModelIO
import TestSupport
import XCTest

/// GGUF files: what the writer writes the reader reads back (metadata of every type, tensors of every type, their
/// bytes and alignment), and truncated or corrupt files are clear errors.
final class GGUFTests: XCTestCase {
    func temp() -> URL { temporaryURL("gguf").appendingPathExtension("gguf") }

    func sampleWriter() -> GGUFWriter {
        var w = GGUFWriter()
        w.metadata = [
            ("general.architecture", .string("qwen2")), ("qwen2.block_count", .uint32(2)), ("x.i8", .int8(-3)),
            ("x.u16", .uint16(7)), ("x.i64", .int64(-5)), ("x.f32", .float32(1.5)), ("x.f64", .float64(2.25)),
            ("x.bool", .bool(true)), ("tokenizer.ggml.tokens", .strings(["a", "Ġb", "你好"])),
            ("tokenizer.ggml.token_type", .int32s([1, 1, 3])), ("x.empty", .strings([])),
        ]
        w.tensors = [.init(name: "f32", dims: [3], type: .f32), .init(name: "q8", dims: [64, 2], type: .q8_0),
                     .init(name: "q4k", dims: [256, 1], type: .q4_k), .init(name: "half", dims: [5, 2], type: .f16)]
        return w
    }

    func testRoundTrip() throws {
        let url = temp()
        defer { try? FileManager.default.removeItem(at: url) }
        let w = sampleWriter()
        try w.write(to: url) { t, out in
            for i in 0..<out.count { out[i] = UInt8(truncatingIfNeeded: i &* 7 &+ t.name.count) }
        }
        let f = try GGUFFile(path: url.path)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.keys, w.metadata.map(\.key))
        for (key, value) in w.metadata { XCTAssertEqual(f.metadata[key], value, key) }
        XCTAssertEqual(f.tensorNames, w.tensors.map(\.name))
        for t in w.tensors {
            let info = try XCTUnwrap(f.tensors[t.name])
            XCTAssertEqual(info.dims, t.dims)
            XCTAssertEqual(info.type, t.type)
            XCTAssertEqual(info.byteCount, t.byteCount)
            XCTAssertEqual(Int(bitPattern: info.data) % 32, Int(bitPattern: f.file.base) % 32, "aligned")
            for i in 0..<info.byteCount {
                XCTAssertEqual(info.data.load(fromByteOffset: i, as: UInt8.self), UInt8(truncatingIfNeeded: i &* 7 &+ t.name.count))
            }
        }
    }

    func testTruncatedAndCorruptFilesAreClearErrors() throws {
        let url = temp()
        defer { try? FileManager.default.removeItem(at: url) }
        try sampleWriter().write(to: url) { _, out in out.initializeMemory(as: UInt8.self, repeating: 1) }
        let bytes = try Data(contentsOf: url)
        func expect(_ data: Data, _ fragment: String, line: UInt = #line) throws {
            try data.write(to: url)
            XCTAssertThrowsError(try GGUFFile(path: url.path), line: line) { XCTAssertTrue("\($0)".contains(fragment), "\($0)", line: line) }
        }
        try expect(bytes.prefix(bytes.count - 100), "past the end of the file")
        try expect(bytes.prefix(40), "truncated")
        var magic = bytes
        magic[0] = 0x00
        try expect(magic, "bad magic")
        var count = bytes
        count.replaceSubrange(8..<16, with: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f])
        try expect(count, "implausible")
        var version = bytes
        version[4] = 9
        try expect(version, "GGUF version 9")
    }

    func testTensorInfoErrors() throws {
        // One tensor "t" of 32 f32 values and no metadata: its type sits at bytes 45..<49, its offset at 49..<57.
        let url = temp()
        defer { try? FileManager.default.removeItem(at: url) }
        var w = GGUFWriter()
        w.tensors = [.init(name: "t", dims: [32], type: .f32)]
        try w.write(to: url) { _, out in out.initializeMemory(as: UInt8.self, repeating: 0) }
        let good = try Data(contentsOf: url)
        XCTAssertNoThrow(try GGUFFile(path: url.path))
        func expect(_ patch: (inout Data) -> Void, _ fragment: String, line: UInt = #line) throws {
            var bytes = good
            patch(&bytes)
            try bytes.write(to: url)
            XCTAssertThrowsError(try GGUFFile(path: url.path), line: line) { XCTAssertTrue("\($0)".contains(fragment), "\($0)", line: line) }
        }
        try expect({ $0[45] = 99 }, "GGML type 99")
        try expect({ $0[49] = 1 }, "not aligned")
        try expect({ $0[49] = 0; $0[50] = 0; $0[51] = 1 }, "past the end of the file")
        // A q8_0 tensor of 33 values is not a whole number of 32-value blocks.
        var q = GGUFWriter()
        q.tensors = [.init(name: "t", dims: [32], type: .q8_0)]
        try q.write(to: url) { _, out in out.initializeMemory(as: UInt8.self, repeating: 0) }
        var bytes = try Data(contentsOf: url)
        bytes[37] = 33
        try bytes.write(to: url)
        XCTAssertThrowsError(try GGUFFile(path: url.path)) { XCTAssertTrue("\($0)".contains("not a whole number of q8_0 blocks"), "\($0)") }
    }
}

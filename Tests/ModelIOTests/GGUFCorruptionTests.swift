import Foundation
import ModelIO
import TestSupport
import XCTest

/// The corruptions llama.cpp's test-gguf makes of a GGUF file, each against our reader: a clear error naming the
/// problem (never a crash, never a silently wrong file). The file is built here byte by byte, valid first (which
/// reads), then broken one way at a time.
final class GGUFCorruptionTests: XCTestCase {
    /// A little-endian GGUF image: header, key/values, tensor infos, padding, data.
    struct Image {
        var magic: [UInt8] = Array("GGUF".utf8)
        var version: UInt32 = 3
        var tensorCount: UInt64?
        var kvCount: UInt64?
        var kv: [(key: String, type: UInt32, payload: [UInt8])] = [
            ("general.architecture", 8, Image.string("qwen2")),
            ("general.alignment", 4, Image.u32(32)),
        ]
        /// (name, dims, ggml type, offset)
        var tensors: [(name: String, dims: [UInt64], type: UInt32, offset: UInt64)] = [
            ("a", [8, 2], 0, 0), ("b", [32], 0, 64),
        ]
        var dataBytes = 192
        var truncateBy = 0

        static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        static func string(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }

        var bytes: Data {
            var out = magic + Self.u32(version) + Self.u64(tensorCount ?? UInt64(tensors.count)) + Self.u64(kvCount ?? UInt64(kv.count))
            for e in kv { out += Self.string(e.key) + Self.u32(e.type) + e.payload }
            for t in tensors {
                out += Self.string(t.name) + Self.u32(UInt32(t.dims.count)) + t.dims.flatMap(Self.u64) + Self.u32(t.type) + Self.u64(t.offset)
            }
            while out.count % 32 != 0 { out.append(0) }
            out += [UInt8](repeating: 0x3F, count: dataBytes)
            return Data(out.dropLast(truncateBy))
        }
    }

    func read(_ image: Image) throws -> GGUFFile {
        let url = temporaryURL("corrupt").appendingPathExtension("gguf")
        try image.bytes.write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return try GGUFFile(path: url.path)
    }

    func testTheValidImageReads() throws {
        let file = try read(Image())
        XCTAssertEqual(file.tensorNames, ["a", "b"])
        XCTAssertEqual(file.tensors["b"]?.elementCount, 32)
        XCTAssertEqual(file.metadata["general.architecture"]?.string, "qwen2")
    }

    func testEveryCorruptionIsAClearError() throws {
        var cases: [(String, (inout Image) -> Void, String)] = [
            ("bad magic", { $0.magic = Array("GGUL".utf8) }, "bad magic"),
            ("version 1", { $0.version = 1 }, "version 1"),
            ("version 4", { $0.version = 4 }, "version 4"),
            ("huge tensor count", { $0.tensorCount = UInt64(1) << 62 }, "implausible"),
            ("negative tensor count", { $0.tensorCount = UInt64.max }, "implausible"),
            ("huge key count", { $0.kvCount = UInt64(1) << 40 }, "implausible"),
            ("more keys than written", { $0.kvCount = 3 }, ""),
            ("empty key", { $0.kv.append(("", 4, Image.u32(1))) }, "empty metadata key"),
            ("duplicate key", { $0.kv.append(("general.architecture", 8, Image.string("llama"))) }, "appears twice"),
            ("bad value type", { $0.kv.append(("x", 13, Image.u32(1))) }, "unknown metadata value type 13"),
            ("bad array element type", { $0.kv.append(("x", 9, Image.u32(99) + Image.u64(0))) }, "unknown array element type 99"),
            ("huge array", { $0.kv.append(("x", 9, Image.u32(0) + Image.u64(1 << 40))) }, "implausible"),
            ("huge string", { $0.kv.append(("x", 8, Image.u64(1 << 40))) }, "implausible"),
            ("string past the end", { $0.kv.append(("x", 8, Image.u64(1 << 20))) }, "truncated"),
            ("alignment as a string", { $0.kv[1] = ("general.alignment", 8, Image.string("32")) }, "must be a uint32"),
            ("zero alignment", { $0.kv[1] = ("general.alignment", 4, Image.u32(0)) }, "not a power of two"),
            ("odd alignment", { $0.kv[1] = ("general.alignment", 4, Image.u32(48)) }, "not a power of two"),
            ("rank 0", { $0.tensors[0].dims = [] }, "0 dimensions"),
            ("rank 5", { $0.tensors[0].dims = [1, 1, 1, 1, 16] }, "5 dimensions"),
            ("zero dimension", { $0.tensors[0].dims = [8, 0] }, "dimension of 0"),
            ("huge dimension", { $0.tensors[0].dims = [1 << 42 + 1] }, "dimension of"),
            ("element count overflow", { $0.tensors[0].dims = [1 << 30, 1 << 30, 1 << 30] }, "not a whole number"),
            ("unknown tensor type", { $0.tensors[0].type = 77 }, "GGML type 77"),
            ("partial block", { $0.tensors[0] = ("a", [16], 8, 0) }, "not a whole number of q8_0 blocks"),
            ("unaligned offset", { $0.tensors[1].offset = 72 }, "not aligned"),
            ("offset past the end", { $0.tensors[1].offset = 1 << 20 }, "past the end"),
            ("huge offset", { $0.tensors[1].offset = UInt64.max - 7 }, "offset"),
            ("overlapping tensors", { $0.tensors[1].offset = 32 }, "overlap"),
            ("duplicate tensor names", { $0.tensors[1].name = "a" }, "appears twice"),
            ("empty tensor name", { $0.tensors[1].name = "" }, "without a name"),
            ("truncated data", { $0.truncateBy = 100 }, "truncated?"),
            ("truncated header", { $0.truncateBy = 150 + 192 }, "truncated"),
        ]
        cases.append(("no bytes", { $0.truncateBy = $0.bytes.count }, "truncated"))
        for (label, corrupt, fragment) in cases {
            var image = Image()
            corrupt(&image)
            XCTAssertThrowsError(try read(image), label) { error in
                if !fragment.isEmpty { XCTAssertTrue("\(error)".contains(fragment), "\(label): \(error)") }
                XCTAssertTrue("\(error)".contains(".gguf"), "\(label): the error names the file: \(error)")
            }
        }
    }
}

import Foundation
import Kernels
import ModelIO
import TestSupport
import XCTest

/// Reading, writing and rejecting safetensors files and model directories.
final class SafetensorsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("st-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testWriteReadRoundTripAllDTypes() throws {
        var w = SafetensorsWriter()
        let values: [Float] = [1, -2.5, 3.25, 0, 1e-3, 65504]
        w.add("b.f32", dtype: .float32, shape: [2, 3], floats: values)
        w.add("a.bf16", dtype: .bfloat16, shape: [6], floats: values)
        w.add("c.f16", dtype: .float16, shape: [3, 2], floats: values)
        let url = dir.appendingPathComponent("x.safetensors")
        try w.write(to: url)
        let file = try SafetensorsFile(path: url.path)
        XCTAssertEqual(file.metadata["format"], "pt")
        XCTAssertEqual(try file.tensors["b.f32"]!.floats(), values)
        XCTAssertEqual(file.tensors["a.bf16"]!.shape, [6])
        assertClose(try file.tensors["a.bf16"]!.floats(), values, atol: 1e-3, rtol: 1e-2)
        assertClose(try file.tensors["c.f16"]!.floats(), values, atol: 1e-4, rtol: 1e-3)
        // Header length is a multiple of 8, as the reference writer pads it.
        let data = try Data(contentsOf: url)
        let headerLength = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        XCTAssertEqual(headerLength % 8, 0)
    }

    func testPythonWrittenFileReads() throws {
        // Written by safetensors (Python) via transformers' save_pretrained.
        let file = try SafetensorsFile(path: modelFixture("tiny-qwen2").appendingPathComponent("model.safetensors").path)
        let embed = try XCTUnwrap(file.tensors["model.embed_tokens.weight"])
        XCTAssertEqual(embed.shape, [384, 64])
        XCTAssertEqual(embed.dtypeName, "F32")
    }

    func testTruncatedAndCorruptFilesAreClearErrors() throws {
        let url = dir.appendingPathComponent("bad.safetensors")
        func expectMalformed(_ bytes: Data, _ fragment: String, line: UInt = #line) {
            try? bytes.write(to: url)
            XCTAssertThrowsError(try SafetensorsFile(path: url.path), line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", line: line)
                XCTAssertTrue("\(error)".contains(url.path), "\(error)", line: line)
            }
        }
        expectMalformed(Data([1, 2, 3]), "shorter than the 8-byte header")
        var huge = UInt64(1 << 40).littleEndian
        expectMalformed(Data(bytes: &huge, count: 8) + Data("{}".utf8), "does not fit")
        func file(_ header: String, dataBytes: Int) -> Data {
            var len = UInt64(header.utf8.count).littleEndian
            return Data(bytes: &len, count: 8) + Data(header.utf8) + Data(count: dataBytes)
        }
        expectMalformed(file("not json", dataBytes: 0), "not valid JSON")
        expectMalformed(file(#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, dataBytes: 8), "point past")
        expectMalformed(file(#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}"#, dataBytes: 16), "needs 12 bytes")
        expectMalformed(file(#"{"w":{"dtype":"F32","shape":[4]}}"#, dataBytes: 16), "lacks")
        expectMalformed(file(#"{"w":{"dtype":"Q9","shape":[4],"data_offsets":[0,16]}}"#, dataBytes: 16), "unknown dtype")
        // A real file cut short: its offsets now point past the end.
        let good = try Data(contentsOf: modelFixture("tiny-qwen2").appendingPathComponent("model.safetensors"))
        expectMalformed(good.prefix(good.count / 2), "point past")
    }

    func testModelDirectoryErrors() throws {
        XCTAssertThrowsError(try ModelDirectory(url: dir.appendingPathComponent("nope"))) { error in
            XCTAssertTrue("\(error)".contains("model directory not found"), "\(error)")
        }
        XCTAssertThrowsError(try ModelDirectory(url: dir)) { error in
            XCTAssertTrue("\(error)".contains("config.json"), "\(error)")
        }
        try Data("{}".utf8).write(to: dir.appendingPathComponent("config.json"))
        XCTAssertThrowsError(try ModelDirectory(url: dir)) { error in
            XCTAssertTrue("\(error)".contains("model weights"), "\(error)")
        }
        try Data(#"{"weight_map":{"a":"missing-shard.safetensors"}}"#.utf8)
            .write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        XCTAssertThrowsError(try ModelDirectory(url: dir)) { error in
            XCTAssertTrue("\(error)".contains("missing-shard.safetensors"), "\(error)")
        }
    }

    func testShardedDirectoryFindsEveryTensor() throws {
        let sharded = try ModelDirectory(url: modelFixture("tiny-qwen2-bf16-sharded"))
        let single = try ModelDirectory(url: modelFixture("tiny-qwen2"))
        XCTAssertGreaterThan(Set(sharded.weightMap.values).count, 1)
        // The tied checkpoint has no lm_head; everything else matches the single-file copy.
        XCTAssertEqual(Set(sharded.tensorNames), Set(single.tensorNames))
        XCTAssertEqual(try sharded.tensor("model.norm.weight").dtypeName, "BF16")
        XCTAssertThrowsError(try sharded.tensor("nope")) { error in
            XCTAssertTrue("\(error)".contains("'nope' is missing"), "\(error)")
        }
    }

    func testAtomicWriteKeepsOldFileOnFailure() throws {
        let url = dir.appendingPathComponent("keep.bin")
        try AtomicFile.write(Data("old".utf8), to: url)
        try AtomicFile.write(Data("new".utf8), to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "new")
        let target = dir.appendingPathComponent("out")
        try AtomicFile.writeDirectory(target) { tmp in try Data("1".utf8).write(to: tmp.appendingPathComponent("a")) }
        struct Boom: Error {}
        XCTAssertThrowsError(try AtomicFile.writeDirectory(target) { tmp in
            try Data("2".utf8).write(to: tmp.appendingPathComponent("a"))
            throw Boom()
        })
        XCTAssertEqual(try String(contentsOf: target.appendingPathComponent("a"), encoding: .utf8), "1")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [])
    }
}

import CKernels
import GGUF
import Foundation
import Kernels
import ModelIO
import TestSupport
import XCTest

/// `peft quantize --type` against llama.cpp's own `llama_model_quantize` (scripts/make_mix_fixtures.py): the format of
/// every tensor for every file type on ten model shapes (QuantMix, no weights needed), and on one small Qwen2 model
/// with whole super-blocks the exported file's `general.file_type` and every matrix's type and bytes.
final class GGUFMixTests: XCTestCase {
    func testTypesMatchLlamaCpp() throws {
        let data = try Data(contentsOf: fixtureURL("gguf/mix/types.json"))
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        let models = try XCTUnwrap(root["models"] as? [[String: Any]])
        XCTAssertEqual(models.count, 10)
        for m in models {
            let name = try XCTUnwrap(m["name"] as? String)
            let model = QuantMix.Model(architecture: try XCTUnwrap(m["architecture"] as? String),
                                       layerCount: try XCTUnwrap(m["layers"] as? Int), headCount: try XCTUnwrap(m["heads"] as? Int),
                                       kvHeadCount: try XCTUnwrap(m["kv_heads"] as? Int), tiedEmbeddings: try XCTUnwrap(m["tied"] as? Bool))
            let tensors = try XCTUnwrap(m["tensors"] as? [[Any]]).map { ($0[0] as! String, $0[1] as! [Int]) }
            let runs = try XCTUnwrap(m["types"] as? [String: Any])
            XCTAssertEqual(Set(runs.keys), Set(GGUFExporter.OutputType.allCases.map(\.rawValue)), name)
            for (kind, value) in runs {
                let type = try XCTUnwrap(GGUFExporter.OutputType(rawValue: kind), kind)
                let theirs = try XCTUnwrap(value as? String, "llama.cpp refused \(name) as \(kind)").split(separator: " ").map(String.init)
                XCTAssertEqual(theirs.count, tensors.count)
                var wrong: [String] = []
                for ((tensor, shape), want) in zip(tensors, theirs) {
                    let ours = QuantMix.choose(tensor: tensor, shape: shape, fileType: type, model: model).type
                    if "\(ours)" != want { wrong.append("\(tensor) \(shape): \(ours), llama.cpp \(want)") }
                }
                XCTAssertEqual(wrong.count, 0, "\(name) \(kind): \(wrong.prefix(5).joined(separator: "; "))")
            }
        }
    }

    /// The fixture's weights (make_mix_fixtures.py `weights`): element i of tensor number `seed` from a splitmix64
    /// hash, exact in f32.
    static func weights(_ name: String, shape: [Int], seed: Int) -> [Float] {
        let cols = shape[shape.count - 1]
        let salt = UInt64(seed + 1) &* 0xD1B54A32D192ED03
        return (0..<shape.reduce(1, *)).map { i in
            var z = UInt64(i) &* 0x9E3779B97F4A7C15 &+ salt
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            z ^= z >> 31
            var v = Int64(z & 0xFFFF) + Int64((z >> 16) & 0xFFFF) + Int64((z >> 32) & 0xFFFF) + Int64(z >> 48) - 131070
            if z >> 58 == 0 { v *= 16 }
            let row = i / cols
            if name.hasSuffix("norm.weight") { return 1 + Float(v) * 0x1p-20 }
            if shape.count == 2, row % 29 == 11 { return 0 }
            return Float(v) * Float(sign: .plus, exponent: -(20 + row % 4), significand: 1)
        }
    }

    static func sha256(_ bytes: UnsafeRawPointer, count: Int) -> String {
        var state = pk_sha256()
        pk_sha256_init(&state)
        pk_sha256_update(&state, bytes.assumingMemoryBound(to: UInt8.self), count)
        var digest = [UInt8](repeating: 0, count: 32)
        pk_sha256_final(&state, &digest)
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    struct Bytes: Decodable {
        let shape: [String: Int]
        let file_types: [String: UInt32]
        let tensors: [String]
        let runs: [String: [String]]
    }

    func testBytesMatchLlamaCpp() throws {
        let golden = try JSONDecoder().decode(Bytes.self, from: Data(contentsOf: fixtureURL("gguf/mix/bytes.json")))
        let dir = temporaryURL("mix-model")
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeHashedQwen2(shape: golden.shape, dtype: .float32, to: dir) { Self.weights($0, shape: $1, seed: $2) }
        XCTAssertEqual(Set(golden.runs.keys), Set(GGUFExporter.OutputType.allCases.map(\.rawValue)))
        for (kind, theirs) in golden.runs.sorted(by: { $0.key < $1.key }) {
            let type = try XCTUnwrap(GGUFExporter.OutputType(rawValue: kind))
            XCTAssertEqual(type.fileType, golden.file_types[kind], "\(kind) general.file_type")
            let url = temporaryURL("mix-\(kind)").appendingPathExtension("gguf")
            defer { try? FileManager.default.removeItem(at: url) }
            let report: GGUFExporter.Report
            do {
                report = try GGUFExporter.export(model: dir, adapter: nil, type: type, output: url)
            } catch {
                XCTFail("\(kind): \(error)")
                continue
            }
            XCTAssertEqual(report.fallbacks, [], kind)
            let file = try GGUFFile(path: url.path)
            XCTAssertEqual(file.metadata["general.file_type"]?.integer, Int(golden.file_types[kind]!), kind)
            XCTAssertEqual(theirs.count, golden.tensors.count)
            var wrongType: [String] = [], wrongBytes: [String] = []
            for (name, want) in zip(golden.tensors, theirs) {
                let parts = want.split(separator: " ").map(String.init)
                let info = try XCTUnwrap(file.tensors[name], "\(kind) \(name)")
                if "\(info.type)" != parts[0] {
                    wrongType.append("\(name): \(info.type), llama.cpp \(parts[0])")
                } else if Self.sha256(info.data, count: info.byteCount) != parts[1] {
                    wrongBytes.append(name)
                }
            }
            XCTAssertEqual(wrongType.count, 0, "\(kind) types: \(wrongType.prefix(5).joined(separator: "; "))")
            XCTAssertEqual(wrongBytes.count, 0, "\(kind) bytes differ in \(wrongBytes.count) of \(theirs.count) matrices: \(wrongBytes.prefix(5).joined(separator: ", "))")
        }
    }
}

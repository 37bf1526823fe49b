import GGUF
import Foundation
import Kernels
import ModelIO
import TestSupport
import Transformer
import XCTest

/// `peft quantize`'s GGUF files as the `gguf` package reads them (scripts/make_gguf_fixtures.py): every metadata
/// field, every tensor's name, type and shape, and the dequantized values of three tensors.
final class GGUFExportTests: XCTestCase {
    struct Golden: Decodable {
        struct Tensor: Decodable { let name: String; let type: UInt32; let shape: [Int] }
        let fields: [String: JSONAny]
        let tensors: [Tensor]
        let values: [String: [Float]]
    }

    /// A JSON value of any kind, for comparing metadata.
    enum JSONAny: Decodable, Equatable {
        case string(String), number(Double), bool(Bool), array([JSONAny])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) }
            else if let n = try? c.decode(Double.self) { self = .number(n) }
            else if let s = try? c.decode(String.self) { self = .string(s) }
            else { self = .array(try c.decode([JSONAny].self)) }
        }

        init?(_ v: GGUFValue) {
            switch v {
            case .string(let s): self = .string(s)
            case .bool(let b): self = .bool(b)
            case .array(_, let items): self = .array(items.compactMap(JSONAny.init))
            default:
                guard let n = v.number else { return nil }
                self = .number(n)
            }
        }
    }

    func testExportedFilesReadAsTheGGUFPackageReadsThem() throws {
        for (kind, type) in [("q8_0", GGUFExporter.OutputType.q8_0), ("q4_0", .q4_0), ("f16", .f16)] {
            let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("gguf/\(kind).json")))
            let url = temporaryURL("export").appendingPathExtension("gguf")
            defer { try? FileManager.default.removeItem(at: url) }
            _ = try GGUFExporter.export(model: modelFixture("tiny-qwen2"), adapter: nil, type: type, output: url)
            let file = try GGUFFile(path: url.path)
            XCTAssertEqual(Set(file.keys), Set(golden.fields.keys), kind)
            for (key, want) in golden.fields {
                let ours = try XCTUnwrap(file.metadata[key].flatMap(JSONAny.init), key)
                if case .number(let a) = ours, case .number(let b) = want {
                    XCTAssertEqual(a, b, accuracy: abs(b) * 1e-7, "\(kind) \(key)")
                } else {
                    XCTAssertEqual(ours, want, "\(kind) \(key)")
                }
            }
            XCTAssertEqual(file.tensorNames, golden.tensors.map(\.name), kind)
            for t in golden.tensors {
                let info = try XCTUnwrap(file.tensors[t.name])
                XCTAssertEqual(info.type.rawValue, t.type, "\(kind) \(t.name)")
                XCTAssertEqual(info.dims, t.shape, "\(kind) \(t.name)")
            }
            for (name, want) in golden.values {
                let info = try XCTUnwrap(file.tensors[name])
                var ours = [Float](repeating: 0, count: info.elementCount)
                ours.withUnsafeMutableBufferPointer { info.floats(into: $0.baseAddress!) }
                XCTAssertEqual(ours, want, "\(kind) \(name)")
            }
        }
    }

    /// Families llama.cpp would run differently are refused with the reason, before anything is written.
    func testExportsThatWouldChangeAnswersAreRefused() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("refused-\(UUID().uuidString).gguf")
        for (name, fragment) in [("tiny-qwen2-moe", "mlp_only_layers"), ("tiny-gemma2", "query_pre_attn_scalar"), ("tiny-baichuan2", "only to 32-layer"), ("tiny-olmoe", "key/value heads equal")] {
            XCTAssertThrowsError(try GGUFExporter.export(model: modelFixture(name), adapter: nil, type: .q8_0, output: out)) {
                XCTAssertTrue("\($0)".contains(fragment), "\(name): \($0)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), name)
        }
    }
}

/// `peft quantize --type q4_k_m` against llama.cpp's own Q4_K_M (scripts/make_q4km_fixture.py): on a small model with
/// whole q4_k super-blocks, the same format for every tensor (q6_k for the LM head and for attn_v / ffn_down in
/// layers 0, 3, 6, 7 of 8) and the same bytes.
final class QuantizeMixtureTests: XCTestCase {
    struct Golden: Decodable {
        struct Tensor: Decodable { let name: String; let type: UInt32; let fnv1a: String }
        let shape: [String: Int]
        let tensors: [Tensor]
    }

    /// The fixture's weights: ((h mod 4096) - 2048) / 65536 with h = (i * 2654435761 + 40503 * seed) mod 2^32.
    static func hashed(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { i in
            let h = (UInt64(i) &* 2654435761 &+ UInt64(40503 * seed)) % (1 << 32)
            return Float(Int(h % 4096) - 2048) / 65536
        }
    }

    static func fnv1a(_ bytes: UnsafeRawBufferPointer) -> String {
        var h: UInt64 = 0xcbf29ce484222325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100000001b3 }
        return String(format: "%016llx", h)
    }

    func testQ4KMMatchesLlamaCpp() throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("gguf/q4_k_m.json")))
        let vocab = golden.shape["vocab"]!
        let dir = temporaryURL("q4km-model")
        defer { try? FileManager.default.removeItem(at: dir) }
        try writeHashedQwen2(shape: golden.shape, dtype: .float16, to: dir) { _, shape, seed in Self.hashed(shape.reduce(1, *), seed: seed) }
        let url = temporaryURL("q4km").appendingPathExtension("gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        _ = try GGUFExporter.export(model: dir, adapter: nil, type: .q4_k_m, output: url)
        let file = try GGUFFile(path: url.path)
        XCTAssertEqual(file.metadata["general.file_type"]?.integer, 15)
        XCTAssertEqual(Set(file.tensorNames), Set(golden.tensors.map(\.name)))
        for t in golden.tensors {
            let info = try XCTUnwrap(file.tensors[t.name], t.name)
            XCTAssertEqual(info.type.rawValue, t.type, t.name)
            let bytes = UnsafeRawBufferPointer(start: info.data, count: info.byteCount)
            XCTAssertEqual(Self.fnv1a(bytes), t.fnv1a, "\(t.name) bytes")
        }
        // The mixed file runs: decoding (8-bit activations against q4_k and q6_k blocks) agrees with the exact f32
        // products on the same blocks, and both with the unquantized model to the 4-bit rounding.
        let model = try GGUFModel(path: url.path).transformer(dtype: .float32)
        XCTAssertEqual(model.weights.lmHead.quantType, .q6_k)
        let prompt: [Int32] = [301, 17, 42, 99, 3, 302, 198, 301]
        let exact = model.logits(PackedBatch(sequences: [prompt]))
        let last = Array(exact[((prompt.count - 1) * vocab)..<(prompt.count * vocab)])
        let decoded = try DecodeSession(model: model, capacity: 32).append(prompt)
        let scale = last.map(abs).max()!
        assertClose(decoded, last, atol: 0.02 * scale, "decode vs exact")
        let reference = try TransformerModel.load(directory: dir, dtype: .float32).logits(PackedBatch(sequences: [prompt]))
        assertClose(last, Array(reference[((prompt.count - 1) * vocab)..<(prompt.count * vocab)]), atol: 0.1 * scale, "q4_k_m vs f16")
    }
}

import GGUF
import Foundation
import Kernels
import ModelIO
import TestSupport
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
                let n = info.elementCount
                ours.withUnsafeMutableBufferPointer { out in
                    let raw = info.data.assumingMemoryBound(to: UInt8.self)
                    switch info.type {
                    case .q8_0: QuantType.q8_0.dequantize(raw, count: n, into: out.baseAddress!)
                    case .q4_0: QuantType.q4_0.dequantize(raw, count: n, into: out.baseAddress!)
                    case .q4_k: QuantType.q4_k.dequantize(raw, count: n, into: out.baseAddress!)
                    case .f16: Convert.toFloat(info.data, dtype: .float16, into: out.baseAddress!, count: n)
                    case .bf16: Convert.toFloat(info.data, dtype: .bfloat16, into: out.baseAddress!, count: n)
                    case .f32: Convert.toFloat(info.data, dtype: .float32, into: out.baseAddress!, count: n)
                    }
                }
                XCTAssertEqual(ours, want, "\(kind) \(name)")
            }
        }
    }
}

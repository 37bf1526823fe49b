import Foundation
import Kernels

/// Writes a safetensors file tensor by tensor, so a multi-gigabyte shard never sits in memory at once.
/// The header is computed first from names, dtypes and shapes; each tensor's bytes are produced on demand.
/// Written to a temporary name and renamed into place.
public struct SafetensorsStreamWriter {
    public struct Entry {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }

        public init(name: String, dtype: DType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
    }

    /// Writes `entries` (in sorted-name order) to `url`; `produce` fills each tensor's bytes.
    public static func write(_ entries: [Entry], to url: URL, metadata: [String: String] = ["format": "pt"],
                             produce: (Entry, UnsafeMutableRawBufferPointer) throws -> Void) throws {
        let sorted = entries.sorted { $0.name < $1.name }
        var parts: [String] = []
        if !metadata.isEmpty {
            let meta = metadata.keys.sorted().map { "\(jsonQuote($0)):\(jsonQuote(metadata[$0]!))" }.joined(separator: ",")
            parts.append("\"__metadata__\":{\(meta)}")
        }
        var offset = 0
        for e in sorted {
            parts.append("\(jsonQuote(e.name)):{\"dtype\":\"\(e.dtype.safetensorsName)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + e.byteCount)]}")
            offset += e.byteCount
        }
        var header = "{" + parts.joined(separator: ",") + "}"
        while header.utf8.count % 8 != 0 { header += " " }
        try AtomicFile.stream(to: url) { handle in
            var length = UInt64(header.utf8.count).littleEndian
            try handle.write(contentsOf: Data(bytes: &length, count: 8))
            try handle.write(contentsOf: Data(header.utf8))
            for e in sorted {
                var data = Data(count: e.byteCount)
                try data.withUnsafeMutableBytes { try produce(e, $0) }
                try handle.write(contentsOf: data)
            }
        }
    }

    static func jsonQuote(_ s: String) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: [s])) ?? Data("[\"\"]".utf8)
        let text = String(decoding: data, as: UTF8.self)
        return String(text.dropFirst().dropLast())
    }
}

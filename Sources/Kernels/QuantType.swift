import CKernels

/// GGML's block-quantized weight formats, bit for bit (llama.cpp and Ollama read them):
/// - `q8_0`: blocks of 32 int8 with one f16 scale (8.5 bits per weight);
/// - `q4_0`: blocks of 32 4-bit values with one f16 scale, offset 8 (4.5 bits);
/// - `q4_k`: super-blocks of 256 in 8 sub-blocks of 32, each with a 6-bit scale and min under two f16 super-scales
///   (4.5 bits), the format at the heart of Q4_K_M;
/// - `q6_k`: super-blocks of 256 in 16 sub-blocks of 16 with int8 scales under one f16 scale (6.5625 bits), Q4_K_M's
///   choice for the LM head and some value and down projections.
/// - `q5_0`: blocks of 32 5-bit values with one f16 scale, offset 16 (5.5 bits), llama.cpp's stand-in for q4_k on
///   rows that are not whole super-blocks.
public enum QuantType: String, Sendable, CaseIterable, Codable {
    case q8_0, q4_0, q4_k, q6_k, q5_0

    var cType: Int32 {
        switch self {
        case .q8_0: Int32(PK_Q8_0)
        case .q4_0: Int32(PK_Q4_0)
        case .q4_k: Int32(PK_Q4_K)
        case .q6_k: Int32(PK_Q6_K)
        case .q5_0: Int32(PK_Q5_0)
        }
    }

    /// What llama.cpp stores instead when a row is not a whole number of this type's blocks: q5_0 for q4_k, q8_0 for
    /// q6_k (then f16 when even that does not fit).
    public var fallback: QuantType? {
        switch self {
        case .q4_k: .q5_0
        case .q6_k: .q8_0
        default: nil
        }
    }

    /// The format a [*, cols] matrix gets when `self` is asked for: self, its fallback, or nil.
    public func format(forColumns cols: Int) -> QuantType? {
        if cols % blockSize == 0 { return self }
        if let f = fallback, cols % f.blockSize == 0 { return f }
        return nil
    }

    /// GGML's type id (as in GGUF tensor infos).
    public var ggmlType: Int { Int(cType) }

    /// Weights per block.
    public var blockSize: Int { pk_quant_block_size(cType) }
    /// Bytes per block.
    public var blockBytes: Int { pk_quant_block_bytes(cType) }
    public var bitsPerWeight: Double { Double(blockBytes * 8) / Double(blockSize) }

    /// Bytes of a [rows, cols] matrix (cols a multiple of the block size).
    public func byteCount(rows: Int, cols: Int) -> Int { rows * cols / blockSize * blockBytes }

    /// Bytes of a [rows, cols] matrix in memory: groups of 8 rows (rows padded to a multiple of 8).
    public func packedByteCount(rows: Int, cols: Int) -> Int { pk_packed_bytes(cType, rows, cols) }

    /// Quantizes `count` values (a multiple of the block size) with GGML's reference rounding.
    public func quantize(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<UInt8>) {
        pk_quantize(cType, x, out, count / blockSize)
    }

    public func dequantize(_ blocks: UnsafePointer<UInt8>, count: Int, into out: UnsafeMutablePointer<Float>) {
        pk_dequantize(cType, blocks, out, count / blockSize)
    }
}

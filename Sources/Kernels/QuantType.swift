import CKernels

/// GGML's block-quantized weight formats, bit for bit (llama.cpp and Ollama read them). Blocks of 32 weights:
/// - `q8_0`: int8 with one f16 scale (8.5 bits per weight);
/// - `q4_0` / `q5_0`: 4- / 5-bit levels with one f16 scale, offset 8 / 16 (4.5 / 5.5 bits);
/// - `q4_1` / `q5_1`: 4- / 5-bit levels with an f16 scale and an f16 minimum (5 / 6 bits);
/// - `iq4_nl`: 4-bit indices into a fixed non-linear table of 16 levels, one f16 scale (4.5 bits).
/// Super-blocks of 256 weights (the k-quants):
/// - `q2_k`: 2-bit levels, 16 sub-blocks of 16 with 4-bit scales and mins under two f16 super-scales (2.625 bits);
/// - `q3_k`: 3-bit levels, 16 sub-blocks of 16 with 6-bit scales under one f16 scale (3.4375 bits);
/// - `q4_k` / `q5_k`: 4- / 5-bit levels, 8 sub-blocks of 32 with 6-bit scales and mins under two f16 super-scales
///   (4.5 / 5.5 bits), the formats at the heart of Q4_K_M and Q5_K_M;
/// - `q6_k`: 6-bit levels, 16 sub-blocks of 16 with int8 scales under one f16 scale (6.5625 bits);
/// - `iq4_xs`: `iq4_nl`'s table, 8 sub-blocks of 32 with 6-bit scales under one f16 scale (4.25 bits).
public enum QuantType: String, Sendable, CaseIterable, Codable {
    case q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs

    var cType: Int32 {
        switch self {
        case .q8_0: Int32(PK_Q8_0)
        case .q4_0: Int32(PK_Q4_0)
        case .q4_1: Int32(PK_Q4_1)
        case .q5_0: Int32(PK_Q5_0)
        case .q5_1: Int32(PK_Q5_1)
        case .q2_k: Int32(PK_Q2_K)
        case .q3_k: Int32(PK_Q3_K)
        case .q4_k: Int32(PK_Q4_K)
        case .q5_k: Int32(PK_Q5_K)
        case .q6_k: Int32(PK_Q6_K)
        case .iq4_nl: Int32(PK_IQ4_NL)
        case .iq4_xs: Int32(PK_IQ4_XS)
        }
    }

    /// What llama.cpp stores instead when a row is not a whole number of this type's 256-weight super-blocks:
    /// q4_0 for q2_k and q3_k, iq4_nl for iq4_xs, q5_0 for q4_k, q5_1 for q5_k, q8_0 for q6_k (f16 when even that
    /// does not fit).
    public var fallback: QuantType? {
        switch self {
        case .q2_k, .q3_k: .q4_0
        case .iq4_xs: .iq4_nl
        case .q4_k: .q5_0
        case .q5_k: .q5_1
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

    /// Quantizes as llama.cpp's `llama_model_quantize` does without an importance matrix: `quantize`, except for
    /// iq4_nl, whose file quantizer searches 7 scales each way where the reference row quantizer searches none.
    public func quantizeForFile(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<UInt8>) {
        pk_quantize_for_file(cType, x, out, count / blockSize)
    }

    public func dequantize(_ blocks: UnsafePointer<UInt8>, count: Int, into out: UnsafeMutablePointer<Float>) {
        pk_dequantize(cType, blocks, out, count / blockSize)
    }
}

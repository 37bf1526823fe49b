import CKernels

/// Element types of stored tensors. Compute is always f32 accumulation; these describe storage.
public enum DType: String, Sendable, Codable, CaseIterable {
    case float32, bfloat16, float16

    public var byteSize: Int { self == .float32 ? 4 : 2 }

    /// The safetensors spelling (`F32`, `BF16`, `F16`).
    public var safetensorsName: String {
        switch self {
        case .float32: "F32"
        case .bfloat16: "BF16"
        case .float16: "F16"
        }
    }

    /// The `torch_dtype` / `dtype` spelling used in Hugging Face configs.
    public var torchName: String { self.rawValue }

    public init?(safetensorsName: String) {
        switch safetensorsName {
        case "F32": self = .float32
        case "BF16": self = .bfloat16
        case "F16": self = .float16
        default: return nil
        }
    }
}

/// Conversions between f32 and the 16-bit storage types (round to nearest even).
public enum Convert {
    public static func toFloat(_ src: UnsafeRawPointer, dtype: DType, into dst: UnsafeMutablePointer<Float>, count: Int) {
        switch dtype {
        case .float32: dst.update(from: src.assumingMemoryBound(to: Float.self), count: count)
        case .bfloat16: pk_bf16_to_f32(src.assumingMemoryBound(to: UInt16.self), dst, count)
        case .float16: pk_f16_to_f32(src.assumingMemoryBound(to: UInt16.self), dst, count)
        }
    }

    public static func fromFloat(_ src: UnsafePointer<Float>, dtype: DType, into dst: UnsafeMutableRawPointer, count: Int) {
        switch dtype {
        case .float32: dst.assumingMemoryBound(to: Float.self).update(from: src, count: count)
        case .bfloat16: pk_f32_to_bf16(src, dst.assumingMemoryBound(to: UInt16.self), count)
        case .float16: pk_f32_to_f16(src, dst.assumingMemoryBound(to: UInt16.self), count)
        }
    }

    public static func bf16(_ value: Float) -> UInt16 {
        var v = value
        var out: UInt16 = 0
        pk_f32_to_bf16(&v, &out, 1)
        return out
    }

    public static func float(bf16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }
}

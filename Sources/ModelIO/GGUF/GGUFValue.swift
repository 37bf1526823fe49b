import Foundation

/// A GGUF metadata value (format version 3): the scalar types, strings and arrays of them.
public enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32)
    case uint64(UInt64), int64(Int64), float32(Float), float64(Double), bool(Bool), string(String)
    /// An array of one element type (`GGUFValue.typeID` of its elements); an empty array keeps its type.
    case array(elementType: UInt32, [GGUFValue])

    /// The type ids of the format.
    public static let uint8ID: UInt32 = 0, int8ID: UInt32 = 1, uint16ID: UInt32 = 2, int16ID: UInt32 = 3
    public static let uint32ID: UInt32 = 4, int32ID: UInt32 = 5, float32ID: UInt32 = 6, boolID: UInt32 = 7
    public static let stringID: UInt32 = 8, arrayID: UInt32 = 9, uint64ID: UInt32 = 10, int64ID: UInt32 = 11
    public static let float64ID: UInt32 = 12

    public var typeID: UInt32 {
        switch self {
        case .uint8: Self.uint8ID
        case .int8: Self.int8ID
        case .uint16: Self.uint16ID
        case .int16: Self.int16ID
        case .uint32: Self.uint32ID
        case .int32: Self.int32ID
        case .uint64: Self.uint64ID
        case .int64: Self.int64ID
        case .float32: Self.float32ID
        case .float64: Self.float64ID
        case .bool: Self.boolID
        case .string: Self.stringID
        case .array: Self.arrayID
        }
    }

    public static func strings(_ values: [String]) -> GGUFValue { .array(elementType: stringID, values.map { .string($0) }) }
    public static func int32s(_ values: [Int32]) -> GGUFValue { .array(elementType: int32ID, values.map { .int32($0) }) }

    /// Integer value of any integer (or bool) scalar.
    public var integer: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        case .bool(let v): v ? 1 : 0
        default: nil
        }
    }

    public var number: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: integer.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }

    public var array: [GGUFValue]? { if case .array(_, let a) = self { return a }; return nil }
}

/// GGML tensor types GGUF files name (the ones this engine reads or writes).
public enum GGMLType: UInt32, Sendable, CaseIterable {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q2_k = 10, q3_k = 11, q4_k = 12, q5_k = 13
    case q6_k = 14, iq4_nl = 20, iq4_xs = 23, bf16 = 30

    /// (elements per block, bytes per block).
    public var block: (size: Int, bytes: Int) {
        switch self {
        case .f32: (1, 4)
        case .f16, .bf16: (1, 2)
        case .q4_0: (32, 18)
        case .q4_1: (32, 20)
        case .q5_0: (32, 22)
        case .q5_1: (32, 24)
        case .q8_0: (32, 34)
        case .iq4_nl: (32, 18)
        case .q2_k: (256, 84)
        case .q3_k: (256, 110)
        case .q4_k: (256, 144)
        case .q5_k: (256, 176)
        case .q6_k: (256, 210)
        case .iq4_xs: (256, 136)
        }
    }

    /// llama.cpp's names of the GGML types we do not read, for error messages.
    static let otherNames: [UInt32: String] = [
        9: "q8_1", 15: "q8_k", 16: "iq2_xxs", 17: "iq2_xs", 18: "iq3_xxs", 19: "iq1_s", 21: "iq3_s", 22: "iq2_s",
        24: "i8", 25: "i16", 26: "i32", 27: "i64", 28: "f64", 29: "iq1_m", 34: "tq1_0", 35: "tq2_0", 39: "mxfp4",
    ]
}

/// Errors reading or writing model files. Each says which file and what to do.
public enum ModelIOError: Error, CustomStringConvertible, Equatable {
    case notFound(path: String, what: String)
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)
    case missingTensor(name: String, searched: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    case writeFailed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .notFound(path, what):
            return "\(what) not found: \(path)"
        case let .unreadable(path, reason):
            return "cannot read \(path): \(reason)"
        case let .malformed(path, reason):
            return "\(path) is not a valid file: \(reason)"
        case let .missingTensor(name, searched):
            return "tensor '\(name)' is missing (searched \(searched))"
        case let .unsupportedDType(path, tensor, dtype):
            return "tensor '\(tensor)' in \(path) has dtype \(dtype); supported: F32, BF16, F16"
        case let .shapeMismatch(tensor, expected, found):
            return "tensor '\(tensor)' has shape \(found), expected \(expected)"
        case let .writeFailed(path, reason):
            return "cannot write \(path): \(reason)"
        }
    }
}

/// Errors about adapter configs and weights. Every message names the file or module and what would fix it.
public enum AdapterError: Error, CustomStringConvertible {
    case config(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case noTargets(requested: [String], available: [String])
    case mismatches(path: String, problems: [String])
    case io(path: String, reason: String)

    public var description: String {
        switch self {
        case let .config(path, reason): return "\(path): \(reason)"
        case let .unsupported(path, reason): return "\(path): \(reason)"
        case let .noTargets(requested, available):
            return "target modules \(requested) match no projection of this model; available: \(available.joined(separator: ", ")) (or all-linear)"
        case let .mismatches(path, problems):
            return "adapter \(path) does not fit this model (\(problems.count) problem\(problems.count == 1 ? "" : "s")):\n  " + problems.joined(separator: "\n  ")
        case let .io(path, reason): return "\(path): \(reason)"
        }
    }
}

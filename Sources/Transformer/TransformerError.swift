/// Errors about model configuration and weights. Each names the file or field and what to do.
public enum TransformerError: Error, CustomStringConvertible {
    case config(path: String, reason: String)
    case unsupported(path: String, reason: String)
    case weights(reason: String)
    case input(reason: String)

    public var description: String {
        switch self {
        case let .config(path, reason): "\(path): \(reason)"
        case let .unsupported(path, reason): "\(path): \(reason)"
        case let .weights(reason): reason
        case let .input(reason): reason
        }
    }
}

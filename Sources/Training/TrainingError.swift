/// Errors of data loading and training. Data errors name the file, the record (1-based) and the field.
public enum TrainingError: Error, CustomStringConvertible {
    case data(file: String, record: Int?, field: String?, reason: String)
    case options(String)
    case resume(path: String, reason: String)
    case io(path: String, reason: String)
    /// The loss of a step came out NaN or infinite: training stops before the update, the last checkpoint intact.
    case nonFinite(step: Int, loss: Double)

    public var description: String {
        switch self {
        case let .data(file, record, field, reason):
            var where_ = file
            if let record { where_ += ", record \(record)" }
            if let field { where_ += ", field '\(field)'" }
            return "\(where_): \(reason)"
        case let .options(reason): return reason
        case let .resume(path, reason): return "cannot resume from \(path): \(reason)"
        case let .io(path, reason): return "\(path): \(reason)"
        case let .nonFinite(step, loss):
            return "step \(step): the loss is \(loss), not a finite number; stopped before updating the weights (try a lower --learning-rate, --max-grad-norm, or float32)"
        }
    }
}

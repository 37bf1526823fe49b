/// A JSON document as read by `JSONParser`. Objects keep their keys in file order, which matters for
/// `model.vocab` and `added_tokens`, and avoids hashing 150k Unicode keys the tokenizer never looks up by name.
enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// A short name of the value's kind, for error messages ("expected a string, found number").
    var kindName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// The members of a JSON object in file order.
struct JSONObject: Sendable {
    var keys: [String] = []
    var values: [JSONValue] = []

    /// The value of the first member named `key` (linear search: objects that are looked up by name are small).
    subscript(key: String) -> JSONValue? {
        guard let index = keys.firstIndex(where: { $0.utf8.elementsEqual(key.utf8) }) else { return nil }
        return values[index]
    }
}

/// A JSON value together with the file and the field path it came from, so that every type or
/// presence check can throw an error that says exactly where the problem is.
/// ```swift
/// let root = JSONField(value: try JSONParser.parse(data, file: "tokenizer.json"), file: "tokenizer.json")
/// let type = try root.required("model").required("type").string()   // error names "model.type"
/// ```
struct JSONField {
    let value: JSONValue
    let file: String
    let path: String

    init(value: JSONValue, file: String, path: String = "") {
        self.value = value
        self.file = file
        self.path = path
    }

    /// The member `key`, which must exist (it may be `null`).
    func required(_ key: String) throws -> JSONField {
        guard let member = try object()[key] else {
            throw TokenizerError.missingField(file: file, field: childPath(key))
        }
        return JSONField(value: member, file: file, path: childPath(key))
    }

    /// The member `key`, or nil when it is absent or `null`.
    func optional(_ key: String) throws -> JSONField? {
        guard let member = try object()[key] else { return nil }
        if case .null = member { return nil }
        return JSONField(value: member, file: file, path: childPath(key))
    }

    func object() throws -> JSONObject {
        guard case .object(let object) = value else { throw mismatch("an object") }
        return object
    }

    func array() throws -> [JSONField] {
        try arrayValues().enumerated().map { JSONField(value: $1, file: file, path: "\(path)[\($0)]") }
    }

    /// The raw items of an array, for large arrays whose items need no path unless one is bad.
    func arrayValues() throws -> [JSONValue] {
        guard case .array(let items) = value else { throw mismatch("an array") }
        return items
    }

    func string() throws -> String {
        guard case .string(let text) = value else { throw mismatch("a string") }
        return text
    }

    func bool() throws -> Bool {
        guard case .bool(let flag) = value else { throw mismatch("a boolean") }
        return flag
    }

    /// An integer; numbers beyond ±2^53 or with a fraction are rejected.
    func int() throws -> Int {
        guard case .number(let number) = value else { throw mismatch("an integer") }
        guard number.rounded() == number, abs(number) <= 9_007_199_254_740_992 else {
            throw TokenizerError.invalidField(file: file, field: path, reason: "\(number) is not an integer")
        }
        return Int(number)
    }

    /// A token id: an integer in 0...Int32.max.
    func tokenID() throws -> TokenID {
        let number = try int()
        guard let id = TokenID(exactly: number), id >= 0 else {
            throw TokenizerError.invalidField(file: file, field: path, reason: "token id \(number) is out of range")
        }
        return id
    }

    /// An error for an impossible value of this field.
    func invalid(_ reason: String) -> TokenizerError {
        .invalidField(file: file, field: path, reason: reason)
    }

    /// An error for a value of this field that is valid elsewhere but not supported here.
    func unsupported(_ value: String) -> TokenizerError {
        .unsupported(file: file, field: path, value: value)
    }

    private func mismatch(_ expected: String) -> TokenizerError {
        .invalidField(file: file, field: path.isEmpty ? "(root)" : path,
                      reason: "expected \(expected), found \(value.kindName)")
    }

    private func childPath(_ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }
}

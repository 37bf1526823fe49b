import Foundation

/// A request's JSON object with typed reads whose errors name the field (400 with OpenAI's `param`).
struct RequestBody {
    let object: [String: Any]

    init(_ data: Data) throws {
        guard !data.isEmpty else { throw APIError.badRequest("the request body is empty; send a JSON object") }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            throw APIError.badRequest("the request body is not valid JSON (\(Self.reason(error)))")
        }
        guard let object = parsed as? [String: Any] else { throw APIError.badRequest("the request body must be a JSON object") }
        self.object = object
    }

    private static func reason(_ error: Error) -> String {
        let ns = error as NSError
        return (ns.userInfo[NSDebugDescriptionErrorKey] as? String) ?? ns.localizedDescription
    }

    func has(_ key: String) -> Bool { object[key] != nil && !(object[key] is NSNull) }

    private func value(_ key: String) -> Any? {
        guard let v = object[key], !(v is NSNull) else { return nil }
        return v
    }

    private static func isBool(_ v: Any) -> Bool {
        // JSON true/false arrive as NSNumber's boolean subclass, whose type code is "c".
        guard let n = v as? NSNumber else { return false }
        return String(cString: n.objCType) == "c"
    }

    func string(_ key: String) throws -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v as? String else { throw APIError.badRequest("'\(key)' must be a string", param: key) }
        return s
    }

    func bool(_ key: String) throws -> Bool? {
        guard let v = value(key) else { return nil }
        guard Self.isBool(v), let b = v as? Bool else { throw APIError.badRequest("'\(key)' must be true or false", param: key) }
        return b
    }

    func int(_ key: String) throws -> Int? {
        guard let v = value(key) else { return nil }
        guard !Self.isBool(v), let n = v as? NSNumber, let i = Int(exactly: n.doubleValue), Double(i) == n.doubleValue else {
            throw APIError.badRequest("'\(key)' must be an integer", param: key)
        }
        return i
    }

    func number(_ key: String) throws -> Double? {
        guard let v = value(key) else { return nil }
        guard !Self.isBool(v), let n = v as? NSNumber, n.doubleValue.isFinite else {
            throw APIError.badRequest("'\(key)' must be a number", param: key)
        }
        return n.doubleValue
    }

    func object(_ key: String) throws -> [String: Any]? {
        guard let v = value(key) else { return nil }
        guard let o = v as? [String: Any] else { throw APIError.badRequest("'\(key)' must be an object", param: key) }
        return o
    }

    func array(_ key: String) throws -> [Any]? {
        guard let v = value(key) else { return nil }
        guard let a = v as? [Any] else { throw APIError.badRequest("'\(key)' must be an array", param: key) }
        return a
    }

    /// `stop`: a string or a list of at most 4 strings.
    func stopStrings() throws -> [String] {
        guard let v = value("stop") else { return [] }
        if let s = v as? String { return [s] }
        guard let a = v as? [Any], a.allSatisfy({ $0 is String }) else {
            throw APIError.badRequest("'stop' must be a string or a list of strings", param: "stop")
        }
        guard a.count <= 4 else { throw APIError.badRequest("'stop' takes at most 4 strings", param: "stop") }
        return a.compactMap { $0 as? String }
    }
}

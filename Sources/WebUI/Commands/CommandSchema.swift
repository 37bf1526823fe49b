import Foundation

/// The options of one `peft` subcommand as its own parser describes them (`--experimental-dump-help`), so the page's
/// forms always show every flag `peft <command> --help` lists, with its help and default, and the server builds
/// command lines only from names the command knows.
public struct CommandSchema: Sendable, Equatable {
    public struct Option: Sendable, Equatable {
        public var name: String
        /// A flag takes no value.
        public var isFlag: Bool
        public var isRepeating: Bool
        public var isOptional: Bool
        public var help: String
        public var defaultValue: String?
        public var choices: [String]?
        /// The methods this option belongs to, from its help's "lora, dora: ..." prefix (nil: every method).
        public var methods: [String]?
    }

    public var command: String
    public var abstract: String
    public var options: [Option]

    /// The training methods, in `peft train --method`'s order.
    public static let methods = ["lora", "dora", "ia3", "prompt", "ptuning", "prefix", "adapter", "full", "freeze"]

    /// Parses ArgumentParser's help dump of one command.
    public init(command: String, dump: Data) throws {
        guard let root = try JSONSerialization.jsonObject(with: dump) as? [String: Any],
              let body = root["command"] as? [String: Any] else {
            throw WebUIError.badRequest("peft \(command): unreadable option list")
        }
        self.command = command
        abstract = body["abstract"] as? String ?? ""
        options = (body["arguments"] as? [[String: Any]] ?? []).compactMap { a in
            guard a["shouldDisplay"] as? Bool ?? true,
                  let names = a["names"] as? [[String: Any]],
                  let long = names.first(where: { $0["kind"] as? String == "long" })?["name"] as? String,
                  long != "help" else { return nil }
            let help = a["abstract"] as? String ?? ""
            return Option(name: long, isFlag: a["kind"] as? String == "flag", isRepeating: a["isRepeating"] as? Bool ?? false,
                          isOptional: a["isOptional"] as? Bool ?? true, help: help, defaultValue: a["defaultValue"] as? String,
                          choices: a["allValues"] as? [String], methods: Self.methods(in: help))
        }
    }

    /// "lora, dora: rank" -> [lora, dora]; nil when the help does not start with method names.
    static func methods(in help: String) -> [String]? {
        guard let colon = help.firstIndex(of: ":") else { return nil }
        let names = help[..<colon].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard !names.isEmpty, names.allSatisfy({ Self.methods.contains($0) }) else { return nil }
        return names
    }

    /// The command line for `values` (option name -> string, number, bool or list), in the schema's order. Unknown
    /// names, a value for a flag or a list for a single option are refused with the option's name.
    public func arguments(_ values: [String: Any]) throws -> [String] {
        let known = Set(options.map(\.name))
        if let unknown = values.keys.sorted().first(where: { !known.contains($0) }) {
            throw WebUIError.badRequest("peft \(command) has no option --\(unknown)")
        }
        var out = [command]
        for option in options {
            guard let raw = values[option.name], !(raw is NSNull) else { continue }
            if option.isFlag {
                guard let on = raw as? Bool else { throw WebUIError.badRequest("--\(option.name) is a flag: send true or false") }
                if on { out.append("--\(option.name)") }
                continue
            }
            let list: [Any] = (raw as? [Any]) ?? [raw]
            if list.count > 1 && !option.isRepeating { throw WebUIError.badRequest("--\(option.name) takes one value") }
            for item in list {
                let text: String
                switch item {
                case let s as String: text = s
                case let n as NSNumber: text = n.stringValue
                default: throw WebUIError.badRequest("--\(option.name): expected a string or a number")
                }
                if text.isEmpty { continue }
                out += ["--\(option.name)", text]
            }
        }
        for option in options where !option.isOptional && !option.isFlag && !out.contains("--\(option.name)") {
            throw WebUIError.badRequest("peft \(command) needs --\(option.name)")
        }
        return out
    }

    /// The schema as the page reads it.
    public var json: [String: Any] {
        ["command": command, "abstract": abstract, "options": options.map { o -> [String: Any] in
            var d: [String: Any] = ["name": o.name, "flag": o.isFlag, "repeating": o.isRepeating, "optional": o.isOptional, "help": o.help]
            if let v = o.defaultValue { d["default"] = v }
            if let c = o.choices { d["choices"] = c }
            if let m = o.methods { d["methods"] = m }
            return d
        }]
    }
}

/// A shell-quoted command line, as the page's "Preview command" shows it.
public func shellLine(_ words: [String]) -> String {
    words.map { w in
        if !w.isEmpty, w.allSatisfy({ $0.isLetter || $0.isNumber || "-_./=:,@+%".contains($0) }) { return w }
        return "'" + w.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }.joined(separator: " ")
}

public enum WebUIError: Error, CustomStringConvertible, Equatable {
    case badRequest(String)
    case forbidden(String)
    case notFound(String)

    public var description: String {
        switch self {
        case .badRequest(let s), .forbidden(let s), .notFound(let s): s
        }
    }
}

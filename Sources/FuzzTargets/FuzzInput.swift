import Foundation

/// What every fuzz target shares: one scratch folder per process, inputs split into parts, files written for the
/// readers that take paths, and the repository's fixtures for targets that need a model.
public enum FuzzInput {
    /// A folder of this process's own, created once.
    public static let scratch: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("peft-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    /// The repository root (this file is Sources/FuzzTargets/FuzzInput.swift), or PEFT_ROOT.
    public static let repositoryRoot: URL = {
        if let root = ProcessInfo.processInfo.environment["PEFT_ROOT"] { return URL(fileURLWithPath: root) }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
    }()

    /// A fixture folder under Tests/Fixtures.
    public static func fixture(_ path: String) -> URL {
        repositoryRoot.appendingPathComponent("Tests/Fixtures").appendingPathComponent(path)
    }

    public static func data(_ start: UnsafeRawPointer, _ count: Int) -> Data { Data(bytes: start, count: count) }

    /// The input cut at each 0x00 byte into at most `parts` pieces (missing pieces are empty): one input carries a
    /// template and its messages, a config and its weights.
    public static func split(_ data: Data, parts: Int) -> [Data] {
        var out: [Data] = []
        var rest = data[...]
        while out.count < parts - 1, let zero = rest.firstIndex(of: 0) {
            out.append(Data(rest[..<zero]))
            rest = rest[(zero + 1)...]
        }
        out.append(Data(rest))
        while out.count < parts { out.append(Data()) }
        return out
    }

    /// Writes `data` to `name` in the scratch folder and hands over its URL.
    @discardableResult
    public static func file(_ data: Data, name: String) -> URL {
        let url = scratch.appendingPathComponent(name)
        try? data.write(to: url)
        return url
    }

    /// A fresh sub-folder of the scratch folder with the given files.
    public static func folder(_ name: String, files: [String: Data]) -> URL {
        let url = scratch.appendingPathComponent(name)
        try? FileManager.default.removeItem(at: url)
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (file, data) in files { try? data.write(to: url.appendingPathComponent(file)) }
        return url
    }

    /// Text from bytes, as a reader of a UTF-8 file would see it (invalid sequences replaced).
    public static func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }
}

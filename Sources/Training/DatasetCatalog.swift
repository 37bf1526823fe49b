import Foundation
import Tokenizer

/// The data sets a LLaMA-Factory data folder names in its `dataset_info.json`, each checked the way `peft train
/// --dataset NAME` would open it, so a broken entry is reported with its name and reason instead of vanishing.
public enum DatasetCatalog {
    public struct Entry: Sendable, Equatable {
        public var name: String
        /// The data file (`file_name`, relative to the folder), when the entry has one.
        public var file: String?
        public var formatting: String
        /// Preference pairs (`"ranking": true`).
        public var ranking: Bool
        /// Why `peft train --dataset NAME` would refuse this entry (nil: usable).
        public var problem: String?

        /// The entry as `peft preview --list --json` and the web UI give it.
        public var json: [String: Any] {
            var d: [String: Any] = ["name": name, "formatting": formatting, "ranking": ranking]
            if let file { d["file"] = file }
            if let problem { d["problem"] = problem }
            return d
        }
    }

    /// Every entry of `directory/dataset_info.json`, in the file's order of names (sorted). Throws, naming the file and
    /// the line and column, when the file is missing or is not a JSON object.
    public static func entries(in directory: URL) throws -> [Entry] {
        let info = directory.appendingPathComponent("dataset_info.json")
        guard let data = FileManager.default.contents(atPath: info.path) else {
            throw TrainingError.data(file: info.path, record: nil, field: nil,
                                     reason: "not found (a data folder holds LLaMA-Factory's dataset_info.json)")
        }
        let all = try object(data, path: info.path)
        return all.keys.sorted().map { name in
            let entry = all[name] as? [String: Any]
            let file = entry?["file_name"] as? String
            var problem: String?
            do {
                let resolved = try DatasetEntry(name: name, directory: directory)
                if !FileManager.default.fileExists(atPath: resolved.file.path) {
                    problem = "\(resolved.file.path): not found"
                }
            } catch {
                problem = "\(error)"
            }
            return Entry(name: name, file: file, formatting: (entry?["formatting"] as? String) ?? "alpaca",
                         ranking: (entry?["ranking"] as? Bool) ?? false, problem: problem)
        }
    }

    /// `data` as a JSON object; a syntax error names the file, line and column.
    static func object(_ data: Data, path: String) throws -> [String: Any] {
        // The parser's error names the file, the line and the column.
        do { try JSONParser.validate(data, file: path) } catch { throw TrainingError.options("\(error)") }
        guard let all = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TrainingError.data(file: path, record: nil, field: nil, reason: "not a JSON object of data set entries")
        }
        return all
    }
}

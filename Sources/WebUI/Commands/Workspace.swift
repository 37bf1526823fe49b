import Demo
import Foundation

/// The web UI's folder: the built-in demo model and data (written at first start), the jobs' records, and the default
/// homes of runs, evaluations, comparisons and exports. Files are served only from here and from the paths the user
/// typed into a job.
public final class Workspace: @unchecked Sendable {
    public let root: URL
    private let lock = NSLock()
    /// Paths typed into jobs (files and folders, resolved): these may be read back as well as the workdir.
    private var typed: Set<String> = []

    public init(root: URL) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: root, withIntermediateDirectories: true)
        self.root = root.resolvingSymlinksInPath().standardizedFileURL
    }

    public var demoModel: URL { root.appendingPathComponent("demo/base-model") }
    public var demoData: URL { root.appendingPathComponent("demo/data") }

    /// Writes the built-in tiny model and the demo data set unless they are there.
    public func seedDemo() throws {
        let fm = FileManager.default
        if !fm.fileExists(atPath: demoModel.appendingPathComponent("config.json").path) { try DemoModel.write(to: demoModel) }
        if !fm.fileExists(atPath: demoData.appendingPathComponent("train.jsonl").path) { try DemoData.write(to: demoData) }
    }

    /// A path the user typed, made absolute against the workdir (where jobs run).
    public func resolve(_ path: String) -> URL {
        let expanded = (path as NSString).expandingTildeInPath
        let url = expanded.hasPrefix("/") ? URL(fileURLWithPath: expanded) : root.appendingPathComponent(expanded)
        return url.standardizedFileURL
    }

    /// Remembers the paths of a job's options so their results may be shown.
    public func allow(_ paths: [String]) {
        lock.lock(); defer { lock.unlock() }
        for p in paths where !p.isEmpty { typed.insert(resolve(p).resolvingSymlinksInPath().path) }
    }

    /// The file at `path` if it lies in the workdir or in (or is) a path typed into a job; throws otherwise.
    public func readable(_ path: String) throws -> URL {
        let url = resolve(path).resolvingSymlinksInPath()
        let p = url.path
        lock.lock()
        let roots = [root.path] + Array(typed)
        lock.unlock()
        guard roots.contains(where: { p == $0 || p.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }) else {
            throw WebUIError.forbidden("\(path) is outside the workdir and the paths given to jobs")
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw WebUIError.notFound("\(path): no such file")
        }
        return url
    }

    /// Every folder under the workdir down to `maxDepth` levels (hidden ones, checkpoint-N and the root's jobs/ left
    /// out), with its files and the names of its entries, in name order.
    private func forEachFolder(maxDepth: Int, _ body: (_ folder: URL, _ names: [String], _ files: [String]) -> Void) {
        let fm = FileManager.default
        func walk(_ dir: URL, depth: Int) {
            guard depth <= maxDepth, let names = try? fm.contentsOfDirectory(atPath: dir.path).sorted() else { return }
            var files: [String] = [], folders: [URL] = []
            for name in names where !name.hasPrefix(".") {
                let url = dir.appendingPathComponent(name)
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else { continue }
                if !isDir.boolValue {
                    files.append(name)
                } else if !name.hasPrefix("checkpoint-") && !(depth == 0 && name == "jobs") {
                    folders.append(url)
                }
            }
            body(dir, names, files)
            for folder in folders { walk(folder, depth: depth + 1) }
        }
        walk(root, depth: 0)
    }

    /// Models, data files, adapters and data folders under the workdir (at most four levels down, jobs/ left out),
    /// for the page's pickers.
    public func suggestions() -> [String: [String]] {
        var models: [String] = [], data: [String] = [], adapters: [String] = [], datasetDirs: [String] = [], gguf: [String] = []
        forEachFolder(maxDepth: 4) { dir, names, files in
            if names.contains("config.json") && names.contains(where: { $0.hasSuffix(".safetensors") }) { models.append(dir.path) }
            if names.contains("adapter_config.json") { adapters.append(dir.path) }
            if names.contains("dataset_info.json") { datasetDirs.append(dir.path) }
            for name in files {
                let path = dir.appendingPathComponent(name).path
                if name.hasSuffix(".gguf") {
                    gguf.append(path)
                } else if (name.hasSuffix(".jsonl") || name.hasSuffix(".json")) && !Self.notData.contains(name) {
                    data.append(path)
                }
            }
        }
        return ["models": models + gguf, "data": data, "adapters": adapters, "dataset_dirs": datasetDirs, "gguf": gguf]
    }

    /// Every training run under the workdir (a folder holding train_log.jsonl, at most five levels down; jobs/ and
    /// checkpoints left out): the page's history, whether a run came from the page, the command line or a comparison.
    public func runs() -> [(path: String, records: Int, modified: Double)] {
        var out: [(path: String, records: Int, modified: Double)] = []
        forEachFolder(maxDepth: 5) { dir, _, files in
            guard files.contains("train_log.jsonl") else { return }
            let log = dir.appendingPathComponent("train_log.jsonl")
            let lines = (try? String(contentsOf: log, encoding: .utf8))?.split(separator: "\n").count ?? 0
            let modified = ((try? FileManager.default.attributesOfItem(atPath: log.path))?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            out.append((dir.path, lines, modified))
        }
        return out.sorted { $0.modified < $1.modified }
    }

    /// JSON files of models, adapters and runs that are not data sets.
    private static let notData: Set<String> = [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "adapter_config.json", "dataset_info.json", "train_summary.json", "metrics.json", "trainer_state.json",
        "model.safetensors.index.json", "added_tokens.json", "prune_report.json", "results.json", "compare.json",
    ]

    /// A fresh folder name under `kind/` of the workdir: `kind/label-YYYYMMDD-HHMMSS` (a suffix if taken).
    public func freshPath(_ kind: String, label: String, date: Date = Date()) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd-HHmmss"
        let base = root.appendingPathComponent(kind).appendingPathComponent("\(label)-\(f.string(from: date))").path
        var candidate = base, n = 2
        while FileManager.default.fileExists(atPath: candidate) {
            candidate = "\(base)-\(n)"
            n += 1
        }
        return candidate
    }
}

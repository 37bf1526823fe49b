import Foundation

/// A multiple-choice benchmark in its own published layout: MMLU, CMMLU or C-Eval, with LLaMA-Factory's
/// `mapping.json` (subject -> display name and category).
public enum BenchmarkKind: String, CaseIterable, Sendable {
    case mmlu, cmmlu, ceval

    /// The language of the prompt header.
    public var chinese: Bool { self != .mmlu }
}

/// One question: its text, the four options and the answer letter (nil where the split hides answers).
public struct BenchmarkQuestion: Sendable, Equatable {
    public var question: String
    public var options: [String]   // A, B, C, D
    public var answer: String?
}

public struct BenchmarkSubject: Sendable {
    public var id: String
    public var name: String
    public var category: String
    public var dev: [BenchmarkQuestion]
    public var questions: [BenchmarkQuestion]
}

public enum BenchmarkError: Error, CustomStringConvertible {
    case layout(path: String, reason: String)
    case record(path: String, row: Int, reason: String)

    public var description: String {
        switch self {
        case .layout(let path, let reason): "\(path): \(reason)"
        case .record(let path, let row, let reason): "\(path): row \(row): \(reason)"
        }
    }
}

/// Reads a benchmark folder. MMLU: `data/{dev,val,test}/{subject}_{split}.csv` without a header (question, A-D,
/// answer); C-Eval: `{dev,val,test}/{subject}_{split}.csv` with `id,question,A,B,C,D,answer,explanation`; CMMLU:
/// `{dev,test}/{subject}.csv` with `,Question,A,B,C,D,Answer`. The folder (or its `data/`) holds the split folders;
/// `mapping.json` beside them names each subject and its category (without it, names come from the file names and
/// every subject counts as Other).
public enum BenchmarkData {
    public static let categories = ["STEM", "Social Sciences", "Humanities", "Other"]

    public static func load(_ kind: BenchmarkKind, directory: URL, split: String) throws -> [BenchmarkSubject] {
        let fm = FileManager.default
        var root = directory
        if !fm.fileExists(atPath: root.appendingPathComponent("dev").path),
           fm.fileExists(atPath: root.appendingPathComponent("data/dev").path) {
            root = root.appendingPathComponent("data")
        }
        let devDir = root.appendingPathComponent("dev"), splitDir = root.appendingPathComponent(split)
        guard fm.fileExists(atPath: devDir.path) else {
            throw BenchmarkError.layout(path: directory.path, reason: "no dev/ folder (nor data/dev/): not a \(kind.rawValue) folder")
        }
        guard fm.fileExists(atPath: splitDir.path) else {
            let have = ["val", "test"].filter { fm.fileExists(atPath: root.appendingPathComponent($0).path) }
            throw BenchmarkError.layout(path: directory.path, reason: "no \(split)/ folder for --split \(split) (\(kind.rawValue) here has: \(have.joined(separator: ", ")))")
        }
        let suffix = kind == .cmmlu ? "" : "_\(split)"
        let files = try fm.contentsOfDirectory(atPath: splitDir.path).filter { $0.hasSuffix(suffix + ".csv") }.sorted()
        guard !files.isEmpty else { throw BenchmarkError.layout(path: splitDir.path, reason: "no *\(suffix).csv files") }
        let mapping = try readMapping(directory: directory, root: root)
        var subjects: [BenchmarkSubject] = []
        for file in files {
            let id = String(file.dropLast((suffix + ".csv").count))
            let devFile = devDir.appendingPathComponent(kind == .cmmlu ? "\(id).csv" : "\(id)_dev.csv")
            let dev = fm.fileExists(atPath: devFile.path) ? try questions(kind, url: devFile, requireAnswers: true) : []
            let qs = try questions(kind, url: splitDir.appendingPathComponent(file), requireAnswers: false)
            let entry = mapping?[id]
            subjects.append(BenchmarkSubject(id: id, name: entry?.name ?? id.replacingOccurrences(of: "_", with: " "),
                                             category: entry?.category ?? "Other", dev: dev, questions: qs))
        }
        return subjects
    }

    /// LLaMA-Factory's mapping.json: {subject: {"name": ..., "category": ...}}.
    static func readMapping(directory: URL, root: URL) throws -> [String: (name: String, category: String)]? {
        for url in [directory.appendingPathComponent("mapping.json"), root.appendingPathComponent("mapping.json")] {
            guard let data = FileManager.default.contents(atPath: url.path) else { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw BenchmarkError.layout(path: url.path, reason: "not a JSON object of subjects")
            }
            var out: [String: (name: String, category: String)] = [:]
            for (id, value) in obj {
                guard let v = value as? [String: Any], let name = v["name"] as? String, let category = v["category"] as? String else {
                    throw BenchmarkError.layout(path: url.path, reason: "subject '\(id)' needs string fields name and category")
                }
                guard categories.contains(category) else {
                    throw BenchmarkError.layout(path: url.path, reason: "subject '\(id)' has category '\(category)', not one of \(categories.joined(separator: ", "))")
                }
                out[id] = (name, category)
            }
            return out
        }
        return nil
    }

    /// The questions of one CSV file in its benchmark's columns.
    static func questions(_ kind: BenchmarkKind, url: URL, requireAnswers: Bool) throws -> [BenchmarkQuestion] {
        guard let data = FileManager.default.contents(atPath: url.path), let text = String(data: data, encoding: .utf8) else {
            throw BenchmarkError.layout(path: url.path, reason: "cannot read as UTF-8 text")
        }
        var rows = try CSV.parse(text, path: url.path)
        // Column of the question, first option and the answer.
        let (q, a, ans): (Int, Int, Int)
        switch kind {
        case .mmlu: (q, a, ans) = (0, 1, 5)
        case .ceval: (q, a, ans) = (1, 2, 6)
        case .cmmlu: (q, a, ans) = (1, 2, 6)
        }
        let firstRow: Int
        if kind == .mmlu {
            firstRow = 1
        } else {
            guard let header = rows.first, header.count > ans else {
                throw BenchmarkError.layout(path: url.path, reason: "no header row (\(kind == .ceval ? "id,question,A,B,C,D,answer,explanation" : ",Question,A,B,C,D,Answer"))")
            }
            let want = kind == .ceval ? ["question", "A", "B", "C", "D", "answer"] : ["Question", "A", "B", "C", "D", "Answer"]
            guard Array(header[q...ans]) == want else {
                throw BenchmarkError.layout(path: url.path, reason: "header \(header.joined(separator: ",")) is not \(kind.rawValue)'s")
            }
            rows.removeFirst()
            firstRow = 2
        }
        return try rows.enumerated().map { i, row in
            guard row.count > ans || (!requireAnswers && row.count == ans) else {
                throw BenchmarkError.record(path: url.path, row: i + firstRow, reason: "\(row.count) columns, expected \(ans + 1)")
            }
            let answer = row.count > ans ? row[ans].trimmingCharacters(in: .whitespaces) : ""
            if answer.isEmpty {
                if requireAnswers { throw BenchmarkError.record(path: url.path, row: i + firstRow, reason: "no answer") }
            } else if !["A", "B", "C", "D"].contains(answer) {
                throw BenchmarkError.record(path: url.path, row: i + firstRow, reason: "answer '\(answer)' is not A, B, C or D")
            }
            return BenchmarkQuestion(question: row[q], options: Array(row[a..<(a + 4)]), answer: answer.isEmpty ? nil : answer)
        }
    }
}

/// RFC 4180 comma-separated values: quoted fields with doubled quotes and line breaks, CRLF or LF rows.
enum CSV {
    static func parse(_ text: String, path: String) throws -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false, afterQuote = false, line = 1
        var chars = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = nil
        func next() -> Unicode.Scalar? {
            if let p = pending { pending = nil; return p }
            return chars.next()
        }
        while let c = next() {
            if quoted {
                if c == "\"" {
                    if let n = next() {
                        if n == "\"" { field.unicodeScalars.append("\""); continue }
                        pending = n
                    }
                    quoted = false
                    afterQuote = true
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case ",":
                row.append(field); field = ""; afterQuote = false
            case "\r":
                continue
            case "\n":
                row.append(field); field = ""; afterQuote = false
                if !(row.count == 1 && row[0].isEmpty) { rows.append(row) }
                row = []
                line += 1
            case "\"" where field.isEmpty && !afterQuote:
                quoted = true
            default:
                if afterQuote { throw BenchmarkError.record(path: path, row: line, reason: "text after a closing quote") }
                field.unicodeScalars.append(c)
            }
        }
        if quoted { throw BenchmarkError.record(path: path, row: line, reason: "a quoted field is not closed") }
        if !field.isEmpty || !row.isEmpty {
            row.append(field)
            rows.append(row)
        }
        return rows
    }
}

import Adapters
import Evaluation
import Foundation
import ModelIO
import Training

/// `peft compare`: trains every chosen method from the same base on the same data with the same budget, each in its
/// own `peft train` process (so a method that fails, even by running out of memory, fails alone and its peak memory
/// is its own), evaluates each on the same held-out questions with `peft eval --generate`, and writes
/// compare.json / compare.html / compare.md after every method, so an interrupted comparison leaves a partial report.
///
/// ```swift
/// var settings = CompareRunner.Settings(executable: peft, model: modelURL, data: dataURL, output: outURL)
/// settings.methods = [.lora, .prompt]
/// let report = try CompareRunner(settings: settings).run()
/// ```
public struct CompareRunner {
    public struct Settings {
        public var executable: URL
        public var model: URL
        public var data: URL
        public var evalData: URL?
        public var output: URL
        public var methods: [AdapterMethod] = AdapterMethod.allCases
        public var maxSteps: Int?
        public var epochs: Double?
        /// Held-out questions answered by each model (nil: all).
        public var questions: Int?
        public var maxNewTokens = 128
        /// Flags given to every `train` (batch size, max length, template, dtype, seed).
        public var trainArguments: [String] = []
        /// Flags given to every `eval --generate` (template, metric name regex).
        public var evalArguments: [String] = []
        /// Extra `train` flags of single methods (their settings or learning rate).
        public var methodArguments: [AdapterMethod: [String]] = [:]
        public var title: String?
        public var notes: [String] = []
        /// `peft eval --benchmark` flags (benchmark, folder, shots, split) scoring the base and every trained
        /// state; nil: no benchmark column.
        public var benchmark: (name: String, arguments: [String])?
        /// Preference comparisons: the stage (dpo, orpo, simpo, kto) and its flags, given to every `train` and to
        /// the held-out `eval --stage` that replaces answering questions; nil: supervised fine-tuning.
        public var preference: (stage: String, arguments: [String])?

        public init(executable: URL, model: URL, data: URL, evalData: URL? = nil, output: URL) {
            self.executable = executable
            self.model = model
            self.data = data
            self.evalData = evalData
            self.output = output
        }
    }

    public let settings: Settings
    /// One human-readable line per event (a method starting, finishing or failing).
    public var onEvent: (String) -> Void = { _ in }
    /// Polled while a child runs; true sends it SIGINT and ends the comparison after it stops.
    public var shouldStop: () -> Bool = { false }

    public init(settings: Settings) { self.settings = settings }

    public func run() throws -> CompareReport {
        let s = settings
        let fm = FileManager.default
        guard !s.methods.isEmpty else { throw CompareError.options("no methods to compare") }
        if let items = try? fm.contentsOfDirectory(atPath: s.output.path), !items.isEmpty,
           !items.contains(CompareReport.jsonName) {
            throw CompareError.options("\(s.output.path) exists and holds something else than an earlier comparison; choose a new --output")
        }
        try fm.createDirectory(at: s.output, withIntermediateDirectories: true)
        let logs = s.output.appendingPathComponent("logs")
        try fm.createDirectory(at: logs, withIntermediateDirectories: true)
        let (train, heldOut) = try split()
        let date = ISO8601DateFormatter().string(from: Date())
        let budget = s.maxSteps.map { "\($0) steps" } ?? "\(s.epochs.map { String($0) } ?? "3") epochs"
        var report = CompareReport(
            title: s.title ?? "peft compare: \(s.methods.count) methods", model: Self.display(s.model), data: Self.display(train),
            evalData: Self.display(heldOut), budget: budget, questions: try Self.recordCount(heldOut, limit: s.questions), date: date,
            notes: s.notes, methods: s.methods.map { .init(method: $0.rawValue, title: $0.title) })

        report.stage = s.preference?.stage
        // The base model answers first (or is scored on the held-out pairs): the common "before".
        let before: ChildProcess.Result
        if let p = s.preference {
            onEvent("base model: \(p.stage) loss and rewards on \(report.questions) held-out records")
            let scored = try preferenceScores(["--model", s.model.path], heldOut: heldOut, logs: logs, name: "before-eval")
            (before, report.before) = (scored.result, scored.scores)
        } else {
            onEvent("base model: answering \(report.questions) held-out questions")
            let beforeDir = s.output.appendingPathComponent("before")
            before = try child(["eval", "--model", s.model.path, "--data", heldOut.path] + evalFlags(beforeDir), log: logs, name: "before-eval")
            if before.status == 0, let run = try? EvaluationRunFiles.read(beforeDir) { report.before = .init(run: run) }
        }
        if let b = s.benchmark {
            report.benchmark = b.name
            onEvent("base model: \(b.name)")
            if let score = try benchmark(["--model", s.model.path], logs: logs, name: "before-benchmark") {
                var before = report.before ?? .init()
                (before.benchmarkAverage, before.benchmarkCategories) = (score.average, score.categories)
                report.before = before
            }
        }
        try report.write(to: s.output)
        if before.status == 130 || shouldStop() { return report }

        for (i, method) in s.methods.enumerated() {
            let dir = s.output.appendingPathComponent("runs").appendingPathComponent(method.rawValue)
            try? fm.removeItem(at: dir)   // an earlier comparison's run of this method
            onEvent("[\(i + 1)/\(s.methods.count)] \(method.rawValue) (\(method.title)): training")
            var trainArgs = ["train", "--model", s.model.path, "--data", train.path, "--eval-data", heldOut.path,
                             "--output", dir.path, "--method", method.rawValue]
            if let n = s.maxSteps { trainArgs += ["--max-steps", "\(n)"] } else if let e = s.epochs { trainArgs += ["--epochs", "\(e)"] }
            trainArgs += s.trainArguments + (s.preference?.arguments ?? []) + (s.methodArguments[method] ?? [])
            let trained = try child(trainArgs, log: logs, name: "\(method.rawValue)-train")
            var result = report.methods[i]
            result.peakRSSBytes = trained.peakRSSBytes
            result.wallSeconds = trained.seconds
            if let summary = try? TrainSummary.read(dir.appendingPathComponent(TrainSummary.fileName)) {
                result.summary = summary.summary
                result.trainableParameters = summary.trainableParameters
                result.sharePercent = 100 * Double(summary.trainableParameters) / Double(max(1, summary.modelParameters))
                result.tokensPerSecond = summary.tokensPerSecond
                result.trainSeconds = summary.elapsedSeconds
            }
            if let log = try? LogEntry.read(dir.appendingPathComponent("train_log.jsonl")) {
                result.trainLoss = log.filter { $0.type == "train" }.compactMap { e in e.loss.map { CurvePoint(step: e.step, value: $0) } }
                result.evalLoss = log.filter { $0.type == "eval" }.compactMap { e in e.evalLoss.map { CurvePoint(step: e.step, value: $0) } }
            }
            result.bytesOnDisk = Self.outputBytes(dir)
            if trained.status == 130 || shouldStop() {
                result.status = .interrupted
                result.message = "stopped by Ctrl-C"
                report.methods[i] = result
                try report.write(to: s.output)
                return report
            }
            guard trained.status == 0 else {
                result.status = .failed
                result.message = Self.failure(trained, log: logs.appendingPathComponent("\(method.rawValue)-train.stderr.log"))
                report.methods[i] = result
                onEvent("  \(method.rawValue) failed: \(result.message ?? "")")
                try report.write(to: s.output)
                continue
            }
            let modelArgs = method.savesAdapter ? ["--model", s.model.path, "--adapter", dir.path] : ["--model", dir.path]
            let evaluated: ChildProcess.Result
            var preferenceScores: CompareReport.Scores?
            let evalDir = s.output.appendingPathComponent("runs").appendingPathComponent("\(method.rawValue)-eval")
            if s.preference != nil {
                onEvent("  \(method.rawValue): scoring the held-out records")
                (evaluated, preferenceScores) = try self.preferenceScores(modelArgs, heldOut: heldOut, logs: logs, name: "\(method.rawValue)-eval")
            } else {
                onEvent("  \(method.rawValue): answering the held-out questions")
                evaluated = try child(["eval"] + modelArgs + ["--data", heldOut.path] + evalFlags(evalDir), log: logs,
                                      name: "\(method.rawValue)-eval")
            }
            result.wallSeconds = (result.wallSeconds ?? 0) + evaluated.seconds
            if let scores = preferenceScores {
                result.after = scores
                result.status = .done
            } else if s.preference == nil, evaluated.status == 0, let run = try? EvaluationRunFiles.read(evalDir) {
                result.after = .init(run: run)
                result.samples = run.predictions.prefix(2).map { .init(question: $0.prompt, reference: $0.reference, answer: $0.prediction) }
                result.status = .done
            } else if evaluated.status == 130 || shouldStop() {
                result.status = .interrupted
                result.message = "stopped by Ctrl-C while answering"
            } else {
                result.status = .failed
                result.message = "evaluation: " + Self.failure(evaluated, log: logs.appendingPathComponent("\(method.rawValue)-eval.stderr.log"))
            }
            if result.status == .done, s.benchmark != nil, !shouldStop() {
                onEvent("  \(method.rawValue): \(s.benchmark!.name)")
                if let score = try benchmark(modelArgs, logs: logs, name: "\(method.rawValue)-benchmark") {
                    result.after?.benchmarkAverage = score.average
                    result.after?.benchmarkCategories = score.categories
                }
            }
            report.methods[i] = result
            try report.write(to: s.output)
            if result.status == .interrupted { return report }
            let rouge = result.after?.metrics.map { String(format: "ROUGE-L %.2f", $0.rougeL) }
                ?? result.after?.preference?["rewards/margins"].map { String(format: "reward margin %.4f", $0) } ?? ""
            onEvent(String(format: "  %@: %@ trainable, %.0f tok/s, eval loss %.4f %@", method.rawValue,
                           CompareRenderer.compact(result.trainableParameters ?? 0), result.tokensPerSecond ?? 0,
                           result.after?.loss ?? .nan, rouge))
        }
        return report
    }

    /// A path as the user would type it: relative to the current directory when inside it.
    static func display(_ url: URL) -> String {
        let path = url.standardizedFileURL.path, cwd = FileManager.default.currentDirectoryPath
        return path.hasPrefix(cwd + "/") ? String(path.dropFirst(cwd.count + 1)) : path
    }

    private func evalFlags(_ dir: URL) -> [String] {
        var args = ["--generate", "--output-dir", dir.path, "--max-new-tokens", "\(settings.maxNewTokens)", "--json"]
        if let q = settings.questions { args += ["--limit", "\(q)"] }
        return args + settings.evalArguments
    }

    /// The preference loss and TRL's means of one model state on the held-out records (`peft eval --stage --json`);
    /// nil scores when the evaluation fails (the log keeps why).
    private func preferenceScores(_ modelArgs: [String], heldOut: URL, logs: URL,
                                  name: String) throws -> (result: ChildProcess.Result, scores: CompareReport.Scores?) {
        guard let p = settings.preference else { preconditionFailure() }
        var args = ["eval"] + modelArgs + ["--data", heldOut.path] + p.arguments + ["--json"]
        if let q = settings.questions { args += ["--limit", "\(q)"] }
        let r = try child(args + settings.evalArguments, log: logs, name: name)
        guard r.status == 0, let data = FileManager.default.contents(atPath: logs.appendingPathComponent("\(name).stdout.log").path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let loss = obj["loss"] as? Double else {
            return (r, nil)
        }
        var scores = CompareReport.Scores()
        scores.loss = loss
        scores.preference = obj.compactMapValues { $0 as? Double }.filter { $0.key == "loss" || $0.key.contains("/") || $0.key == "kl" }
        return (r, scores)
    }

    /// The benchmark's average and per-category accuracy of one model state (nil when its evaluation fails; the
    /// log keeps why).
    private func benchmark(_ modelArgs: [String], logs: URL, name: String) throws -> (average: Double, categories: [String: Double])? {
        guard let b = settings.benchmark else { return nil }
        let r = try child(["eval"] + modelArgs + b.arguments + ["--json"], log: logs, name: name)
        guard r.status == 0, let data = FileManager.default.contents(atPath: logs.appendingPathComponent("\(name).stdout.log").path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let average = obj["average"] as? Double else {
            onEvent("  \(b.name) failed: " + Self.failure(r, log: logs.appendingPathComponent("\(name).stderr.log")))
            return nil
        }
        var categories: [String: Double] = [:]
        for c in BenchmarkData.categories { if let v = obj[c] as? Double { categories[c] = v } }
        return (average, categories)
    }

    private func child(_ args: [String], log: URL, name: String) throws -> ChildProcess.Result {
        try ChildProcess.run(settings.executable, args, stdout: log.appendingPathComponent("\(name).stdout.log"),
                             stderr: log.appendingPathComponent("\(name).stderr.log"), shouldInterrupt: shouldStop)
    }

    /// The last error line of a failed child, or how it died.
    static func failure(_ r: ChildProcess.Result, log: URL) -> String {
        if let sig = r.signal {
            return sig == SIGKILL ? "killed (signal 9: out of memory?)" : "killed by signal \(sig)"
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingCharacters(in: .whitespaces) }
        let error = lines.last { $0.hasPrefix("Error:") } ?? lines.last ?? "exit status \(r.status)"
        return String(error.prefix(400))
    }

    /// Bytes of what a run keeps: the adapter (or model) files, not its log, summary or checkpoints.
    static func outputBytes(_ dir: URL) -> Int? {
        guard let items = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return nil }
        return items.filter { !$0.hasPrefix("checkpoint-") && !$0.hasPrefix(".") && !["train_log.jsonl", TrainSummary.fileName,
                                                                                      "peft_merge.json"].contains($0) }
            .compactMap { (try? FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent($0).path))?[.size] as? Int }
            .reduce(0, +)
    }

    /// (training data, held-out data): the given files, or the data with its last tenth (1...50 records) held out,
    /// written as JSON lines into OUTPUT/data.
    func split() throws -> (URL, URL) {
        if let e = settings.evalData { return (settings.data, e) }
        let records = try Self.records(settings.data)
        guard records.count >= 2 else {
            throw CompareError.options("\(settings.data.path): \(records.count) record(s); give --eval-data or at least 2 records to hold some out")
        }
        let held = min(50, max(1, records.count / 10))
        let dir = settings.output.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        func write(_ part: ArraySlice<Any>, _ name: String) throws -> URL {
            var out = Data()
            for r in part {
                out.append(try JSONSerialization.data(withJSONObject: r, options: [.withoutEscapingSlashes]))
                out.append(0x0A)
            }
            let url = dir.appendingPathComponent(name)
            try AtomicFile.write(out, to: url)
            return url
        }
        return (try write(records.dropLast(held), "train.jsonl"), try write(records.suffix(held), "heldout.jsonl"))
    }

    /// The records of a .json (array) or .jsonl file as JSON objects.
    static func records(_ url: URL) throws -> [Any] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CompareError.options("\(url.path): cannot read the data file")
        }
        if let array = (try? JSONSerialization.jsonObject(with: data)) as? [Any] { return array }
        var out: [Any] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let r = try? JSONSerialization.jsonObject(with: Data(t.utf8)) else {
                throw CompareError.options("\(url.path), record \(i + 1): malformed JSON")
            }
            out.append(r)
        }
        return out
    }

    static func recordCount(_ url: URL, limit: Int?) throws -> Int {
        let n = try records(url).count
        return limit.map { min($0, n) } ?? n
    }
}

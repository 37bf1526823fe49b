import Foundation
import ModelIO
import Training

/// Assembles a `ReportData` from a training log and named evaluation runs (e.g. "before" and "after").
public enum ReportBuilder {
    public static func build(title: String, subtitle: String?, notes: [String], log: [LogEntry],
                             runs: [(name: String, run: EvaluationRun)], settings: [String: String],
                             maxSamples: Int = 50, benchmark: [String: Double] = [:]) -> ReportData {
        let train = log.filter { $0.type == "train" }.compactMap { e in e.loss.map { CurvePoint(step: e.step, value: $0) } }
        let eval = log.filter { $0.type == "eval" }.compactMap { e in e.evalLoss.map { CurvePoint(step: e.step, value: $0) } }
        let columns = runs.map { r in
            var c = MetricsColumn(name: r.name, metrics: r.run.metrics, loss: r.run.loss?.loss, perplexity: r.run.loss?.perplexity)
            c.benchmarkAccuracy = benchmark[r.name]
            return c
        }
        // Rows follow the longest run; a run that stopped early leaves its later answers empty.
        let longest = runs.max { $0.run.predictions.count < $1.run.predictions.count }?.run.predictions ?? []
        let samples = longest.prefix(maxSamples).enumerated().map { i, p in
            SampleRow(question: p.prompt, reference: p.reference,
                      answers: runs.map { $0.run.predictions.indices.contains(i) ? $0.run.predictions[i].prediction : "" })
        }
        var allNotes = notes
        for r in runs where r.run.partial {
            allNotes.append("The \"\(r.name)\" run was stopped early: \(r.run.predictions.count) answers, loss not measured.")
        }
        var data = ReportData(title: title, subtitle: subtitle, notes: allNotes, trainLoss: train, evalLoss: eval,
                              metrics: columns, samples: samples, settings: settings)
        data.preference = preferenceCurves(log)
        return data
    }

    /// TRL's preference means of the training steps, by name (absent names are left out).
    static func preferenceCurves(_ log: [LogEntry]) -> [String: [CurvePoint]]? {
        let fields: [(String, KeyPath<LogEntry, Double?>)] = [
            ("rewards/chosen", \.rewardsChosen), ("rewards/rejected", \.rewardsRejected), ("rewards/margins", \.rewardsMargins),
            ("rewards/accuracies", \.rewardsAccuracies), ("logps/chosen", \.logpsChosen), ("logps/rejected", \.logpsRejected),
            ("kl", \.kl),
        ]
        var out: [String: [CurvePoint]] = [:]
        for (name, path) in fields {
            let points = log.filter { $0.type == "train" }.compactMap { e in e[keyPath: path].map { CurvePoint(step: e.step, value: $0) } }
            if !points.isEmpty { out[name] = points }
        }
        return out.isEmpty ? nil : out
    }

    /// Writes `report.html` and its Markdown twin `report.md` (same base name) atomically.
    public static func write(_ data: ReportData, html url: URL) throws {
        let md = url.deletingPathExtension().appendingPathExtension("md")
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(Data(ReportRenderer.html(data).utf8), to: url)
        try AtomicFile.write(Data(ReportRenderer.markdown(data).utf8), to: md)
    }
}

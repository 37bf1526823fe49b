import ArgumentParser
import Evaluation
import Foundation
import Training

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render a training log and evaluation runs into one self-contained HTML report (and a Markdown twin).",
        discussion: "Example: peft report --log out/train_log.jsonl --run before=eval-before --run after=eval-after --output report.html")

    @Option(help: "Training log (JSON lines written by `peft train`).") var log: String?
    @Option(name: .customLong("run"), help: "An evaluation run as NAME=DIR, where DIR was written by `peft eval --generate --output-dir DIR`; repeat for before/after.")
    var runs: [String] = []
    @Option(help: "HTML file to write; the Markdown twin gets the same name with .md.") var output: String = "report.html"
    @Option(help: "Report title.") var title: String = "Fine-tuning report"

    func validate() throws {
        if log == nil && runs.isEmpty { throw ValidationError("give a --log, one or more --run NAME=DIR, or both") }
    }

    func run() throws {
        let entries = try log.map { try LogEntry.read(URL(fileURLWithPath: $0)) } ?? []
        let loaded = try runs.map { spec -> (name: String, run: EvaluationRun) in
            guard let eq = spec.firstIndex(of: "="), eq != spec.startIndex else {
                throw ValidationError("--run expects NAME=DIR, got '\(spec)'")
            }
            let dir = URL(fileURLWithPath: String(spec[spec.index(after: eq)...]))
            return (String(spec[..<eq]), try EvaluationRunFiles.read(dir))
        }
        let data = ReportBuilder.build(title: title, subtitle: log, notes: [], log: entries, runs: loaded, settings: [:])
        let url = URL(fileURLWithPath: output)
        try ReportBuilder.write(data, html: url)
        Terminal.note("wrote \(url.path) and \(url.deletingPathExtension().appendingPathExtension("md").path)")
    }
}

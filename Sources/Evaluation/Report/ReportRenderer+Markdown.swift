import Foundation

extension ReportRenderer {
    /// Most loss-curve rows the Markdown summary table shows (train and eval points together).
    static let markdownCurveRows = 16

    /// The report as GitHub-flavoured Markdown: the same sections as ``html(_:)``, with the loss curves summarised
    /// as a table of at most ``markdownCurveRows`` steps (evenly spaced train points, first and last included, plus
    /// the eval points). In user text `<`, `>`, entity-like `&` and `|` are escaped and line breaks become `<br>`,
    /// so no user HTML gets through and every table row has exactly as many cells as its header.
    ///
    /// ```swift
    /// print(ReportRenderer.markdown(ReportData(title: "LoRA demo", trainLoss: points)))
    /// ```
    public static func markdown(_ data: ReportData) -> String {
        var out = "# \(inline(data.title))\n\n"
        if let subtitle = data.subtitle, !subtitle.isEmpty { out += "*\(inline(subtitle))*\n\n" }
        for note in data.notes { out += "- \(inline(note))\n" }
        if !data.notes.isEmpty { out += "\n" }
        out += lossMarkdown(data) + preferenceMarkdown(data) + metricsMarkdown(data.metrics) + samplesMarkdown(data)
        out += settingsMarkdown(data.settings)
        return out
    }

    /// Single-line text outside tables: HTML neutralised, line breaks folded to spaces.
    static func inline(_ text: String) -> String {
        ReportFormat.markdownText(text)
            .replacingOccurrences(of: "\r\n", with: " ")
            .replacingOccurrences(of: "\n", with: " ")
    }

    /// One table row from already-escaped cells.
    static func row(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |\n" }

    /// Preference runs: one summary line per logged mean (first, last, min).
    static func preferenceMarkdown(_ data: ReportData) -> String {
        guard let preference = data.preference, !preference.isEmpty else { return "" }
        var out = "## Preference rewards\n\n"
        for name in preferenceOrder { if let points = preference[name] { out += "- " + inline(curveSummary(name, points)) + "\n" } }
        return out + "\n"
    }

    static func lossMarkdown(_ data: ReportData) -> String {
        var out = "## Loss\n\n"
        out += curveSummary("Train", data.trainLoss) + "  \n" + curveSummary("Eval", data.evalLoss) + "\n\n"
        let train = data.trainLoss.filter { $0.value.isFinite }
        let eval = data.evalLoss.filter { $0.value.isFinite }
        guard !train.isEmpty || !eval.isEmpty else { return out }
        let evalBudget = min(eval.count, markdownCurveRows / 2)
        let chosenEval = evenlySpaced(eval, count: evalBudget)
        let chosenTrain = evenlySpaced(train, count: markdownCurveRows - evalBudget)
        var trainAt: [Int: Double] = [:], evalAt: [Int: Double] = [:]
        for p in train { trainAt[p.step] = p.value }
        for p in eval { evalAt[p.step] = p.value }
        let steps = Set(chosenTrain.map(\.step) + chosenEval.map(\.step)).sorted()
        out += row(["Step", "Train loss", "Eval loss"]) + "|---:|---:|---:|\n"
        for step in steps {
            out += row([String(step), ReportFormat.number(trainAt[step], digits: 4),
                        ReportFormat.number(evalAt[step], digits: 4)])
        }
        return out + "\n"
    }

    /// Up to `count` points spread evenly over `points` by index, always including the first and the last.
    static func evenlySpaced(_ points: [CurvePoint], count: Int) -> [CurvePoint] {
        guard count > 0, !points.isEmpty else { return [] }
        guard points.count > count else { return points }
        if count == 1 { return [points[points.count - 1]] }
        let indices = (0..<count).map { i in (i * (points.count - 1) + (count - 1) / 2) / (count - 1) }
        return Set(indices).sorted().map { points[$0] }
    }

    static func metricsMarkdown(_ columns: [MetricsColumn]) -> String {
        var out = "## Metrics\n\n"
        let rows = ReportFormat.presentRows(columns)
        guard !columns.isEmpty, !rows.isEmpty else { return out + "No evaluation results.\n\n" }
        let showDelta = columns.count >= 2
        var header = ["Metric"] + columns.map { ReportFormat.markdownCell($0.name) }
        if showDelta {
            header.append(ReportFormat.markdownCell("Δ \(columns[columns.count - 1].name) − \(columns[0].name)"))
        }
        out += row(header) + "|---|" + String(repeating: "---:|", count: header.count - 1) + "\n"
        for metricRow in rows {
            let values = columns.map(metricRow.value)
            let best = ReportFormat.bestIndex(values, higherIsBetter: metricRow.higherIsBetter)
            var cells = [metricRow.label + (metricRow.higherIsBetter ? " ↑" : " ↓")]
            for (i, value) in values.enumerated() {
                let text = ReportFormat.number(value, digits: metricRow.digits)
                cells.append(i == best ? "**\(text)**" : text)
            }
            if showDelta {
                let delta = ReportFormat.firstToLastDelta(values)
                cells.append(delta.map { ReportFormat.delta($0, digits: metricRow.digits) } ?? "—")
            }
            out += row(cells)
        }
        let counts = columns.map { column in column.metrics.map { String($0.count) } ?? "—" }
        out += row(["Examples"] + counts + (showDelta ? [""] : []))
        out += "\n"
        if showDelta { out += "Best value per row in **bold**; ↑ higher is better, ↓ lower is better.\n" }
        if let footnote = ReportFormat.nameMatchFootnote(columns) { out += "\n" + inline(footnote) + "\n" }
        if columns.count == 1 { out += "Only one column (\(inline(columns[0].name))): no comparison yet.\n" }
        return out + "\n"
    }

    static func samplesMarkdown(_ data: ReportData) -> String {
        var out = "## Samples\n\n"
        guard !data.samples.isEmpty else { return out + "No samples.\n\n" }
        let headings = ReportFormat.answerHeadings(data)
        out += row(["#", "Question", "Reference"] + headings.map(ReportFormat.markdownCell))
        out += "|---:|" + String(repeating: "---|", count: headings.count + 2) + "\n"
        for (i, sample) in data.samples.enumerated() {
            var cells = [String(i + 1), cell(sample.question), cell(sample.reference)]
            for c in headings.indices {
                guard c < sample.answers.count else {
                    cells.append("*(not generated)*")
                    continue
                }
                let answer = sample.answers[c]
                let bleu = Metrics.sentenceBLEU4(prediction: answer, reference: sample.reference)
                let rougeL = Metrics.rouge(prediction: answer, reference: sample.reference).rL
                cells.append(cell(answer) + "<br>*BLEU-4 \(ReportFormat.number(bleu, digits: 1)) · "
                             + "ROUGE-L \(ReportFormat.number(rougeL, digits: 1))*")
            }
            out += row(cells)
        }
        return out + "\n"
    }

    /// A table cell for user text; "*(empty)*" for blank text.
    static func cell(_ text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? "*(empty)*" : ReportFormat.markdownCell(trimmed)
    }

    static func settingsMarkdown(_ settings: [String: String]) -> String {
        var out = "## Training settings\n\n"
        guard !settings.isEmpty else { return out + "No settings recorded.\n" }
        out += row(["Setting", "Value"]) + "|---|---|\n"
        for (key, value) in ReportFormat.sortedSettings(settings) {
            out += row([ReportFormat.markdownCell(key), ReportFormat.markdownCell(value)])
        }
        return out
    }
}

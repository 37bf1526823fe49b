import Foundation

/// Escaping, number formatting and the metric rows shared by the HTML and Markdown renderers.
enum ReportFormat {
    /// Text safe inside HTML/XML element content and double- or single-quoted attribute values.
    static func html(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for ch in text.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                // Control characters other than tab/newline are not allowed in XML 1.0; drop them.
                if ch.value < 0x20 && ch != "\t" && ch != "\n" && ch != "\r" { continue }
                out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Text that Markdown shows literally as far as HTML goes: `<` and `>` become entities, and `&` does when it
    /// could start an entity (`&amp;`, `&#39;`); quotes and a lone `&` stay readable in the raw file.
    static func markdownText(_ text: String) -> String {
        var out = ""
        let scalars = Array(text.unicodeScalars)
        for (i, ch) in scalars.enumerated() {
            switch ch {
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "&":
                let next = i + 1 < scalars.count ? scalars[i + 1] : " "
                let startsEntity = next == "#" || (next.isASCII && next.properties.isAlphabetic)
                out += startsEntity ? "&amp;" : "&"
            default:
                if ch.value < 0x20 && ch != "\t" && ch != "\n" && ch != "\r" { continue }
                out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// Text safe inside one Markdown table cell: ``markdownText(_:)``, `|` escaped, newlines as `<br>`.
    static func markdownCell(_ text: String) -> String {
        let normalised = text.replacingOccurrences(of: "\r\n", with: "\n")
        return markdownText(normalised)
            .replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "|", with: "\\|")
            .replacingOccurrences(of: "\n", with: "<br>")
            .replacingOccurrences(of: "\t", with: " ")
    }

    /// `value` with `digits` decimals, "—" for `nil`, "n/a" for NaN/infinite.
    static func number(_ value: Double?, digits: Int = 2) -> String {
        guard let value else { return "—" }
        guard value.isFinite else { return "n/a" }
        if abs(value) >= 1e6 { return String(format: "%.3e", value) }
        return String(format: "%.\(max(0, digits))f", value)
    }

    /// Signed difference, e.g. "+3.21" or "−0.50" (Unicode minus).
    static func delta(_ value: Double, digits: Int = 2) -> String {
        guard value.isFinite else { return "n/a" }
        let text = number(abs(value), digits: digits)
        if text == number(0, digits: digits) { return "±" + text }
        return (value > 0 ? "+" : "−") + text
    }

    /// One row of the metrics table.
    struct MetricRow {
        let label: String
        let higherIsBetter: Bool
        let digits: Int
        let value: (MetricsColumn) -> Double?
    }

    /// The rows shown in the metrics table, in order.
    static let metricRows: [MetricRow] = [
        MetricRow(label: "Eval loss", higherIsBetter: false, digits: 4) { $0.loss },
        MetricRow(label: "Perplexity", higherIsBetter: false, digits: 2) { $0.perplexity },
        MetricRow(label: "BLEU-4", higherIsBetter: true, digits: 2) { $0.metrics?.bleu4 },
        MetricRow(label: "ROUGE-1", higherIsBetter: true, digits: 2) { $0.metrics?.rouge1 },
        MetricRow(label: "ROUGE-2", higherIsBetter: true, digits: 2) { $0.metrics?.rouge2 },
        MetricRow(label: "ROUGE-L", higherIsBetter: true, digits: 2) { $0.metrics?.rougeL },
        MetricRow(label: "Exact match %", higherIsBetter: true, digits: 2) { $0.metrics?.exactMatch },
        MetricRow(label: "Name match %", higherIsBetter: true, digits: 2) { $0.metrics?.nameMatch },
        MetricRow(label: "Benchmark accuracy %", higherIsBetter: true, digits: 2) { $0.benchmarkAccuracy },
    ]

    /// Rows of `metricRows` that have a value in at least one column.
    static func presentRows(_ columns: [MetricsColumn]) -> [MetricRow] {
        metricRows.filter { row in columns.contains { row.value($0) != nil } }
    }

    /// Index of the single best finite value in `values`, `nil` with fewer than two finite values or a tie at the top.
    static func bestIndex(_ values: [Double?], higherIsBetter: Bool) -> Int? {
        let finite = values.enumerated().compactMap { i, v in v.flatMap { $0.isFinite ? (i, $0) : nil } }
        guard finite.count >= 2 else { return nil }
        let sorted = finite.sorted { higherIsBetter ? $0.1 > $1.1 : $0.1 < $1.1 }
        return sorted[0].1 == sorted[1].1 ? nil : sorted[0].0
    }

    /// Last column minus first column, when both are finite and there are at least two columns.
    static func firstToLastDelta(_ values: [Double?]) -> Double? {
        guard values.count >= 2, let first = values.first ?? nil, let last = values.last ?? nil,
              first.isFinite, last.isFinite else { return nil }
        return last - first
    }

    /// "Name match judged on 7 of 18 examples (references without a match skipped)" per column, or `nil`.
    static func nameMatchFootnote(_ columns: [MetricsColumn]) -> String? {
        let parts = columns.compactMap { column -> String? in
            guard let m = column.metrics, let skipped = m.nameMatchSkipped, skipped > 0 else { return nil }
            return "\(column.name): \(m.count - skipped) of \(m.count)"
        }
        guard !parts.isEmpty else { return nil }
        return "Name match counts only examples whose reference contains a name (" + parts.joined(separator: "; ")
            + " judged)."
    }

    /// Settings sorted by key.
    static func sortedSettings(_ settings: [String: String]) -> [(key: String, value: String)] {
        settings.sorted { $0.key < $1.key }
    }

    /// Column headings for the answers: the metrics column names, padded with "answer N" when a sample has more.
    static func answerHeadings(_ data: ReportData) -> [String] {
        let width = max(data.metrics.count, data.samples.map(\.answers.count).max() ?? 0)
        return (0..<width).map { $0 < data.metrics.count ? data.metrics[$0].name : "answer \($0 + 1)" }
    }
}

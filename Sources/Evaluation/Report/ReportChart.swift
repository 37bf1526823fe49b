import Foundation

/// Inline SVG line chart of the train and eval loss curves, with axes, ticks, grid and legend.
///
/// Non-finite values (and any beyond ±1e15) are skipped; a series with more than ``maxDrawnPoints`` points is
/// reduced to the minimum and maximum of each of ``maxDrawnPoints``/2 buckets (so spikes stay visible); a lone point
/// is drawn as a dot; with no points at all the chart says "no data". The output is well-formed XML (no `xmlns`,
/// so the file holds no URL).
///
/// ```swift
/// let svg = LossChart.svg(train: data.trainLoss, eval: data.evalLoss)
/// ```
enum LossChart {
    static let width = 760.0
    static let height = 300.0
    static let maxDrawnPoints = 600
    /// Values beyond ±1e15 are skipped like infinities (they would make the axis meaningless).
    static let maxDrawnMagnitude = 1e15
    static let trainColour = "#2563eb"
    static let evalColour = "#ea580c"

    // Plot area inside the SVG.
    private static let left = 60.0, right = 16.0, top = 14.0, bottom = 44.0
    private static var plotWidth: Double { width - left - right }
    private static var plotHeight: Double { height - top - bottom }

    private struct Series {
        let name: String
        let colour: String
        let points: [(x: Double, y: Double)]
        /// Drawable points before downsampling.
        let count: Int
    }

    /// The SVG element for the two curves.
    static func svg(train: [CurvePoint], eval: [CurvePoint]) -> String {
        svg(curves: [("train loss", trainColour, train), ("eval loss", evalColour, eval)],
            title: "Train and eval loss by step")
    }

    /// Colours for many curves on one chart (distinct on white, colour-blind friendly first).
    static let palette = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777",
                          "#4b5563", "#65a30d"]

    /// The SVG element for any number of named curves (e.g. one train-loss curve per method).
    static func svg(curves: [(name: String, colour: String, points: [CurvePoint])], title: String) -> String {
        let series = curves.map { Series(name: $0.name, colour: $0.colour, points: drawable($0.points),
                                         count: $0.points.filter(isDrawable).count) }
        let present = series.filter { !$0.points.isEmpty }
        var out = "<svg class=\"chart\" viewBox=\"0 0 \(fmt(width)) \(fmt(height))\" role=\"img\" "
            + "aria-label=\"loss curves\" preserveAspectRatio=\"xMidYMid meet\">\n"
        out += "<title>\(ReportFormat.html(title))</title>\n"
        out += "<rect x=\"0\" y=\"0\" width=\"\(fmt(width))\" height=\"\(fmt(height))\" fill=\"#ffffff\"/>\n"
        guard !present.isEmpty else {
            out += "<rect x=\"\(fmt(left))\" y=\"\(fmt(top))\" width=\"\(fmt(plotWidth))\" "
                + "height=\"\(fmt(plotHeight))\" "
                + "fill=\"#f8fafc\" stroke=\"#cbd5e1\"/>\n"
            out += "<text class=\"nodata\" x=\"\(fmt(left + plotWidth / 2))\" y=\"\(fmt(top + plotHeight / 2))\" "
                + "text-anchor=\"middle\" dominant-baseline=\"middle\" font-size=\"16\" fill=\"#64748b\">"
                + "no data</text>\n"
            return out + "</svg>"
        }
        let all = present.flatMap(\.points)
        let xs = axis(all.map(\.x), integer: true)
        let ys = axis(all.map(\.y), integer: false)
        func px(_ x: Double) -> Double { left + (x - xs.lo) / (xs.hi - xs.lo) * plotWidth }
        func py(_ y: Double) -> Double { top + plotHeight - (y - ys.lo) / (ys.hi - ys.lo) * plotHeight }

        // Grid and ticks.
        out += "<g font-size=\"12\" fill=\"#475569\">\n"
        for t in ys.ticks {
            let y = py(t)
            out += "<line x1=\"\(fmt(left))\" y1=\"\(fmt(y))\" x2=\"\(fmt(left + plotWidth))\" y2=\"\(fmt(y))\" "
                + "stroke=\"#e2e8f0\"/>\n"
            out += "<text x=\"\(fmt(left - 8))\" y=\"\(fmt(y))\" text-anchor=\"end\" dominant-baseline=\"middle\">"
                + "\(label(t, step: ys.step))</text>\n"
        }
        for t in xs.ticks {
            let x = px(t)
            out += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(top + plotHeight))\" x2=\"\(fmt(x))\" "
                + "y2=\"\(fmt(top + plotHeight + 5))\" stroke=\"#64748b\"/>\n"
            out += "<text x=\"\(fmt(x))\" y=\"\(fmt(top + plotHeight + 19))\" text-anchor=\"middle\">"
                + "\(label(t, step: xs.step))</text>\n"
        }
        out += "</g>\n"
        // Axes and their labels.
        out += "<path d=\"M\(fmt(left)),\(fmt(top)) V\(fmt(top + plotHeight)) H\(fmt(left + plotWidth))\" "
            + "fill=\"none\" stroke=\"#64748b\"/>\n"
        out += "<text x=\"\(fmt(left + plotWidth / 2))\" y=\"\(fmt(height - 6))\" text-anchor=\"middle\" "
            + "font-size=\"13\" fill=\"#334155\">step</text>\n"
        out += "<text x=\"14\" y=\"\(fmt(top + plotHeight / 2))\" text-anchor=\"middle\" font-size=\"13\" "
            + "fill=\"#334155\" transform=\"rotate(-90 14 \(fmt(top + plotHeight / 2)))\">loss</text>\n"
        // Curves.
        for s in present {
            let coords = s.points.map { "\(fmt(px($0.x))),\(fmt(py($0.y)))" }
            if coords.count > 1 {
                out += "<polyline points=\"\(coords.joined(separator: " "))\" fill=\"none\" stroke=\"\(s.colour)\" "
                    + "stroke-width=\"2\" stroke-linejoin=\"round\"/>\n"
            }
            if coords.count <= 30 {
                for p in s.points {
                    out += "<circle cx=\"\(fmt(px(p.x)))\" cy=\"\(fmt(py(p.y)))\" r=\"3.5\" fill=\"\(s.colour)\"/>\n"
                }
            }
        }
        out += legend(series)
        return out + "</svg>"
    }

    /// Legend box in the top-right corner of the plot; series without points say "(no data)".
    private static func legend(_ series: [Series]) -> String {
        let rowHeight = 18.0, boxWidth = 190.0
        let x0 = left + plotWidth - boxWidth - 8, y0 = top + 8
        var out = "<g class=\"legend\" font-size=\"12\" fill=\"#1e293b\">\n"
        out += "<rect x=\"\(fmt(x0))\" y=\"\(fmt(y0))\" width=\"\(fmt(boxWidth))\" "
            + "height=\"\(fmt(rowHeight * Double(series.count) + 8))\" fill=\"#ffffff\" fill-opacity=\"0.9\" "
            + "stroke=\"#cbd5e1\" rx=\"4\"/>\n"
        for (i, s) in series.enumerated() {
            let y = y0 + 4 + rowHeight * (Double(i) + 0.5)
            out += "<line x1=\"\(fmt(x0 + 10))\" y1=\"\(fmt(y))\" x2=\"\(fmt(x0 + 34))\" y2=\"\(fmt(y))\" "
                + "stroke=\"\(s.colour)\" stroke-width=\"3\"/>\n"
            let suffix = s.points.isEmpty ? " (no data)" : " (\(s.count) point\(s.count == 1 ? "" : "s"))"
            out += "<text x=\"\(fmt(x0 + 42))\" y=\"\(fmt(y))\" dominant-baseline=\"middle\">"
                + "\(ReportFormat.html(s.name + suffix))</text>\n"
        }
        return out + "</g>\n"
    }

    static func isDrawable(_ point: CurvePoint) -> Bool {
        point.value.isFinite && abs(point.value) <= maxDrawnMagnitude
    }

    /// Finite points sorted by step, reduced to at most `maxDrawnPoints` (bucket min and max, in step order).
    static func drawable(_ points: [CurvePoint]) -> [(x: Double, y: Double)] {
        let finite = points.filter(isDrawable)
            .enumerated().sorted { ($0.element.step, $0.offset) < ($1.element.step, $1.offset) }
            .map { (x: Double($0.element.step), y: $0.element.value) }
        guard finite.count > maxDrawnPoints else { return finite }
        let buckets = maxDrawnPoints / 2
        var out: [(x: Double, y: Double)] = []
        out.reserveCapacity(maxDrawnPoints)
        for b in 0..<buckets {
            let lo = b * finite.count / buckets, hi = (b + 1) * finite.count / buckets
            guard lo < hi else { continue }
            let slice = finite[lo..<hi]
            guard let minIndex = slice.indices.min(by: { finite[$0].y < finite[$1].y }),
                  let maxIndex = slice.indices.max(by: { finite[$0].y < finite[$1].y }) else { continue }
            for i in Set([minIndex, maxIndex]).sorted() { out.append(finite[i]) }
        }
        return out
    }

    /// A padded, "nice" axis range covering `values` with about five round-numbered ticks.
    static func axis(_ values: [Double], integer: Bool) -> (lo: Double, hi: Double, step: Double, ticks: [Double]) {
        var lo = values.min() ?? 0, hi = values.max() ?? 1
        if hi - lo < 1e-12 * max(1, abs(lo)) {
            let pad = integer ? 1 : max(abs(lo) * 0.1, 0.5)
            lo -= pad
            hi += pad
        }
        if integer && lo < 0 && (values.min() ?? 0) >= 0 { lo = 0 }
        let raw = (hi - lo) / 5
        let magnitude = pow(10, floor(log10(raw)))
        let normalised = raw / magnitude
        var step = (normalised < 1.5 ? 1 : normalised < 3 ? 2 : normalised < 7 ? 5 : 10) * magnitude
        if integer { step = max(1, step.rounded()) }
        let niceLo = floor(lo / step) * step, niceHi = ceil(hi / step) * step
        var ticks: [Double] = []
        var t = niceLo
        while t <= niceHi + step * 1e-9 && ticks.count < 50 {
            ticks.append(abs(t) < step * 1e-9 ? 0 : t)
            t = niceLo + step * Double(ticks.count)
        }
        return (niceLo, niceHi, step, ticks)
    }

    /// Tick label with just enough decimals for `step`.
    private static func label(_ value: Double, step: Double) -> String {
        let decimals = step >= 1 ? 0 : min(6, Int(ceil(-log10(step) - 1e-9)))
        return String(format: "%.\(decimals)f", value)
    }

    /// Coordinate with at most one decimal.
    private static func fmt(_ value: Double) -> String {
        guard value.isFinite, abs(value) < 1e9 else { return "0" }
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(format: "%.1f", rounded)
    }
}

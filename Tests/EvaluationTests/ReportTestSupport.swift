import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import Evaluation

/// What an SVG fragment contains, read with XMLParser (so a parse also proves it is well-formed XML).
final class SVGSummary: NSObject, XMLParserDelegate {
    private(set) var elementCounts: [String: Int] = [:]
    private(set) var texts: [String] = []
    private(set) var polylinePointCounts: [Int] = []
    private(set) var numericAttributes: [String] = []
    private var currentText = ""

    /// Parses `svg`; throws when it is not well-formed.
    static func parse(_ svg: String) throws -> SVGSummary {
        let summary = SVGSummary()
        let parser = XMLParser(data: Data(svg.utf8))
        parser.delegate = summary
        guard parser.parse() else {
            throw NSError(domain: "SVGSummary", code: 1, userInfo: [
                NSLocalizedDescriptionKey: "SVG is not well-formed: \(String(describing: parser.parserError))"])
        }
        return summary
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elementCounts[name, default: 0] += 1
        currentText = ""
        if name == "polyline", let points = attributes["points"] {
            polylinePointCounts.append(points.split(separator: " ").count)
        }
        for key in ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "points"] {
            if let value = attributes[key] { numericAttributes.append(value) }
        }
    }

    func parser(_ parser: XMLParser, foundCharacters string: String) { currentText += string }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "text" || name == "title" { texts.append(currentText) }
        currentText = ""
    }

    func count(_ element: String) -> Int { elementCounts[element] ?? 0 }
}

enum ReportTestSupport {
    /// The `<svg …>…</svg>` part of an HTML page.
    static func svg(in html: String) -> String? {
        guard let start = html.range(of: "<svg"), let end = html.range(of: "</svg>", range: start.upperBound..<html.endIndex)
        else { return nil }
        return String(html[start.lowerBound..<end.upperBound])
    }

    /// Cells of a Markdown table row: splits on `|` not preceded by a backslash, without the outer pipes.
    static func markdownCells(_ row: String) -> [String] {
        var cells: [String] = []
        var current = ""
        var previous: Character = " "
        for ch in row {
            if ch == "|" && previous != "\\" {
                cells.append(current)
                current = ""
            } else {
                current.append(ch)
            }
            previous = ch
        }
        cells.append(current)
        // Drop the empty text before the leading pipe and after the trailing pipe.
        return Array(cells.dropFirst().dropLast())
    }

    /// The tables of a Markdown document, each as its rows (header, separator, body rows).
    static func markdownTables(_ markdown: String) -> [[String]] {
        var tables: [[String]] = []
        var current: [String] = []
        for line in markdown.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("|") {
                current.append(String(line))
            } else if !current.isEmpty {
                tables.append(current)
                current = []
            }
        }
        if !current.isEmpty { tables.append(current) }
        return tables
    }

    static func metrics(bleu: Double, rougeL: Double, nameMatch: Double? = nil, skipped: Int? = nil) -> GenerationMetrics {
        GenerationMetrics(bleu4: bleu, rouge1: rougeL + 5, rouge2: rougeL - 5, rougeL: rougeL, exactMatch: 0,
                          nameMatch: nameMatch, nameMatchSkipped: skipped, count: 10)
    }
}

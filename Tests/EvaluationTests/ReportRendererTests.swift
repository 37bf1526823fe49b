import Foundation
import XCTest
@testable import Evaluation

final class ReportRendererTests: XCTestCase {
    typealias Support = ReportTestSupport

    func testFullReportIsSelfContainedWithAllSections() throws {
        let data = try SampleReport.make()
        let html = ReportRenderer.html(data)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertTrue(html.contains("<meta charset=\"utf-8\">"))
        for forbidden in ["http://", "https://", "<script", "src=", "<link", "@import", "url("] {
            XCTAssertFalse(html.contains(forbidden), "report must be self-contained, found \(forbidden)")
        }
        for id in ["loss", "metrics", "samples", "settings"] { XCTAssertTrue(html.contains("<section id=\"\(id)\">")) }
        XCTAssertTrue(html.contains("Δ after − before"))
        XCTAssertTrue(html.contains("<td class=\"best\">"))
        XCTAssertTrue(html.contains("Tiny demo model"))

        let svg = try SVGSummary.parse(try XCTUnwrap(Support.svg(in: html)))
        XCTAssertEqual(svg.polylinePointCounts, [60, 5], "train then eval curve")
        XCTAssertEqual(svg.count("circle"), 5, "dots only on the short eval curve")
        XCTAssertTrue(svg.texts.contains("train loss (60 points)"))
        XCTAssertTrue(svg.texts.contains("eval loss (5 points)"))
        XCTAssertTrue(svg.texts.contains("step") && svg.texts.contains("loss"), "axis labels")
        XCTAssertGreaterThanOrEqual(svg.count("text"), 10, "tick labels")
    }

    func testUserTextIsEscapedEverywhere() throws {
        let evil = "<script>alert(\"x\")</script> & 'q'"
        let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;q&#39;"
        let markdownEscaped = "&lt;script&gt;alert(\"x\")&lt;/script&gt; & 'q'"
        let data = ReportData(title: evil, subtitle: evil, notes: [evil],
                              metrics: [MetricsColumn(name: evil, loss: 1)],
                              samples: [SampleRow(question: evil, reference: evil, answers: [evil])],
                              settings: [evil: evil])
        let html = ReportRenderer.html(data)
        XCTAssertFalse(html.contains("<script"))
        XCTAssertFalse(html.contains("alert(\"x\")"))
        // title tag, h1, subtitle, note, column heading, question, reference, answer, setting key and value.
        XCTAssertGreaterThanOrEqual(html.components(separatedBy: escaped).count - 1, 10)
        let markdown = ReportRenderer.markdown(data)
        XCTAssertFalse(markdown.contains("<script"))
        XCTAssertTrue(markdown.contains(markdownEscaped), markdown)
        XCTAssertEqual(ReportFormat.markdownText("a &b & c &#1; <i>"), "a &amp;b & c &amp;#1; &lt;i&gt;")
    }

    func testWithoutEvalData() throws {
        var data = try SampleReport.make()
        data.evalLoss = []
        data.metrics = []
        data.samples = data.samples.map { SampleRow(question: $0.question, reference: $0.reference, answers: []) }
        let html = ReportRenderer.html(data)
        XCTAssertTrue(html.contains("No evaluation results."))
        XCTAssertTrue(html.contains("Eval: no data."))
        let svg = try SVGSummary.parse(try XCTUnwrap(Support.svg(in: html)))
        XCTAssertEqual(svg.polylinePointCounts, [60])
        XCTAssertTrue(svg.texts.contains("eval loss (no data)"))
        XCTAssertTrue(ReportRenderer.markdown(data).contains("No evaluation results."))
    }

    func testNoLossPointsSaysNoData() throws {
        let html = ReportRenderer.html(ReportData(title: "empty"))
        let svg = try SVGSummary.parse(try XCTUnwrap(Support.svg(in: html)))
        XCTAssertTrue(svg.texts.contains("no data"))
        XCTAssertEqual(svg.count("polyline"), 0)
        XCTAssertTrue(html.contains("No samples.") && html.contains("No settings recorded."))
        let markdown = ReportRenderer.markdown(ReportData(title: "empty"))
        XCTAssertTrue(markdown.contains("Train: no data."))
        XCTAssertTrue(Support.markdownTables(markdown).isEmpty)
    }

    func testSinglePointIsADot() throws {
        let data = ReportData(title: "one", trainLoss: [CurvePoint(step: 0, value: 2.5)])
        let svg = try SVGSummary.parse(try XCTUnwrap(Support.svg(in: ReportRenderer.html(data))))
        XCTAssertEqual(svg.count("polyline"), 0)
        XCTAssertEqual(svg.count("circle"), 1)
        XCTAssertTrue(svg.texts.contains("train loss (1 point)"))
        XCTAssertTrue(svg.texts.contains("2.0") && svg.texts.contains("3.0"), "y ticks around 2.5: \(svg.texts)")
    }

    func testThousandsOfPointsAreDownsampledAndNonFiniteSkipped() throws {
        var train = (0..<5000).map { CurvePoint(step: $0, value: 2 - Double($0) / 5000) }
        train[3217].value = 9.75  // a spike that must survive downsampling
        train[10].value = .nan
        train[11].value = .infinity
        train[12].value = -.infinity
        let data = ReportData(title: "long", trainLoss: train, evalLoss: [CurvePoint(step: 100, value: .nan)])
        let html = ReportRenderer.html(data)
        let svgText = try XCTUnwrap(Support.svg(in: html))
        let svg = try SVGSummary.parse(svgText)
        XCTAssertEqual(svg.polylinePointCounts.count, 1)
        XCTAssertLessThanOrEqual(svg.polylinePointCounts[0], LossChart.maxDrawnPoints)
        XCTAssertTrue(svg.texts.contains("eval loss (no data)"))
        for value in svg.numericAttributes {
            XCTAssertFalse(value.lowercased().contains("nan") || value.lowercased().contains("inf"), value)
        }
        let drawn = LossChart.drawable(train)
        XCTAssertTrue(drawn.contains { $0.y == 9.75 }, "spike kept")
        XCTAssertTrue(drawn.allSatisfy { $0.y.isFinite })
        XCTAssertEqual(LossChart.drawable(Array(train[8..<14])).count, 3, "three non-finite of six skipped")
        XCTAssertTrue(html.contains("(3 non-finite skipped)"))
    }

    func testSingleColumnPartialReport() throws {
        let data = ReportData(title: "before only",
                              metrics: [MetricsColumn(name: "before", metrics: Support.metrics(bleu: 3, rougeL: 20),
                                                      loss: 2.2, perplexity: 9.03)],
                              samples: [SampleRow(question: "问？", reference: "答。", answers: ["嗯。"])])
        let html = ReportRenderer.html(data)
        XCTAssertFalse(html.contains("Δ"))
        XCTAssertFalse(html.contains("class=\"best\""))
        XCTAssertTrue(html.contains("no comparison yet"))
        let tables = Support.markdownTables(ReportRenderer.markdown(data))
        XCTAssertEqual(tables.count, 2, "metrics and samples")
        for row in tables[0] { XCTAssertEqual(Support.markdownCells(row).count, 2, row) }
        for row in tables[1] { XCTAssertEqual(Support.markdownCells(row).count, 4, row) }
    }

    /// `peft demo --benchmark`: the benchmark's accuracy is a row of the metrics table, higher better.
    func testBenchmarkRow() {
        var before = MetricsColumn(name: "before", loss: 2.0, perplexity: 7.39)
        var after = MetricsColumn(name: "after", loss: 1.5, perplexity: 4.48)
        before.benchmarkAccuracy = 31.25
        after.benchmarkAccuracy = 37.5
        let html = ReportRenderer.metricsHTML([before, after])
        XCTAssertTrue(html.contains("Benchmark accuracy %"))
        XCTAssertTrue(html.contains("<td class=\"best\">37.50</td>"))
        XCTAssertTrue(html.contains("+6.25"))
        let without = ReportRenderer.metricsHTML([MetricsColumn(name: "before", loss: 2.0, perplexity: 7.39)])
        XCTAssertFalse(without.contains("Benchmark"))
    }

    func testBestValueAndDelta() {
        let columns = [
            MetricsColumn(name: "before", metrics: Support.metrics(bleu: 10, rougeL: 30), loss: 2.0, perplexity: 7.39),
            MetricsColumn(name: "after", metrics: Support.metrics(bleu: 10, rougeL: 45.5), loss: 1.5, perplexity: 4.48),
        ]
        let html = ReportRenderer.metricsHTML(columns)
        XCTAssertTrue(html.contains("<td class=\"best\">1.5000</td>"), "lower loss wins")
        XCTAssertTrue(html.contains("<td class=\"good\">−0.5000</td>"))
        XCTAssertTrue(html.contains("<td class=\"best\">45.50</td>"))
        XCTAssertTrue(html.contains("<td class=\"good\">+15.50</td>"))
        XCTAssertTrue(html.contains("<td>10.00</td><td>10.00</td><td>±0.00</td>"), "tie: no highlight")
        XCTAssertFalse(html.contains("Name match"), "rows without values are left out")
        let markdown = ReportRenderer.metricsMarkdown(columns)
        XCTAssertTrue(markdown.contains("| ROUGE-L ↑ | 30.00 | **45.50** | +15.50 |"))
        XCTAssertTrue(markdown.contains("| Eval loss ↓ | 2.0000 | **1.5000** | −0.5000 |"))
        XCTAssertEqual(ReportFormat.bestIndex([nil, 3, .nan], higherIsBetter: true), nil)
        XCTAssertEqual(ReportFormat.bestIndex([1, 3, 2], higherIsBetter: true), 1)
    }

    func testMarkdownTablesHaveTheRightNumberOfColumns() throws {
        var data = try SampleReport.make()
        data.samples.append(SampleRow(question: "a | b \\ c\nsecond line", reference: "x|y", answers: ["only one"]))
        data.settings["pipe|key"] = "v|al"
        let markdown = ReportRenderer.markdown(data)
        let tables = Support.markdownTables(markdown)
        XCTAssertEqual(tables.count, 4, "loss, metrics, samples, settings")
        let expectedWidths = [3, 4, 5, 2]
        for (table, width) in zip(tables, expectedWidths) {
            XCTAssertGreaterThanOrEqual(table.count, 3)
            for row in table { XCTAssertEqual(Support.markdownCells(row).count, width, row) }
        }
        // 11 evenly spaced train steps plus the 5 eval steps, 3 of which coincide with train steps.
        XCTAssertEqual(tables[0].count - 2, 13, "60 train + 5 eval points summarised")
        XCTAssertTrue(tables[0].contains("| 1 | 2.8746 | — |"), "first train step kept")
        XCTAssertTrue(tables[0].contains("| 60 | 0.9485 | 1.0947 |"), "last step has both curves")
        XCTAssertTrue(markdown.contains("second line"))
        XCTAssertTrue(markdown.contains("*(not generated)*"))
    }

    func testMissingAnswersAndExtraAnswers() {
        let data = ReportData(title: "ragged", metrics: [MetricsColumn(name: "before"), MetricsColumn(name: "after")],
                              samples: [SampleRow(question: "q", reference: "r", answers: ["a"]),
                                        SampleRow(question: "q", reference: "r", answers: ["a", "b", "c"])])
        XCTAssertEqual(ReportFormat.answerHeadings(data), ["before", "after", "answer 3"])
        let html = ReportRenderer.html(data)
        XCTAssertEqual(html.components(separatedBy: "(not generated)").count - 1, 2)
    }

    func testReportDataRoundTripsThroughJSON() throws {
        let data = try SampleReport.make()
        let back = try JSONDecoder().decode(ReportData.self, from: JSONEncoder().encode(data))
        XCTAssertEqual(ReportRenderer.html(back), ReportRenderer.html(data))
    }
}

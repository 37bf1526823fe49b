import Foundation
import XCTest
@testable import Evaluation

/// Hand-checked cases and error paths of Metrics and MetricTokenizer (numbers worked out in the comments).
final class MetricsTests: XCTestCase {
    func testTokenizerRules() {
        XCTAssertEqual(MetricTokenizer.tokens("推荐用药：银翘解毒片500mg。"),
                       ["推", "荐", "用", "药", "：", "银", "翘", "解", "毒", "片", "500mg", "。"])
        XCTAssertEqual(MetricTokenizer.tokens("Take 2 tablets, twice a day."),
                       ["Take", "2", "tablets", ",", "twice", "a", "day", "."])
        XCTAssertEqual(MetricTokenizer.tokens("한국어 テスト"), ["한", "국", "어", "テ", "ス", "ト"])
        XCTAssertEqual(MetricTokenizer.tokens("  \n\t\u{3000} "), [])
        XCTAssertEqual(MetricTokenizer.tokens(""), [])
        // Decomposed é is composed first, so it stays inside its word.
        XCTAssertEqual(MetricTokenizer.tokens("cafe\u{301}!"), ["café", "!"])
    }

    func testEmptyInputsGiveZerosNotNaN() throws {
        let m = try Metrics.compute(predictions: ["", "x"], references: ["", ""], nameRegex: "a(b)")
        for value in [m.bleu4, m.rouge1, m.rouge2, m.rougeL] { XCTAssertEqual(value, 0) }
        XCTAssertEqual(m.exactMatch, 50)
        XCTAssertNil(m.nameMatch, "no reference matches, so nothing to judge")
        XCTAssertEqual(m.nameMatchSkipped, 2)
        let none = try Metrics.compute(predictions: [], references: [], nameRegex: nil)
        XCTAssertEqual(none, GenerationMetrics(bleu4: 0, rouge1: 0, rouge2: 0, rougeL: 0, exactMatch: 0, count: 0))
        XCTAssertEqual(Metrics.sentenceBLEU4(prediction: "", reference: "abc"), 0)
        XCTAssertEqual(Metrics.sentenceBLEU4(prediction: "abc", reference: ""), 0)
    }

    func testROUGEByHand() {
        // pred 9 tokens, ref 11: unigram overlap 9 -> F = 2·1·(9/11)/(1+9/11) = 0.9;
        // bigrams 7 of 8 / 7 of 10 -> F = 2·0.875·0.7/1.575 = 0.7777…; LCS 9 -> 0.9.
        let r = Metrics.rouge(prediction: "推荐用药：银翘片。", reference: "推荐用药：银翘解毒片。")
        XCTAssertEqual(r.r1, 90, accuracy: 1e-9)
        XCTAssertEqual(r.r2, 700.0 / 9.0, accuracy: 1e-9)
        XCTAssertEqual(r.rL, 90, accuracy: 1e-9)
    }

    func testNameMatchAndFirstMatch() throws {
        let regex = "推荐用药：([^。]+)"
        XCTAssertEqual(try Metrics.firstMatch(regex, in: "说明。推荐用药：银翘解毒片。推荐用药：别的。"), "银翘解毒片")
        XCTAssertEqual(try Metrics.firstMatch("\\d+mg", in: "每次 500mg"), "500mg", "whole match without groups")
        XCTAssertNil(try Metrics.firstMatch(regex, in: "没有药名"))
        XCTAssertNil(try Metrics.firstMatch("(a)|b", in: "b"), "group 1 not taking part")
        let m = try Metrics.compute(
            predictions: ["推荐用药：银翘解毒片 。", "推荐用药：板蓝根。", "多喝水。", "推荐用药：甲。"],
            references: ["推荐用药：银翘解毒片。", "推荐用药：感冒灵。", "推荐用药：乙。", "请咨询医生。"],
            nameRegex: regex)
        XCTAssertEqual(m.nameMatch ?? -1, 100.0 / 3.0, accuracy: 1e-9, "1 hit of 3 judged (trailing space trimmed)")
        XCTAssertEqual(m.nameMatchSkipped, 1)
        let plain = try Metrics.compute(predictions: ["a"], references: ["a"], nameRegex: nil)
        XCTAssertNil(plain.nameMatch)
        XCTAssertNil(plain.nameMatchSkipped)
    }

    func testErrorsAreTypedAndExplain() {
        XCTAssertThrowsError(try Metrics.compute(predictions: ["a"], references: [], nameRegex: nil)) { error in
            XCTAssertEqual(error as? MetricsError, .countMismatch(predictions: 1, references: 0))
            XCTAssertTrue("\(error)".contains("1 predictions and 0 references"))
        }
        XCTAssertThrowsError(try Metrics.compute(predictions: [], references: [], nameRegex: "([")) { error in
            guard case .invalidRegex(let pattern, _)? = error as? MetricsError else {
                return XCTFail("expected invalidRegex, got \(error)")
            }
            XCTAssertEqual(pattern, "([")
        }
        XCTAssertThrowsError(try Metrics.firstMatch("(", in: "x"))
    }

    func testMetricsRoundTripThroughJSON() throws {
        let m = GenerationMetrics(bleu4: 12.5, rouge1: 40, rouge2: 20, rougeL: 35, exactMatch: 0,
                                  nameMatch: 50, nameMatchSkipped: 1, count: 3)
        let back = try JSONDecoder().decode(GenerationMetrics.self, from: JSONEncoder().encode(m))
        XCTAssertEqual(back, m)
        // Older JSON without the optional fields still decodes.
        let old = #"{"bleu4":1,"rouge1":2,"rouge2":3,"rougeL":4,"exactMatch":5,"count":6}"#
        XCTAssertNil(try JSONDecoder().decode(GenerationMetrics.self, from: Data(old.utf8)).nameMatch)
    }
}

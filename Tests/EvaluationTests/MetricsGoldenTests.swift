import Foundation
import XCTest
@testable import Evaluation

/// Golden values from scripts/make_metric_fixtures.py: nltk 3.10.4 `corpus_bleu` / `sentence_bleu` (method1) and
/// rouge-score 0.1.2 on the tokens of a Python port of MetricTokenizer (see Fixtures/README.md).
final class MetricsGoldenTests: XCTestCase {
    struct Pair: Decodable {
        let index: Int
        let prediction: String
        let reference: String
        let predictionTokens: [String]
        let referenceTokens: [String]
        let sentenceBleu4: Double
        let rouge1: Double
        let rouge2: Double
        let rougeL: Double
    }

    struct Corpus: Decodable {
        let name: String
        let indices: [Int]
        let bleu4: Double
        let rouge1: Double
        let rouge2: Double
        let rougeL: Double
        let exactMatch: Double
        let nameMatch: Double?
        let nameMatchSkipped: Int
        let count: Int
    }

    struct Golden: Decodable {
        let nameRegex: String
        let pairs: [Pair]
        let corpora: [Corpus]
    }

    static func loadGolden() throws -> Golden {
        guard let url = Bundle.module.url(forResource: "metric_fixtures", withExtension: "json",
                                          subdirectory: "Fixtures") else {
            throw XCTSkip("Fixtures/metric_fixtures.json missing from the test bundle; run scripts/make_metric_fixtures.py")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Golden.self, from: Data(contentsOf: url))
    }

    /// |actual - expected| <= rtol * |expected| (+ a tiny atol so that exact zeros compare).
    func assertClose(_ actual: Double, _ expected: Double, rtol: Double = 1e-9, atol: Double = 1e-12,
                     _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(actual.isFinite, "\(message): \(actual) is not finite", file: file, line: line)
        XCTAssertLessThanOrEqual(abs(actual - expected), atol + rtol * abs(expected),
                                 "\(message): got \(actual), expected \(expected)", file: file, line: line)
    }

    func testTokensMatchPythonPort() throws {
        let golden = try Self.loadGolden()
        XCTAssertGreaterThanOrEqual(golden.pairs.count, 15)
        for pair in golden.pairs {
            XCTAssertEqual(MetricTokenizer.tokens(pair.prediction), pair.predictionTokens, "pair \(pair.index) prediction")
            XCTAssertEqual(MetricTokenizer.tokens(pair.reference), pair.referenceTokens, "pair \(pair.index) reference")
        }
    }

    func testSentenceBLEUAndROUGEMatchReference() throws {
        let golden = try Self.loadGolden()
        for pair in golden.pairs {
            let bleu = Metrics.sentenceBLEU4(prediction: pair.prediction, reference: pair.reference)
            assertClose(bleu, pair.sentenceBleu4, "pair \(pair.index) sentence BLEU-4")
            let r = Metrics.rouge(prediction: pair.prediction, reference: pair.reference)
            assertClose(r.r1, pair.rouge1, "pair \(pair.index) ROUGE-1")
            assertClose(r.r2, pair.rouge2, "pair \(pair.index) ROUGE-2")
            assertClose(r.rL, pair.rougeL, "pair \(pair.index) ROUGE-L")
        }
    }

    func testCorpusMetricsMatchReference() throws {
        let golden = try Self.loadGolden()
        XCTAssertTrue(golden.corpora.contains { $0.bleu4 == 0 && $0.rouge1 > 0 }, "fixture lacks a zero-BLEU corpus")
        for corpus in golden.corpora {
            let pairs = corpus.indices.map { golden.pairs[$0] }
            let m = try Metrics.compute(predictions: pairs.map(\.prediction), references: pairs.map(\.reference),
                                        nameRegex: golden.nameRegex)
            assertClose(m.bleu4, corpus.bleu4, "\(corpus.name) BLEU-4")
            assertClose(m.rouge1, corpus.rouge1, "\(corpus.name) ROUGE-1")
            assertClose(m.rouge2, corpus.rouge2, "\(corpus.name) ROUGE-2")
            assertClose(m.rougeL, corpus.rougeL, "\(corpus.name) ROUGE-L")
            assertClose(m.exactMatch, corpus.exactMatch, "\(corpus.name) exact match")
            XCTAssertEqual(m.nameMatch == nil, corpus.nameMatch == nil, "\(corpus.name) name match presence")
            if let got = m.nameMatch, let want = corpus.nameMatch { assertClose(got, want, "\(corpus.name) name match") }
            XCTAssertEqual(m.nameMatchSkipped, corpus.nameMatchSkipped, "\(corpus.name) name match skipped")
            XCTAssertEqual(m.count, corpus.count, "\(corpus.name) count")
        }
    }
}

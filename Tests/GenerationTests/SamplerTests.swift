import Foundation
@testable import Generation
import TestSupport
import XCTest

/// The sampler's logits processors against transformers' own (scripts/make_sampling_fixtures.py), and seeded draws.
final class SamplerTests: XCTestCase {
    struct Golden: Decodable {
        struct Case: Decodable { let name: String; let scores: [Float?] }
        let logits: [Float]
        let history: [Int32]
        let cases: [Case]
    }

    func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Data(contentsOf: fixtureURL("golden/sampling.json")))
    }

    /// -inf where transformers has null; finite values to f32 rounding.
    func check(_ ours: [Float], _ expected: [Float?], _ name: String) {
        XCTAssertEqual(ours.count, expected.count)
        for (i, (o, e)) in zip(ours, expected).enumerated() {
            if let e { XCTAssertEqual(o, e, accuracy: 1e-5 * max(1, abs(e)), "\(name) [\(i)]") } else {
                XCTAssertEqual(o, -.infinity, "\(name) [\(i)] should be filtered")
            }
        }
    }

    func testProcessorsMatchTransformers() throws {
        let g = try golden()
        for c in g.cases {
            var x = g.logits
            switch c.name {
            case "repetition_1.3": TokenSampler.applyRepetitionPenalty(&x, history: g.history, penalty: 1.3)
            case "no_repeat_2": TokenSampler.banRepeatedNgrams(&x, history: g.history, n: 2)
            case "no_repeat_3": TokenSampler.banRepeatedNgrams(&x, history: g.history, n: 3)
            case "temperature_0.7": x = x.map { $0 / 0.7 }
            case "top_k_5": TokenSampler.keepTopK(&x, k: 5)
            case "top_p_0.8": TokenSampler.keepTopP(&x, p: 0.8)
            case "min_p_0.1": TokenSampler.keepMinP(&x, p: 0.1)
            case "min_p_0.05_after_temperature":
                x = x.map { $0 / 0.7 }
                TokenSampler.keepMinP(&x, p: 0.05)
            case "all":
                TokenSampler.applyRepetitionPenalty(&x, history: g.history, penalty: 1.1)
                TokenSampler.banRepeatedNgrams(&x, history: g.history, n: 2)
                x = x.map { $0 / 0.7 }
                TokenSampler.keepTopK(&x, k: 20)
                TokenSampler.keepTopP(&x, p: 0.8)
            default: XCTFail("unknown case \(c.name)")
            }
            check(x, c.scores, c.name)
        }
    }

    /// OpenAI's frequency and presence penalties (as vLLM applies them: generated tokens only), by the definition.
    func testFrequencyAndPresencePenalties() {
        let logits: [Float] = [1, 2, 3, 4, 5, 6]
        let history: [Int32] = [5, 5, 1, 2, 2, 2, 4]   // prompt [5, 5, 1], generated [2, 2, 2, 4]
        var x = logits
        TokenSampler.applyOccurrencePenalties(&x, generated: history.suffix(4), frequency: 0.5, presence: 0.25)
        XCTAssertEqual(x, [1, 2, 3 - 1.5 - 0.25, 4, 5 - 0.5 - 0.25, 6])
        var o = SamplingOptions()
        o.presencePenalty = 2
        var greedy = TokenSampler(options: o)
        // 5 leads by 1; generated once, it drops below 4.
        XCTAssertEqual(greedy.next(logits: logits, history: [5], generated: 1), 4)
        XCTAssertEqual(greedy.next(logits: logits, history: [5], generated: 0), 5, "prompt tokens are not penalised")
        o.presencePenalty = 3
        XCTAssertThrowsError(try o.validate())
    }

    func testSeededSamplingIsReproducibleAndRespectsFilters() throws {
        let g = try golden()
        var o = SamplingOptions()
        o.temperature = 0.9
        o.topK = 5
        o.seed = 3
        var a = TokenSampler(options: o), b = TokenSampler(options: o)
        let drawsA = (0..<50).map { _ in a.next(logits: g.logits, history: []) }
        let drawsB = (0..<50).map { _ in b.next(logits: g.logits, history: []) }
        XCTAssertEqual(drawsA, drawsB)
        var top = g.logits
        TokenSampler.keepTopK(&top, k: 5)
        XCTAssertTrue(drawsA.allSatisfy { top[Int($0)] > -.infinity }, "only top-5 tokens are drawn")
        XCTAssertGreaterThan(Set(drawsA).count, 1)
        var greedy = TokenSampler(options: SamplingOptions())
        XCTAssertEqual(Int(greedy.next(logits: g.logits, history: [])), g.logits.indices.max { g.logits[$0] < g.logits[$1] })
    }

    func testGenerationConfigDefaults() throws {
        let (o, eos) = try SamplingOptions.defaults(directory: modelFixture("tiny-qwen2"))
        XCTAssertEqual(eos, [302, 300])
        XCTAssertEqual(o.temperature, 0.7)
        XCTAssertEqual(o.topK, 20)
        XCTAssertEqual(o.topP, 0.8, accuracy: 1e-6)
        XCTAssertEqual(o.repetitionPenalty, 1.05, accuracy: 1e-6)
        var bad = SamplingOptions()
        bad.topP = 0
        XCTAssertThrowsError(try bad.validate())
    }
}

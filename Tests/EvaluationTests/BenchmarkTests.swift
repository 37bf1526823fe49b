import Evaluation
import Foundation
import Tokenizer
import Transformer
import XCTest

/// MMLU, C-Eval and CMMLU in their own layouts against a torch re-implementation of LLaMA-Factory's evaluator
/// (scripts/make_benchmark_fixtures.py): the letters' scores, the predictions, the prompt's length.
final class BenchmarkTests: XCTestCase {
    struct Golden: Decodable {
        struct Subject: Decodable {
            let predictions: [String]
            let category: String
            let scores: [[Double]]
            let prompt_tokens: Int
            let correct: Int?
        }
        let split: String
        let argmax_2shot: [String: Subject]
        let loglikelihood_1shot: [String: Subject]?
    }

    static var fixtures: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
    }

    func check(_ kind: BenchmarkKind, scoring: BenchmarkEvaluator.Scoring, shots: Int,
               expected: (Golden) -> [String: Golden.Subject]?) throws {
        for reuse in [true, false] { try check(kind, scoring: scoring, shots: shots, reuse: reuse, expected: expected) }
    }

    func check(_ kind: BenchmarkKind, scoring: BenchmarkEvaluator.Scoring, shots: Int, reuse: Bool,
               expected: (Golden) -> [String: Golden.Subject]?) throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("golden/benchmark-\(kind.rawValue).json")))
        let want = try XCTUnwrap(expected(golden))
        let modelURL = Self.fixtures.appendingPathComponent("models/tiny-qwen2-prune")
        let model = try TransformerModel.load(directory: modelURL, dtype: .float32)
        let tokenizer = try Tokenizer.load(directory: modelURL)
        let subjects = try BenchmarkData.load(kind, directory: Self.fixtures.appendingPathComponent("benchmarks/\(kind.rawValue)"),
                                              split: golden.split)
        XCTAssertEqual(Set(subjects.map(\.id)), Set(want.keys))
        var evaluator = BenchmarkEvaluator(model: model, tokenizer: tokenizer, kind: kind)
        evaluator.nShot = shots
        evaluator.scoring = scoring
        evaluator.batchSize = 3
        evaluator.reuseSharedPrefix = reuse
        let result = try evaluator.evaluate(subjects)
        var correct = 0, answered = 0
        for s in result.subjects {
            let w = try XCTUnwrap(want[s.subject])
            XCTAssertEqual(s.predictions, w.predictions, "\(kind) \(s.subject) reuse \(reuse)")
            XCTAssertEqual(s.category, w.category)
            for (a, b) in zip(s.scores.joined(), w.scores.joined()) { XCTAssertEqual(a, b, accuracy: 1e-4, "\(kind) \(s.subject)") }
            if let c = w.correct { XCTAssertEqual(s.correct, c); correct += c; answered += s.answered }
            let subject = try XCTUnwrap(subjects.first { $0.id == s.subject })
            XCTAssertEqual(evaluator.prompt(subject, subject.questions.last!, shots: shots).count, w.prompt_tokens)
        }
        XCTAssertEqual(result.average ?? -1, Double(correct) / Double(answered), accuracy: 1e-12)
    }

    func testMMLUArgmax() throws { try check(.mmlu, scoring: .argmax, shots: 2) { $0.argmax_2shot } }
    func testMMLULoglikelihood() throws { try check(.mmlu, scoring: .loglikelihood, shots: 1) { $0.loglikelihood_1shot } }
    func testCEvalArgmax() throws { try check(.ceval, scoring: .argmax, shots: 2) { $0.argmax_2shot } }
    func testCMMLUArgmax() throws { try check(.cmmlu, scoring: .argmax, shots: 2) { $0.argmax_2shot } }

    func testLayoutsAndBadFiles() throws {
        let mmlu = try BenchmarkData.load(.mmlu, directory: Self.fixtures.appendingPathComponent("benchmarks/mmlu"), split: "test")
        let algebra = try XCTUnwrap(mmlu.first { $0.id == "abstract_algebra" })
        XCTAssertEqual(algebra.name, "abstract algebra")
        XCTAssertEqual(algebra.dev.count, 3)
        XCTAssertTrue(algebra.questions[1].question.contains("\nyes, no"))
        // C-Eval's test split has no answers; CMMLU has no val split.
        let cevalTest = try BenchmarkData.load(.ceval, directory: Self.fixtures.appendingPathComponent("benchmarks/ceval"), split: "test")
        XCTAssertTrue(cevalTest.allSatisfy { $0.questions.allSatisfy { $0.answer == nil } })
        XCTAssertThrowsError(try BenchmarkData.load(.cmmlu, directory: Self.fixtures.appendingPathComponent("benchmarks/cmmlu"), split: "val")) {
            XCTAssertTrue("\($0)".contains("no val/ folder"), "\($0)")
        }
        // A broken file names itself and the row.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        for split in ["dev", "test"] { try FileManager.default.createDirectory(at: dir.appendingPathComponent(split), withIntermediateDirectories: true) }
        try Data(",Question,A,B,C,D,Answer\n0,q,a,b,c,d,A\n".utf8).write(to: dir.appendingPathComponent("dev/x.csv"))
        try Data(",Question,A,B,C,D,Answer\n0,q,a,b,c,d,A\n1,q,a,b,c,d,E\n".utf8).write(to: dir.appendingPathComponent("test/x.csv"))
        XCTAssertThrowsError(try BenchmarkData.load(.cmmlu, directory: dir, split: "test")) {
            XCTAssertTrue("\($0)".contains("x.csv: row 3: answer 'E'"), "\($0)")
        }
        try Data(",Question,A,B,C,D,Answer\n0,\"q,a,b,c,d,A\n".utf8).write(to: dir.appendingPathComponent("test/x.csv"))
        XCTAssertThrowsError(try BenchmarkData.load(.cmmlu, directory: dir, split: "test")) {
            XCTAssertTrue("\($0)".contains("not closed"), "\($0)")
        }
    }
}

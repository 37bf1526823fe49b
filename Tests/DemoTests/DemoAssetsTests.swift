@testable import Demo
import Foundation
import TestSupport
import Tokenizer
import Training
import Transformer
import XCTest

/// The embedded demo assets stay in sync with Data/, and the built-in model is deterministic and loadable.
final class DemoAssetsTests: XCTestCase {
    func read(_ relative: String) throws -> String {
        try String(contentsOf: packageRoot().appendingPathComponent(relative), encoding: .utf8)
    }

    func testEmbeddedCopiesMatchTheDataFolder() throws {
        // Regenerate with scripts/make_demo_assets.py when Data/ changes.
        XCTAssertEqual(DemoAssets.trainJSONL + "\n", try read("Data/demo/train.jsonl"))
        XCTAssertEqual(DemoAssets.testJSONL + "\n", try read("Data/demo/test.jsonl"))
        XCTAssertEqual(DemoAssets.dataCard + "\n", try read("Data/demo/DATA_CARD.md"))
        XCTAssertEqual(DemoAssets.tokenizerJSON, try read("Data/demo-model/tokenizer.json").trimmingCharacters(in: .newlines))
    }

    func testSplitsAndNameRegexFitTheData() throws {
        let dir = try TemporaryDirectory("demo-data")
        defer { dir.cleanup() }
        try DemoData.write(to: dir.url)
        let train = try DataLoader.load(dir.url.appendingPathComponent("train.jsonl"))
        let test = try DataLoader.load(dir.url.appendingPathComponent("test.jsonl"))
        XCTAssertEqual(train.conversations.count, 80)
        XCTAssertEqual(test.conversations.count, 20)
        let re = try NSRegularExpression(pattern: DemoData.nameRegex)
        func name(_ s: String) -> String? {
            re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)).flatMap { Range($0.range(at: 1), in: s) }.map { String(s[$0]) }
        }
        let trainNames = Set(train.conversations.compactMap { name($0.turns[0].answer) })
        XCTAssertEqual(trainNames.count, 20)
        for c in test.conversations {
            let n = try XCTUnwrap(name(c.turns[0].answer))
            XCTAssertTrue(trainNames.contains(n), n)
            XCTAssertEqual(c.turns[0].instruction, DemoData.instruction)
        }
    }

    func testBuiltInModelIsDeterministicAndLoads() throws {
        let a = try TemporaryDirectory("demo-a"), b = try TemporaryDirectory("demo-b")
        defer { a.cleanup(); b.cleanup() }
        try DemoModel.write(to: a.url.appendingPathComponent("m"))
        try DemoModel.write(to: b.url.appendingPathComponent("m"))
        let wa = try Data(contentsOf: a.url.appendingPathComponent("m/model.safetensors"))
        XCTAssertEqual(wa, try Data(contentsOf: b.url.appendingPathComponent("m/model.safetensors")))
        let model = try TransformerModel.load(directory: a.url.appendingPathComponent("m"), dtype: .float32)
        XCTAssertEqual(model.config.parameterCount, DemoModel.parameterCount)
        let tok = try Tokenizer.load(directory: a.url.appendingPathComponent("m"))
        XCTAssertLessThanOrEqual(tok.vocabularySize, model.config.vocabSize)
        XCTAssertEqual(ChatTemplate.detect(from: tok.config), .chatml)
        let ids = tok.encode("推荐用药：银翘解毒片。")
        XCTAssertEqual(tok.decode(ids), "推荐用药：银翘解毒片。")
        let logits = model.logits(PackedBatch(sequences: [ids]))
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
    }
}

import Foundation
import TestSupport
import Tokenizer
import Training
import XCTest

/// Record formats, their errors, and the exact label layout of formatted examples.
final class DataAndLabelsTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func write(_ name: String, _ text: String) throws -> URL {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    func tokenizer() throws -> Tokenizer { try Tokenizer.load(directory: modelFixture("tiny-qwen2")) }

    func testLabelsAreExactlyAnswerAndEndOfTurn() throws {
        let tok = try tokenizer()
        let formatter = try ChatFormatter(template: .chatml, tokenizer: tok)
        let builder = ExampleBuilder(formatter: formatter, maxLength: 512)
        let conversation = Conversation(turns: [
            .init(instruction: "使用中医知识正确回答适合这个病例的中成药。", input: "我咳嗽痰多。", answer: "推荐用药：银翘解毒片。"),
        ])
        let example = try XCTUnwrap(try builder.example(conversation))
        let labelled = example.labels.filter { $0 >= 0 }
        let imEnd = try XCTUnwrap(tok.id(forToken: "<|im_end|>"))
        // Exactly the separately-tokenized answer followed by <|im_end|>.
        XCTAssertEqual(labelled, tok.encode("推荐用药：银翘解毒片。", addSpecialTokens: false) + [imEnd])
        // And they sit at the end: the prompt is the whole prefix before them.
        let prompt = try builder.promptIDs(conversation)
        XCTAssertEqual(Array(example.ids.prefix(prompt.count)), prompt)
        XCTAssertEqual(example.ids.count, prompt.count + labelled.count)
        // labels[t] predicts ids[t+1]: the first label sits on the last prompt row.
        XCTAssertEqual(example.labels[prompt.count - 1], labelled[0])
        XCTAssertTrue(example.labels[..<(prompt.count - 1)].allSatisfy { $0 == -100 })
        XCTAssertEqual(example.labels.last, -100)
        // The default system prompt of the fixture's template is rendered.
        XCTAssertTrue(tok.decode(prompt).hasPrefix("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"))
        XCTAssertTrue(tok.decode(prompt).contains("使用中医知识正确回答适合这个病例的中成药。\n我咳嗽痰多。<|im_end|>"))
    }

    func testMultiTurnTrainsEveryAssistantTurnOnly() throws {
        let tok = try tokenizer()
        let builder = ExampleBuilder(formatter: try ChatFormatter(template: .chatml, tokenizer: tok), maxLength: 512)
        let c = Conversation(system: "S", turns: [.init(instruction: "q1", answer: "a1"), .init(instruction: "q2", answer: "a2")])
        let e = try XCTUnwrap(try builder.example(c))
        let imEnd = tok.id(forToken: "<|im_end|>")!
        let expected = tok.encode("a1", addSpecialTokens: false) + [imEnd] + tok.encode("a2", addSpecialTokens: false) + [imEnd]
        XCTAssertEqual(e.labels.filter { $0 >= 0 }, expected)
    }

    func testPlainTemplateLaysOutInstructionInputAnswer() throws {
        let tok = try tokenizer()
        let builder = ExampleBuilder(formatter: try ChatFormatter(template: .plain, tokenizer: tok), maxLength: 512)
        let with = Conversation(turns: [.init(instruction: "I", input: "X", answer: "A")])
        XCTAssertEqual(tok.decode(try builder.promptIDs(with)), "Instruction: I\nInput: X\nAnswer: ")
        let without = Conversation(turns: [.init(instruction: "I", answer: "A")])
        XCTAssertEqual(tok.decode(try builder.promptIDs(without)), "Instruction: I\nAnswer: ")
        let e = try XCTUnwrap(try builder.example(with))
        XCTAssertEqual(e.labels.filter { $0 >= 0 }, tok.encode("A", addSpecialTokens: false) + [tok.eosTokenID!])
    }

    func testTruncationDropsExamplesWithoutAnswerTokens() throws {
        let tok = try tokenizer()
        let formatter = try ChatFormatter(template: .chatml, tokenizer: tok)
        let short = Conversation(turns: [.init(instruction: "q", answer: "a long answer that will be cut")])
        // Room for the prompt and two answer tokens.
        let limit = try ExampleBuilder(formatter: formatter, maxLength: 512).promptIDs(short).count + 2
        let builder = ExampleBuilder(formatter: formatter, maxLength: limit)
        let long = Conversation(turns: [.init(instruction: String(repeating: "很长的问题", count: 20), answer: "答")])
        let built = try builder.build([long, short])
        XCTAssertEqual(built.dropped, 1)
        XCTAssertEqual(built.examples.count, 1)
        let kept = try XCTUnwrap(built.examples.first)
        XCTAssertEqual(kept.ids.count, limit)
        // Two answer tokens fit in the window; each is the label of the row before it.
        XCTAssertEqual(kept.labelCount, 2)
    }

    func testAllThreeFormatsInJSONAndJSONL() throws {
        let alpaca = try write("a.jsonl", """
        {"instruction": "i1", "input": "x", "output": "o1", "system": "s", "history": [["h", "ha"]]}

        {"instruction": "i2", "output": "o2"}
        """)
        let a = try DataLoader.load(alpaca)
        XCTAssertEqual(a.format, .alpaca)
        XCTAssertEqual(a.conversations[0], Conversation(system: "s", turns: [.init(instruction: "h", answer: "ha"),
                                                                              .init(instruction: "i1", input: "x", answer: "o1")]))
        let sharegpt = try write("s.json", """
        [{"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"},
                            {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}]}]
        """)
        let s = try DataLoader.load(sharegpt)
        XCTAssertEqual(s.format, .sharegpt)
        XCTAssertEqual(s.conversations[0].turns.count, 2)
        XCTAssertEqual(s.conversations[0].system, "S")
        let messages = try write("m.jsonl", #"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#)
        XCTAssertEqual(try DataLoader.load(messages).conversations[0].turns[0].answer, "a")
    }

    func testBadRecordsNameFileRecordAndField() throws {
        func expect(_ text: String, _ fragments: [String], name: String = "bad.jsonl", line: UInt = #line) throws {
            let url = try write(name, text)
            XCTAssertThrowsError(try DataLoader.load(url), line: line) { error in
                for f in fragments { XCTAssertTrue("\(error)".contains(f), "\(error) lacks \(f)", line: line) }
            }
        }
        try expect("{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\"}\n", ["bad.jsonl", "record 2", "field 'output'", "missing"])
        try expect("{\"instruction\": \"a\", \"output\": \"\"}\n", ["record 1", "empty answer"])
        try expect("{\"instruction\": \"a\", \"output\": \"b\"}\n{broken\n", ["record 2", "malformed JSON on line 2"])
        try expect("[{\"instruction\": 1}", ["malformed JSON array"], name: "bad.json")
        try expect(#"{"messages": [{"role": "user", "content": "q"}]}"#, ["record 1", "field 'messages'", "without an assistant answer"])
        try expect(#"{"text": "plain"}"#, ["unknown record format"])
        XCTAssertThrowsError(try DataLoader.load(dir.appendingPathComponent("missing.jsonl"))) { error in
            XCTAssertTrue("\(error)".contains("not found"), "\(error)")
        }
    }

    func testSkipInvalidCountsDroppedRecords() throws {
        let url = try write("mixed.jsonl", """
        {"instruction": "a", "output": "b"}
        {"instruction": "c"}
        ["not an object"]
        {"instruction": "d", "output": "e"}
        """)
        let loaded = try DataLoader.load(url, skipInvalid: true)
        XCTAssertEqual(loaded.conversations.count, 2)
        XCTAssertEqual(loaded.skipped.count, 2)
        XCTAssertTrue(loaded.skipped[0].contains("record 2"))
    }

    func testScheduleShapes() {
        let linear = LRSchedule(kind: .linear, peak: 1, warmupSteps: 2, totalSteps: 10)
        XCTAssertEqual((0..<10).map { linear.rate(at: $0) }, [0, 0.5, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])
        let cosine = LRSchedule(kind: .cosine, peak: 1, warmupSteps: 0, totalSteps: 4)
        XCTAssertEqual(cosine.rate(at: 0), 1, accuracy: 1e-12)
        XCTAssertEqual(cosine.rate(at: 2), 0.5, accuracy: 1e-12)
        // transformers: "constant" ignores warmup; "constant_with_warmup" ramps first.
        let constant = LRSchedule(kind: .constant, peak: 3, warmupSteps: 1, totalSteps: 4)
        XCTAssertEqual([0, 1, 3].map { constant.rate(at: $0) }, [3, 3, 3])
        let warm = LRSchedule(kind: .constantWithWarmup, peak: 3, warmupSteps: 1, totalSteps: 4)
        XCTAssertEqual([0, 1, 3].map { warm.rate(at: $0) }, [0, 3, 3])
        XCTAssertEqual(LRSchedule.warmupSteps(ratio: 0.03, total: 100), 3)
        XCTAssertEqual(LRSchedule.warmupSteps(ratio: 0.1, total: 15), 2)
    }

    func testStepPlanCoversEveryExampleOncePerEpochAndIsSeeded() {
        var o = TrainingOptions()
        o.batchSize = 3
        o.gradientAccumulation = 2
        o.epochs = 2
        let plan = StepPlan(exampleCount: 10, options: o)
        XCTAssertEqual(plan.stepsPerEpoch, 2)   // 4 micro-batches / 2
        XCTAssertEqual(plan.steps.count, 4)
        let epoch0 = plan.steps.filter { $0.epoch == 0 }.flatMap { $0.microBatches.flatMap { $0 } }
        XCTAssertEqual(epoch0.sorted(), Array(0..<10))
        XCTAssertTrue(plan.steps[1].endsEpoch)
        let again = StepPlan(exampleCount: 10, options: o)
        XCTAssertEqual(again.steps.map(\.microBatches), plan.steps.map(\.microBatches))
        o.seed = 7
        XCTAssertNotEqual(StepPlan(exampleCount: 10, options: o).steps.map(\.microBatches), plan.steps.map(\.microBatches))
    }
}

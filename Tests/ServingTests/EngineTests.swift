import Foundation
import Generation
import Serving
import TestSupport
import Tokenizer
import Transformer
import XCTest

/// The batching engine without HTTP: cancellation frees slots, graceful shutdown finishes what runs, the queue's
/// bound, and continuous batching equal to decoding alone with requests joining at different steps.
final class EngineTests: XCTestCase {
    func makeEngine(maxBatch: Int = 4, maxQueue: Int = 8) throws -> (BatchEngine, TransformerModel) {
        let dir = modelFixture("tiny-qwen2")
        let model = try TransformerModel.load(directory: dir, dtype: .float32)
        var settings = BatchEngine.Settings(maxModelLength: 128)
        settings.maxBatch = maxBatch
        settings.maxQueue = maxQueue
        settings.prefillChunk = 8
        return (BatchEngine(model: model, tokenizer: try Tokenizer.load(directory: dir), settings: settings), model)
    }

    func job(_ prompt: [Int32], max: Int, adapter: ModelAdapter? = nil) -> GenerationJob {
        var o = SamplingOptions()
        o.maxNewTokens = max
        return GenerationJob(prompt: prompt, modelName: "tiny", adapter: adapter, options: o, stopIDs: [], stopStrings: [])
    }

    func testCancellingFreesTheSlotAndStopsGenerating() async throws {
        let (engine, _) = try makeEngine(maxBatch: 1)
        engine.start()
        let (id, events) = try engine.submitCancellable(job([5, 6, 7], max: 120))
        var sawFinish = false, pieces = 0
        for await e in events {
            if case .text = e { pieces += 1; if pieces == 1 { engine.cancel(id) } }
            if case .finished = e { sawFinish = true }
        }
        XCTAssertFalse(sawFinish, "a cancelled generation does not run to its end")
        // The slot is free: the next request runs (max batch 1).
        var reason: String?
        for await e in try engine.submit(job([8, 9], max: 3)) { if case .finished(let o) = e { reason = o.finishReason } }
        XCTAssertEqual(reason, "length")
        engine.shutdown()
        await engine.finished()
    }

    func testShutdownFinishesQueuedAndRunningThenRefuses() async throws {
        let (engine, _) = try makeEngine(maxBatch: 1, maxQueue: 2)
        engine.pauseAdmission(true)
        let streams = try (0..<2).map { _ in try engine.submit(job([5, 6, 7], max: 20)) }
        XCTAssertThrowsError(try engine.submit(job([1], max: 1))) { XCTAssertTrue("\($0)".contains("busy")) }
        engine.start()
        engine.shutdown()   // also lifts the pause: what was accepted is finished
        XCTAssertThrowsError(try engine.submit(job([1], max: 1))) { XCTAssertTrue("\($0)".contains("shutting down")) }
        for s in streams {
            var outcome: GenerationOutcome?
            for await e in s { if case .finished(let o) = e { outcome = o } }
            XCTAssertEqual(outcome?.completionTokens, 20)
        }
        await engine.finished()
    }

    /// Requests arriving while others decode give the tokens they give alone.
    func testJoiningMidwayEqualsAlone() async throws {
        let (engine, _) = try makeEngine(maxBatch: 4)
        engine.start()
        let prompts: [[Int32]] = [[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19], [40], [77, 78, 79], [100, 3, 9, 200, 17]]
        func collect(_ s: AsyncStream<GenerationEvent>) async -> String {
            var text = ""
            for await e in s { if case .text(let t) = e { text += t } }
            return text
        }
        var alone: [String] = []
        for p in prompts { alone.append(await collect(try engine.submit(job(p, max: 24)))) }
        var together = [String](repeating: "", count: prompts.count)
        try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (i, p) in prompts.enumerated() {
                let s = try engine.submit(job(p, max: 24))
                group.addTask { (i, await collect(s)) }
                try await Task.sleep(for: .milliseconds(3))   // later requests join a running batch
            }
            for try await (i, t) in group { together[i] = t }
        }
        XCTAssertEqual(together, alone)
        engine.shutdown()
        await engine.finished()
    }
}

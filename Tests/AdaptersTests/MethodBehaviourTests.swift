import Adapters
import Foundation
import Kernels
import ModelIO
import TestSupport
import Transformer
import XCTest

/// What every method must do without a reference: finite-difference gradients through the whole stack (DoRA with
/// dropout on), KV-cache decoding equal to the full forward (virtual tokens and prefixes in the cache), save/load
/// round trips and identity at PEFT's initialisation.
final class MethodBehaviourTests: XCTestCase {
    /// Every method, in its training form, with non-degenerate random parameters.
    func adapters(_ m: TransformerModel) throws -> [(String, TrainableAdapter)] {
        var rng = SeededGenerator(seed: 8)
        func randomise(_ a: TrainableAdapter, scale: Float, around center: Float = 0) -> TrainableAdapter {
            for i in 0..<a.parameterCount { a.parameters[i] = center + rng.nextNormal() * scale }
            a.parametersDidChange()
            return a
        }
        let dora = try LoRAAdapter(config: LoRAConfig(r: 2, alpha: 4, dropout: 0.3, targetModules: .allLinear, useDoRA: true),
                                   model: m.config)
        dora.initialize(seed: 3, weights: m.weights)
        for s in dora.orderedSites {
            for i in 0..<(s.outFeatures * s.rank) { dora.parameters[s.bOffset + i] = rng.nextNormal() * 0.3 }
            for j in 0..<s.outFeatures { dora.parameters[s.magnitudeOffset! + j] *= 1 + 0.2 * rng.nextNormal() }
        }
        dora.parametersDidChange()
        var ptuning = PromptLearningConfig(method: .ptuning, virtualTokens: 3)
        ptuning.encoderHiddenSize = 8
        var projected = PromptLearningConfig(method: .prefix, virtualTokens: 2)
        projected.prefixProjection = true
        projected.encoderHiddenSize = 6
        let pt = try PromptLearningAdapter(config: ptuning, model: m.config)
        pt.initialize(seed: 4)
        let pp = try PromptLearningAdapter(config: projected, model: m.config)
        pp.initialize(seed: 5)
        var houlsby = BottleneckConfig(.houlsby)
        houlsby.nonLinearity = .gelu
        houlsby.reductionFactor = 8
        return [
            ("dora", dora),
            ("ia3", randomise(try IA3Adapter(config: IA3Config(targetModules: .allLinear, feedforwardModules: ["down_proj", "up_proj"]),
                                             model: m.config), scale: 0.3, around: 1)),
            ("prompt", randomise(try PromptLearningAdapter(config: PromptLearningConfig(method: .prompt, virtualTokens: 3), model: m.config), scale: 0.5)),
            ("ptuning", pt),
            ("prefix", randomise(try PromptLearningAdapter(config: PromptLearningConfig(method: .prefix, virtualTokens: 3), model: m.config), scale: 0.7)),
            ("prefix-proj", pp),
            ("houlsby", randomise(try BottleneckAdapter(config: houlsby, model: m.config), scale: 0.2)),
            ("pfeiffer", randomise(try BottleneckAdapter(config: BottleneckConfig(.pfeiffer), model: m.config), scale: 0.2)),
            ("parallel", randomise(try BottleneckAdapter(config: BottleneckConfig(.parallel), model: m.config), scale: 0.2)),
        ]
    }

    func testFiniteDifferenceGradientsOfEveryMethod() throws {
        for arch in ["tiny-qwen2", "tiny-qwen3"] {
            let m = try TransformerModel.load(directory: modelFixture(arch), dtype: .float32)
            for (name, adapter) in try adapters(m) {
                m.adapter = adapter
                let batch = PackedBatch(sequences: [[3, 9, 27, 81, 243, 5, 7], [11, 13, 17, 19]])
                let labels: [Int32] = [9, 27, 81, 243, 5, 7, -100, 13, -100, 19, -100]
                let context = PassContext(training: true, randomKey: 99)
                func run() -> Double {
                    let b = m.makeBuffers(batches: [batch.lengths], policy: .keepAll)
                    adapter.reserve(rows: b.capacity)
                    adapter.zeroGradients()
                    let loss = m.forwardBackward(batch, labels: labels, gradScale: 1, buffers: b, context: context).lossSum
                    adapter.finishGradients()
                    return loss
                }
                _ = run()
                let analytic = adapter.gradients.array
                // A few entries of every named tensor.
                let probes = adapter.namedParameters.flatMap { p in [p.offset, p.offset + p.count / 2, p.offset + p.count - 1] }
                let base = adapter.parameters.array
                // DoRA's weight norm is detached (as in PEFT): it is cached per parameter version, so leaving the
                // version alone while probing differentiates with the norm held fixed. Prompt encoders must rerun.
                let encoder = adapter is PromptLearningAdapter
                // ReLU encoders and adapters have kinks: a smaller step keeps the probes on one side of them.
                let step: Float = ["ptuning", "pfeiffer", "parallel"].contains(name) ? 2e-3 : 1e-2
                let fd = finiteDifferenceGradient(base, indices: probes, step: step) { values in
                    for (i, v) in values.enumerated() { adapter.parameters[i] = v }
                    if encoder { adapter.parametersDidChange() }
                    defer {
                        for (i, v) in base.enumerated() { adapter.parameters[i] = v }
                        if encoder { adapter.parametersDidChange() }
                    }
                    return run()
                }
                // Central differences on a summed loss: ~1e-2 relative agreement.
                assertClose(probes.map { analytic[$0] }, fd, atol: 3e-3, rtol: 3e-2, "\(arch) \(name)")
            }
        }
    }

    func testDecodeWithCacheEqualsFullForward() throws {
        let m = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let prompt: [Int32] = [301, 17, 42, 99, 3, 302, 198, 301]
        let next: [Int32] = [250, 7]
        for (name, adapter) in try adapters(m) {
            m.adapter = adapter
            let V = m.config.vocabSize
            let full = m.logits(PackedBatch(sequences: [prompt + next]))
            let session = DecodeSession(model: m, capacity: 64, chunkRows: 3)   // chunks cross the virtual rows
            let first = try session.append(prompt)
            assertClose(first, Array(full[(prompt.count - 1) * V..<prompt.count * V]), atol: 1e-4, "\(name) prefill")
            _ = try session.append([next[0]])
            let last = try session.append([next[1]])
            assertClose(last, Array(full[(prompt.count + 1) * V..<(prompt.count + 2) * V]), atol: 1e-4, "\(name) decode")
            XCTAssertEqual(session.tokens, prompt + next, "virtual rows are never tokens")
            XCTAssertEqual(session.leading, adapter.leadingRows)
            // A new conversation starts from the adapter's rows again.
            session.reset()
            assertClose(try session.append(prompt), first, atol: 1e-5, "\(name) after reset")
        }
    }

    func testSaveLoadRoundTripGivesTheSameLogits() throws {
        let m = try TransformerModel.load(directory: modelFixture("tiny-llama"), dtype: .float32)
        let batch = PackedBatch(sequences: [[5, 6, 7, 8, 9], [10, 11]])
        for (name, adapter) in try adapters(m) {
            m.adapter = adapter
            let before = m.logits(batch)
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            try adapter.writeOutput(to: dir, baseModel: "tiny-llama")
            let config = try AdapterFiles.readConfig(dir)
            if adapter.method != .adapter { XCTAssertEqual(config["peft_type"] as? String, adapter.method.peftType, name) }
            XCTAssertEqual(try AdapterFiles.method(of: dir), adapter.method, name)
            m.adapter = try AdapterFiles.load(from: dir, model: m)
            assertClose(m.logits(batch), before, atol: 1e-5, name)
        }
    }

    func testPEFTInitialisationLeavesTheModelUnchanged() throws {
        let m = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let batch = PackedBatch(sequences: [[1, 2, 3, 4]])
        let plain = m.logits(batch)
        let dora = try LoRAAdapter(config: LoRAConfig(r: 4, alpha: 8, useDoRA: true), model: m.config)
        dora.initialize(seed: 1, weights: m.weights)
        let ia3 = try IA3Adapter(config: IA3Config(), model: m.config)
        for adapter in [dora, ia3] as [TrainableAdapter] {
            m.adapter = adapter
            assertClose(m.logits(batch), plain, atol: 1e-5, adapter.method.rawValue)
        }
        // Prompt tuning from text: the soft prompt starts as the text's token embeddings, repeated.
        var config = PromptLearningConfig(method: .prompt, virtualTokens: 5)
        config.promptInit = .text
        config.initText = "x"
        let prompt = try PromptLearningAdapter(config: config, model: m.config)
        prompt.initialize(seed: 1, textIDs: [7, 9], embedding: m.weights.embedding)
        var row = [Float](repeating: 0, count: m.config.hiddenSize)
        row.withUnsafeMutableBufferPointer { m.weights.embedding.readRow(9, into: $0.baseAddress!) }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: prompt.virtualEmbeddings() + 3 * m.config.hiddenSize, count: m.config.hiddenSize)), row)
    }

    func testBadSettingsAreClearErrors() throws {
        let m = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        XCTAssertThrowsError(try PromptLearningAdapter(config: PromptLearningConfig(method: .prompt, virtualTokens: 0), model: m.config)) {
            XCTAssertTrue("\($0)".contains("--num-virtual-tokens"), "\($0)")
        }
        XCTAssertThrowsError(try PromptLearningAdapter(config: PromptLearningConfig(method: .prefix, virtualTokens: m.config.maxPositionEmbeddings), model: m.config)) {
            XCTAssertTrue("\($0)".contains("leave no room"), "\($0)")
        }
        // An adapter made for another model: sizes recorded in its config and its tensors disagree.
        let llama = try TransformerModel.load(directory: modelFixture("tiny-llama"), dtype: .float32)
        for name in ["prefix", "ia3", "dora"] {
            XCTAssertThrowsError(try AdapterFiles.load(from: fixtureURL("methods/tiny-qwen2-\(name)/adapter"), model: llama)) {
                XCTAssertTrue("\($0)".contains("does not fit this model"), "\(name): \($0)")
            }
        }
    }
}

import Adapters
import Foundation
import Kernels
import TestSupport
import Training
import Transformer
import XCTest

/// Ten AdamW steps (linear warmup/decay, weight decay, clipping at 1.0, batch 2) from PEFT's own initial
/// adapter reproduce PEFT + torch's loss trajectory (scripts/make_peft_fixtures.py, training_case).
final class PEFTTrajectoryTests: XCTestCase {
    func testTenStepsMatchPEFT() throws {
        let url = fixtureURL("golden/lora-training.json")
        let golden = try GoldenTrajectory.load(url)
        struct Final: Decodable { let final: [String: [Float]] }
        let final = try JSONDecoder().decode(Final.self, from: Data(contentsOf: url)).final
        let model = try TransformerModel.load(directory: modelFixture("tiny-qwen2"), dtype: .float32)
        let lora = try LoRAAdapter.load(from: fixtureURL("adapters/tiny-qwen2-train-init"), model: model.config)
        lora.dropout = 0
        let out = temporaryURL("traj")
        defer { try? FileManager.default.removeItem(at: out) }
        // Losses, gradient norms and (exactly) the learning rates of the schedule.
        try golden.assertReplayMatches(model: model, adapter: lora, output: out, "lora")
        for s in lora.orderedSites {
            let a = Array(UnsafeBufferPointer(start: lora.parameters.pointer + s.aOffset, count: s.rank * s.inFeatures))
            let b = Array(UnsafeBufferPointer(start: lora.parameters.pointer + s.bOffset, count: s.outFeatures * s.rank))
            let ea = try XCTUnwrap(final[LoRAAdapter.key(s.moduleName, "lora_A")])
            let eb = try XCTUnwrap(final[LoRAAdapter.key(s.moduleName, "lora_B")])
            // Parameters after 10 steps of lr <= 0.05: agreement to ~1e-4 absolute.
            assertClose(a, ea, atol: 5e-4, "\(s.site) A")
            assertClose(b, eb, atol: 5e-4, "\(s.site) B")
        }
    }
}

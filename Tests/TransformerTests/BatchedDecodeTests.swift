import Foundation
import Kernels
import TestSupport
import Transformer
import XCTest

/// Batched decoding (several sessions stepping together, one product per weight for all of them) equals each
/// session decoding alone: the same greedy tokens and logits, for f32, bf16 and block-quantized weights.
final class BatchedDecodeTests: XCTestCase {
    func testBatchEqualsOneByOne() throws {
        let prompts: [[Int32]] = [[301, 17, 42, 99, 3], [5, 6, 7], [200, 201, 202, 203, 204, 205, 206], [9]]
        for (name, dtype, quant) in [("tiny-qwen2", DType.float32, QuantType?.none), ("tiny-qwen3", .float32, nil),
                                     ("tiny-llama", .bfloat16, nil), ("tiny-qwen2", .float32, .q8_0)] {
            let model = try TransformerModel.load(directory: modelFixture(name), dtype: dtype)
            if let quant { model.weights.quantize(quant) }
            func greedy(_ l: [Float]) -> Int32 { Int32(l.firstIndex(of: l.max()!)!) }
            // One by one.
            var alone: [[Int32]] = [], aloneLogits: [[Float]] = []
            for p in prompts {
                let s = DecodeSession(model: model, capacity: 64)
                var logits = try s.append(p)
                var out: [Int32] = []
                for _ in 0..<6 {
                    let t = greedy(logits)
                    out.append(t)
                    logits = try s.append([t])
                }
                alone.append(out)
                aloneLogits.append(logits)
            }
            // Batched, sessions joining at different steps (continuous batching).
            let sessions = prompts.map { _ in DecodeSession(model: model, capacity: 64) }
            var logits = try zip(sessions, prompts).map { try $0.append($1) }
            var outs = [[Int32]](repeating: [], count: prompts.count)
            for step in 0..<7 {
                let active = (0..<prompts.count).filter { i in outs[i].count < 6 && (i < 2 || step > 0) }
                if active.isEmpty { break }
                let next = active.map { greedy(logits[$0]) }
                for (i, t) in zip(active, next) { outs[i].append(t) }
                let stepped = try DecodeSession.stepBatch(active.map { sessions[$0] }, tokens: next)
                for (i, l) in zip(active, stepped) { logits[i] = l }
            }
            XCTAssertEqual(outs, alone, "\(name) \(dtype) \(quant.map(\.rawValue) ?? "")")
            for i in prompts.indices {
                let scale = aloneLogits[i].map(abs).max()!
                assertClose(logits[i], aloneLogits[i], atol: (dtype == .bfloat16 ? 2e-2 : 1e-4) * max(1, scale), "\(name) session \(i)")
            }
        }
    }
}

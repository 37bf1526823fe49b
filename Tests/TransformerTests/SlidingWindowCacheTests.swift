import Kernels
import TestSupport
import Transformer
import XCTest

/// Sliding-window layers keep their keys in a ring buffer of window + chunk rows: long chats decode in bounded
/// memory and give exactly what the full forward gives.
final class SlidingWindowCacheTests: XCTestCase {
    func sequence(_ n: Int, vocab: Int) -> [Int32] { (0..<n).map { Int32(($0 * 37 + 11) % (vocab - 1)) } }

    func testRingCacheMatchesTheFullForwardOverLongContexts() throws {
        // tiny-mistral: every layer a window of 4; tiny-gemma2: layer 0 a window of 4, layer 1 global (soft-capped).
        for name in ["tiny-mistral", "tiny-gemma2", "tiny-qwen2-swa"] {
            let m = try TransformerModel.load(directory: modelFixture(name), dtype: .float32)
            let ids = sequence(40, vocab: m.config.vocabSize), V = m.config.vocabSize
            let full = m.logits(PackedBatch(sequences: [ids]))
            // Prefill in chunks of 3 (ring of 7 slots), then one token at a time, wrapping the ring many times.
            let session = DecodeSession(model: m, capacity: 64, chunkRows: 3, initialAllocation: 8)
            var last = try session.append(Array(ids.prefix(17)))
            assertClose(last, Array(full[(16 * V)..<(17 * V)]), atol: 2e-4, "\(name) prefill")
            for i in 17..<40 {
                last = try session.append([ids[i]])
                assertClose(last, Array(full[(i * V)..<((i + 1) * V)]), atol: 2e-4, "\(name) step \(i)")
            }
            // Layers with a window hold 7 rows; the others grow with the context.
            let windowed = (0..<m.config.layerCount).filter { m.config.attentionWindow(layer: $0) != nil }.count
            let expected = (windowed * 7 + (m.config.layerCount - windowed) * 64) * m.config.kvDim * 2 * 4
            XCTAssertEqual(session.cacheBytes, expected, name)
            // Going back past what the ring still holds replays the kept tokens.
            session.truncate(to: 20)
            last = try session.append([ids[20]])
            assertClose(last, Array(full[(20 * V)..<(21 * V)]), atol: 2e-4, "\(name) after truncate")
            // Batched decoding of two sessions over rings.
            let a = DecodeSession(model: m, capacity: 64, chunkRows: 3), b = DecodeSession(model: m, capacity: 64, chunkRows: 3)
            _ = try a.append(Array(ids.prefix(30)))
            _ = try b.append(Array(ids.prefix(25)))
            let step = try DecodeSession.stepBatch([a, b], tokens: [ids[30], ids[25]])
            assertClose(step[0], Array(full[(30 * V)..<(31 * V)]), atol: 2e-4, "\(name) batched a")
            assertClose(step[1], Array(full[(25 * V)..<(26 * V)]), atol: 2e-4, "\(name) batched b")
        }
    }
}

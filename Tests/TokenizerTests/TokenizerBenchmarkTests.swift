import Foundation
import XCTest
import Tokenizer

/// Load and encode speed on the real Qwen vocabulary (skipped when it is absent). Prints its numbers;
/// the bounds are loose smoke checks. For release numbers run
/// `swift test -c release -Xswiftc -enable-testing --filter TokenizerBenchmarkTests`.
final class TokenizerBenchmarkTests: XCTestCase {
    func testLoadAndEncodeSpeed() throws {
        let directory = try Fixtures.realQwenDirectory()
        var loadSeconds: [Double] = []
        var loaded: Tokenizer?
        #if DEBUG
        let rounds = 1  // debug builds are ~6x slower; keep `swift test` quick
        #else
        let rounds = 3
        #endif
        for _ in 0..<rounds {
            let start = Date()
            loaded = try Tokenizer.load(directory: directory)
            loadSeconds.append(Date().timeIntervalSince(start))
        }
        let tokenizer = try XCTUnwrap(loaded)
        // Non-repeating Chinese: sentences of random common characters, so the word cache cannot help.
        let characters = Array("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对小多然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动方期它头经长儿回位分爱老因很给名法间斯知世什两次使身者被高已亲其进此话常与活正感药丸颗粒服用")
        var generator = SplitMix64(seed: 7)
        var text = ""
        for index in 0..<100_000 {
            text.append(characters[Int(generator.next() % UInt64(characters.count))])
            if index % 23 == 22 { text.append(index % 2 == 0 ? "，" : "。\n") }
        }
        let start = Date()
        let ids = tokenizer.encode(text)
        let encodeSeconds = Date().timeIntervalSince(start)
        XCTAssertEqual(tokenizer.decode(ids), text)
        let best = loadSeconds.min() ?? 0
        print(String(format: "Qwen tokenizer.json load: best %.3f s of %@; encode: %d tokens in %.3f s = %.0f tokens/s",
                     best, loadSeconds.map { String(format: "%.3f", $0) }.joined(separator: ", "),
                     ids.count, encodeSeconds, Double(ids.count) / encodeSeconds))
    }
}

import Foundation
import TestSupport
import XCTest

/// `peft eval --benchmark` through the executable: the JSON contract, results.json, the refusals.
final class BenchmarkCommandTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2-prune").path

    override func setUpWithError() throws { tmp = try TemporaryDirectory("cli-bench") }
    override func tearDown() { tmp.cleanup() }

    func testMMLUJSONAndResults() throws {
        let dir = fixtureURL("benchmarks/mmlu").path
        let r = try PeftCommand.run(["eval", "--model", model, "--benchmark", "mmlu", "--benchmark-dir", dir, "--n-shot", "2",
                                     "--json", "--output", tmp.path("out"), "--dtype", "float32"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(o["questions"] as? Int, 18)
        let average = try XCTUnwrap(o["average"] as? Double)
        XCTAssertTrue((0...1).contains(average))
        XCTAssertNotNil(o["STEM"] as? Double)
        XCTAssertNotNil(o["Humanities"] as? Double)
        XCTAssertNotNil(o["Social Sciences"] as? Double)
        XCTAssertTrue(o["Other"] is NSNull)
        let results = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.path("out/results.json")))) as? [String: Any])
        let algebra = try XCTUnwrap(results["abstract_algebra"] as? [String: Any])
        XCTAssertEqual((algebra["predictions"] as? [String])?.count, 5)
        XCTAssertNotNil(algebra["accuracy"] as? Double)
        // The same predictions as the library's evaluator (golden/benchmark-mmlu.json).
        let golden = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("golden/benchmark-mmlu.json"))) as? [String: Any])
        let want = ((golden["argmax_2shot"] as? [String: Any])?["abstract_algebra"] as? [String: Any])?["predictions"] as? [String]
        XCTAssertEqual(algebra["predictions"] as? [String], want)
        // Plain output: the average and the categories.
        let plain = try PeftCommand.run(["eval", "--model", model, "--benchmark", "cmmlu", "--benchmark-dir",
                                         fixtureURL("benchmarks/cmmlu").path, "--n-shot", "1", "--limit", "2"])
        XCTAssertEqual(plain.status, 0, plain.stderr)
        XCTAssertTrue(plain.stdout.hasPrefix("Average"), plain.stdout)
    }

    func testRefusals() throws {
        func fails(_ args: [String], _ fragment: String, line: UInt = #line) throws {
            let r = try PeftCommand.run(["eval", "--model", model] + args)
            XCTAssertNotEqual(r.status, 0, line: line)
            XCTAssertTrue(r.stderr.contains(fragment), r.stderr, line: line)
        }
        let ceval = fixtureURL("benchmarks/ceval").path
        try fails(["--benchmark", "ceval", "--benchmark-dir", ceval, "--split", "test"], "--split val")
        try fails(["--benchmark", "ceval"], "--benchmark-dir")
        try fails(["--benchmark", "cmmlu", "--benchmark-dir", fixtureURL("benchmarks/cmmlu").path, "--split", "val"], "no val/ folder")
        try fails(["--benchmark", "mmlu", "--benchmark-dir", tmp.path("none")], "no dev/ folder")
        try fails(["--benchmark", "gsm8k", "--benchmark-dir", ceval], "gsm8k")
        try fails([], "--data FILE or --benchmark")
    }
}

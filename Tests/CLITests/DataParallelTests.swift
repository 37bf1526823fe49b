import Foundation
import ModelIO
import TestSupport
import XCTest

/// `mpirun -np 2 peft train` (Open MPI, two ranks on this machine): the same run as one process with twice the batch,
/// resume with the same ranks, and a failing rank ending every rank. Skipped where Open MPI is not installed
/// (`.ci/run` installs it).
final class DataParallelTests: XCTestCase {
    var tmp: TemporaryDirectory!
    let model = modelFixture("tiny-qwen2").path

    override func setUpWithError() throws {
        guard PeftCommand.mpirun != nil else { throw XCTSkip("Open MPI's mpirun is not installed (apt-get install openmpi-bin)") }
        tmp = try TemporaryDirectory("cli-mpi")
        // Records of different lengths, so that the ranks' shares differ in examples but balance tokens.
        var lines: [String] = []
        for i in 0..<12 {
            let question = String(repeating: "问题\(i) ", count: 1 + i % 4)
            lines.append("{\"instruction\": \"\(question)\", \"input\": \"\", \"output\": \"答案 \(i * 7) \(String(repeating: "好", count: 1 + i % 3))\"}")
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("train.jsonl"))
        try Data("{\"instruction\": \"x\"}\n".utf8).write(to: tmp.url.appendingPathComponent("bad.jsonl"))
    }

    override func tearDown() { tmp?.cleanup() }

    /// LoRA with dropout unless `method` names another method (with its defaults).
    func args(batch: Int, output: String, _ extra: [String] = [], method: String? = nil) -> [String] {
        let methodFlags = method.map { ["--method", $0, "--lr", $0 == "full" ? "1e-4" : "1e-2"] }
            ?? ["--lora-r", "4", "--lora-dropout", "0.1", "--lr", "1e-2"]
        return ["train", "--model", model, "--data", tmp.path("train.jsonl"), "--output", output, "--max-steps", "4",
                "--batch-size", "\(batch)", "--grad-accum", "2", "--dtype", "float32", "--max-length", "128"]
            + methodFlags + extra
    }

    struct Log: Decodable { let type: String; let loss: Double?; let grad_norm: Double?; let allreduce_seconds: Double? }

    func trainLog(_ dir: String) throws -> [Log] {
        try String(contentsOfFile: dir + "/train_log.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(Log.self, from: Data($0.utf8)) }.filter { $0.type == "train" }
    }

    func adapterTensors(_ dir: String) throws -> [String: [Float]] {
        let file = try SafetensorsFile(path: dir + "/adapter_model.safetensors")
        return try file.tensors.mapValues { t in let b = try t.floatBuffer(); return Array(UnsafeBufferPointer(start: b.pointer, count: b.count)) }
    }

    func assertSameRun(_ single: String, _ parallel: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let a = try trainLog(single), b = try trainLog(parallel)
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.loss!, y.loss!, accuracy: 1e-5 * x.loss!, file: file, line: line)
            XCTAssertEqual(x.grad_norm!, y.grad_norm!, accuracy: 1e-5 * x.grad_norm! + 1e-7, file: file, line: line)
        }
        let ta = try adapterTensors(single), tb = try adapterTensors(parallel)
        XCTAssertEqual(Set(ta.keys), Set(tb.keys), file: file, line: line)
        for (k, v) in ta { assertClose(tb[k]!, v, atol: 1e-5, rtol: 1e-4, k, file: file, line: line) }
    }

    func testTwoRanksEqualOneProcessWithTwiceTheBatch() throws {
        let single = tmp.path("single"), parallel = tmp.path("parallel")
        let one = try PeftCommand.run(args(batch: 4, output: single))
        XCTAssertEqual(one.status, 0, one.stderr)
        let two = try PeftCommand.runMPI(ranks: 2, args(batch: 2, output: parallel))
        XCTAssertEqual(two.status, 0, two.stderr)
        // Dropout masks follow the examples, so even with dropout the runs agree.
        try assertSameRun(single, parallel)
        // Rank 0 alone reports and writes.
        XCTAssertEqual(two.stderr.components(separatedBy: "done: 4 steps").count, 2, two.stderr)
        XCTAssertTrue(two.stderr.contains("2 ranks; summing gradients took"), two.stderr)
        XCTAssertTrue(try trainLog(parallel).allSatisfy { $0.allreduce_seconds != nil })
        let state = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: parallel + "/checkpoint-4/trainer_state.json"))) as! [String: Any]
        XCTAssertEqual(state["world_size"] as? Int, 2)
    }

    func testEveryMethodMatchesOneProcess() throws {
        // Prompt encoders and DoRA's magnitudes finish their gradients before the ranks sum them; full fine-tuning
        // sums every weight's gradient.
        for method in ["dora", "ia3", "ptuning", "prefix", "full"] {
            func run(_ ranks: Int) throws -> [Log] {
                let out = tmp.path("\(method)-\(ranks)")
                let a = args(batch: 4 / ranks, output: out, method: method)
                let r = ranks == 1 ? try PeftCommand.run(a) : try PeftCommand.runMPI(ranks: ranks, a)
                XCTAssertEqual(r.status, 0, "\(method): \(r.stderr)")
                return try trainLog(out)
            }
            let one = try run(1), two = try run(2)
            XCTAssertEqual(one.count, two.count, method)
            for (x, y) in zip(one, two) {
                XCTAssertEqual(x.loss!, y.loss!, accuracy: 1e-5 * x.loss!, method)
                XCTAssertEqual(x.grad_norm!, y.grad_norm!, accuracy: 1e-5 * x.grad_norm! + 1e-7, method)
            }
        }
    }

    /// Preference tuning on 12 records (`answer(i)` gives each record's answer fields): two ranks with half the
    /// batch take the same 3 steps as one process.
    func checkTwoRanksEqualOne(stage: String, answer: (Int) -> String) throws {
        let lines = (0..<12).map { i in
            "{\"instruction\": \"\(String(repeating: "问题\(i) ", count: 1 + i % 4))\", \"input\": \"\", \(answer(i))}"
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: tmp.url.appendingPathComponent("\(stage).jsonl"))
        func run(_ ranks: Int) throws -> [Log] {
            let out = tmp.path("\(stage)-\(ranks)")
            let a = ["train", "--model", model, "--data", tmp.path("\(stage).jsonl"), "--output", out, "--stage", stage,
                     "--max-steps", "3", "--batch-size", "\(4 / ranks)", "--grad-accum", "2", "--dtype", "float32",
                     "--lr", "1e-2", "--lora-dropout", "0"]
            let r = ranks == 1 ? try PeftCommand.run(a) : try PeftCommand.runMPI(ranks: ranks, a)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try trainLog(out)
        }
        let one = try run(1), two = try run(2)
        XCTAssertEqual(one.count, 3)
        XCTAssertEqual(one.count, two.count)
        for (x, y) in zip(one, two) {
            XCTAssertEqual(x.loss!, y.loss!, accuracy: 1e-5 * x.loss!, stage)
            XCTAssertEqual(x.grad_norm!, y.grad_norm!, accuracy: 1e-5 * x.grad_norm! + 1e-7, stage)
        }
    }

    /// DPO keeps each pair on one rank (tree-packed there).
    func testPreferenceTuningMatchesOneProcess() throws {
        try checkTwoRanksEqualOne(stage: "dpo") { i in
            "\"chosen\": \"答案 \(i * 7)\", \"rejected\": \"\(String(repeating: "不", count: 1 + i % 3))\""
        }
    }

    /// KTO's KL term is estimated over the whole micro-batch, each rank computing its share.
    func testKTOMatchesOneProcess() throws {
        try checkTwoRanksEqualOne(stage: "kto") { i in "\"output\": \"答案 \(i * 7)\", \"kto_tag\": \(i % 3 != 0)" }
    }

    func testResumeNeedsTheSameRanks() throws {
        let full = tmp.path("full"), part = tmp.path("part")
        XCTAssertEqual(try PeftCommand.runMPI(ranks: 2, args(batch: 2, output: full)).status, 0)
        let first = try PeftCommand.runMPI(ranks: 2, args(batch: 2, output: part, ["--save-every", "2"]))
        XCTAssertEqual(first.status, 0, first.stderr)
        let resumed = try PeftCommand.runMPI(ranks: 2, args(batch: 2, output: part, ["--resume", part + "/checkpoint-2"]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        try assertSameRun(full, part)
        let alone = try PeftCommand.run(args(batch: 2, output: tmp.path("alone"), ["--resume", part + "/checkpoint-2"]))
        XCTAssertNotEqual(alone.status, 0)
        XCTAssertTrue(alone.stderr.contains("ranks 2 -> 1"), alone.stderr)
    }

    func testAFailingRankEndsEveryRank() throws {
        let out = tmp.path("failing")
        var bad = args(batch: 2, output: out)
        bad[bad.firstIndex(of: tmp.path("train.jsonl"))!] = tmp.path("bad.jsonl")
        let r = try PeftCommand.runMPI(ranks: 2, [], perRank: [["peft"] + args(batch: 2, output: out), ["peft"] + bad])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("rank 1 of 2 failed"), r.stderr)
        XCTAssertTrue(r.stderr.contains("bad.jsonl"), r.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/adapter_model.safetensors"))
        // A rank killed outright ends the job too.
        let killed = try PeftCommand.runMPI(ranks: 2, [], perRank: [["peft"] + args(batch: 2, output: tmp.path("killed")),
                                                                    ["/bin/sh", "-c", "kill -9 $$"]])
        XCTAssertNotEqual(killed.status, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path("killed") + "/adapter_model.safetensors"))
    }

    /// Two hosts as two network namespaces joined by a veth pair: mpirun in one, its daemon started in the other by an
    /// rsh agent that enters the namespace (as ssh would log in), ranks talking TCP across the pair. Needs root and
    /// `ip` (iproute2); skipped where the environment does not allow namespaces.
    func testTwoHostsOverTCP() throws {
        @discardableResult
        func sh(_ command: String) -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", command]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            guard (try? p.run()) != nil else { return -1 }
            p.waitUntilExit()
            return p.terminationStatus
        }
        let id = Int(getpid()) % 200 + 20
        let (h1, h2) = ("peft-h1-\(id)", "peft-h2-\(id)")
        let (a, b) = ("10.\(id).7.1", "10.\(id).7.2")
        let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard getuid() == 0, let ip, sh("ip netns add \(h1)") == 0 else {
            throw XCTSkip("network namespaces are not available here (needs root and iproute2)")
        }
        defer { sh("ip netns del \(h1); ip netns del \(h2)") }
        let setup = """
            ip netns add \(h2) && ip link add pv\(id)a type veth peer name pv\(id)b && \
            ip link set pv\(id)a netns \(h1) && ip link set pv\(id)b netns \(h2) && \
            ip -n \(h1) addr add \(a)/24 dev pv\(id)a && ip -n \(h2) addr add \(b)/24 dev pv\(id)b && \
            ip -n \(h1) link set pv\(id)a up && ip -n \(h2) link set pv\(id)b up && \
            ip -n \(h1) link set lo up && ip -n \(h2) link set lo up
            """
        guard sh(setup) == 0 else { throw XCTSkip("cannot create a veth pair between network namespaces here") }
        let agent = tmp.url.appendingPathComponent("agent.sh")
        try """
            #!/bin/sh
            host=$1; shift
            case "$host" in \(a)) ns=\(h1) ;; \(b)) ns=\(h2) ;; *) echo "unknown host $host" >&2; exit 1 ;; esac
            exec ip netns exec "$ns" /bin/sh -c "$*"
            """.write(to: agent, atomically: true, encoding: .utf8)
        sh("chmod +x \(agent.path)")
        let single = tmp.path("one-host"), parallel = tmp.path("two-hosts")
        XCTAssertEqual(try PeftCommand.run(args(batch: 4, output: single)).status, 0)
        let subnet = "10.\(id).7.0/24"
        let r = try PeftCommand.run(args(batch: 2, output: parallel), environment: [
            "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"],
            launcher: [ip, "netns", "exec", h1, PeftCommand.mpirun!.path, "--host", "\(a):1,\(b):1", "-np", "2",
                       "--mca", "plm_rsh_agent", agent.path, "--mca", "btl", "self,tcp",
                       "--mca", "btl_tcp_if_include", subnet, "--mca", "oob_tcp_if_include", subnet,
                       "-x", "PEFT_NUM_THREADS=1", PeftCommand.executable.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        try assertSameRun(single, parallel)
    }
}

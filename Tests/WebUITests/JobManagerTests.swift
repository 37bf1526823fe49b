import Foundation
import TestSupport
import WebUI
import XCTest

/// The web UI's job machinery with real child processes (small shell scripts standing in for `peft` runs): the queue,
/// stopping, progress lines, the followed training log, replay from an event id, and history across servers.
final class JobManagerTests: XCTestCase {
    var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory("webui-jobs") }
    override func tearDown() { dir.cleanup() }

    func manager(maxRunning: Int = 1) throws -> JobManager {
        var settings = JobManager.Settings(workdir: dir.url, executable: URL(fileURLWithPath: "/bin/sh"))
        settings.maxRunning = maxRunning
        return try JobManager(settings: settings)
    }

    func logs(_ jobs: JobManager, _ id: String) throws -> [String] {
        try jobs.events(id).filter { $0.kind == .log }.map(\.data)
    }

    func testJobsQueueForOneSlotAndRunInOrder() async throws {
        let jobs = try manager()
        let first = try jobs.submit(kind: "train", arguments: ["-c", "sleep 0.6; echo first"])
        let second = try jobs.submit(kind: "train", arguments: ["-c", "echo second"])
        XCTAssertEqual(try jobs.job(first.id).state, .running)
        XCTAssertEqual(try jobs.job(second.id).state, .queued, "one job runs at a time by default")
        let a = try await jobs.wait(first.id, timeout: 30), b = try await jobs.wait(second.id, timeout: 30)
        XCTAssertEqual(a.state, .succeeded)
        XCTAssertEqual(b.state, .succeeded)
        XCTAssertGreaterThanOrEqual(b.started!, a.finished!, "the second started after the first ended")
        XCTAssertEqual(try logs(jobs, first.id), ["first"])
        XCTAssertEqual(try logs(jobs, second.id), ["second"])
        // Chat servers do not wait for the slot.
        let busy = try jobs.submit(kind: "train", arguments: ["-c", "sleep 0.5"])
        let serve = try jobs.submit(kind: "serve", arguments: ["-c", "sleep 0.1"])
        XCTAssertEqual(try jobs.job(serve.id).state, .running)
        _ = try await jobs.wait(busy.id, timeout: 30)
        _ = try await jobs.wait(serve.id, timeout: 30)
    }

    func testStopInterruptsARunningJobAndDropsAQueuedOne() async throws {
        let jobs = try manager()
        // Like `peft train`: SIGINT saves and exits.
        let running = try jobs.submit(kind: "train", arguments: ["-c", #"trap 'echo saved checkpoint; exit 130' INT; echo started; while true; do sleep 0.05; done"#])
        let queued = try jobs.submit(kind: "train", arguments: ["-c", "echo never"])
        try await waitFor { (try? self.logs(jobs, running.id))?.contains("started") == true }
        XCTAssertEqual(try jobs.stop(queued.id).state, .stopped)
        XCTAssertEqual(try jobs.stop(running.id).state, .stopping)
        let ended = try await jobs.wait(running.id, timeout: 30)
        XCTAssertEqual(ended.state, .stopped)
        XCTAssertEqual(ended.exitStatus, 130)
        XCTAssertTrue(try logs(jobs, running.id).contains("saved checkpoint"))
        XCTAssertEqual(try logs(jobs, queued.id), [], "the queued job never ran")
        XCTAssertThrowsError(try jobs.stop(running.id)) { XCTAssertEqual($0 as? JobManager.Failure, .conflict("job \(running.id) has already ended (stopped)")) }
        XCTAssertThrowsError(try jobs.stop("job-9999")) { XCTAssertEqual($0 as? JobManager.Failure, .notFound("no job job-9999")) }
    }

    func testProgressLinesAreLiveFiguresNotLog() async throws {
        let jobs = try manager()
        let job = try jobs.submit(kind: "train", arguments: ["-c", """
            echo '3 steps of 4 examples'
            echo 'generate 4/5  elapsed 0:01 ETA 0:02' >&2
            echo 'train 2/3 loss 1.5000 lr 1.00e-03 1234.5 tok/s elapsed 0:07 ETA 0:04' >&2
            printf 'train 3/3 loss 1.2 lr 5e-4 1500 tok/s elapsed 0:09 ETA 0:00\\r' >&2
            echo 'Error: data.jsonl, record 3, field '"'"'output'"'"': missing' >&2
            exit 1
            """])
        let ended = try await jobs.wait(job.id, timeout: 30)
        XCTAssertEqual(ended.state, .failed)
        XCTAssertEqual(ended.progress.phase, "train")
        XCTAssertEqual(ended.progress.step, 3)
        XCTAssertEqual(ended.progress.totalSteps, 3)
        XCTAssertEqual(ended.progress.tokensPerSecond, 1500)
        XCTAssertEqual(ended.progress.elapsed, "0:09")
        XCTAssertEqual(ended.progress.eta, "0:00")
        XCTAssertEqual(ended.error, "Error: data.jsonl, record 3, field 'output': missing", "the error names the record and field")
        XCTAssertEqual(try logs(jobs, job.id), ["3 steps of 4 examples", "Error: data.jsonl, record 3, field 'output': missing"])
    }

    func testTrainingLogRecordsBecomeMetricEventsAndReplayFromAnEventID() async throws {
        let jobs = try manager()
        let log = dir.url.appendingPathComponent("run/train_log.jsonl")
        try FileManager.default.createDirectory(at: log.deletingLastPathComponent(), withIntermediateDirectories: true)
        // Records written over a second, one of them in two pieces (a half-written line is not read early).
        let job = try jobs.submit(kind: "train", arguments: ["-c", """
            printf '{"type":"train","step":1,"loss":2.5}\\n' >> \(log.path); sleep 0.6
            printf '{"type":"train","step":2,' >> \(log.path); sleep 0.6
            printf '"loss":2.0}\\n{"type":"eval","step":2,"eval_loss":2.2}\\n' >> \(log.path); sleep 0.6
            echo done
            """], metricsLog: log)
        let (backlog, updates) = try jobs.subscribe(job.id, after: -1)
        var seen = backlog
        if let updates {
            for await update in updates { if case .event(let e) = update { seen.append(e) } }
        }
        XCTAssertEqual(seen.map(\.id), Array(0..<seen.count), "every event once, in order")
        let metrics = seen.filter { $0.kind == .metric }.map(\.data)
        XCTAssertEqual(metrics, [#"{"type":"train","step":1,"loss":2.5}"#, #"{"type":"train","step":2,"loss":2.0}"#,
                                 #"{"type":"eval","step":2,"eval_loss":2.2}"#])
        XCTAssertEqual(seen.last?.kind, .state)
        XCTAssertTrue(seen.last!.data.contains(#""state":"succeeded""#))
        // A page that reconnects with Last-Event-ID k gets exactly the events after k, and the stream is done.
        let k = seen[2].id
        let (replay, live) = try jobs.subscribe(job.id, after: k)
        XCTAssertNil(live)
        XCTAssertEqual(replay, Array(seen.dropFirst(k + 1)))
        XCTAssertTrue(seen[3].sse.hasPrefix("id: 3\nevent: \(seen[3].kind.rawValue)\ndata: "))
    }

    func testAnotherServerSeesTheHistoryAndMarksUnfinishedJobsLost() async throws {
        let first = try manager()
        let done = try first.submit(kind: "eval", arguments: ["-c", "echo 'line one'; echo 'line two'"])
        _ = try await first.wait(done.id, timeout: 30)
        let running = try first.submit(kind: "train", arguments: ["-c", "echo up; sleep 30"])
        try await waitFor { (try? self.logs(first, running.id))?.contains("up") == true }
        let second = try manager()
        XCTAssertEqual(second.list().map(\.id), [done.id, running.id])
        XCTAssertEqual(try second.job(done.id).state, .succeeded)
        XCTAssertEqual(try logs(second, done.id), ["line one", "line two"])
        XCTAssertEqual(try second.job(running.id).state, .lost)
        let next = try second.submit(kind: "eval", arguments: ["-c", "true"])
        XCTAssertEqual(next.id, "job-0003", "numbers continue")
        _ = try await second.wait(next.id, timeout: 30)
        // A shell waiting on `sleep` defers SIGINT: past the timeout the group gets SIGKILL.
        await first.shutdown(timeout: 1)
        XCTAssertEqual(try first.job(running.id).state, .stopped)
    }

    func testShutdownStopsRunningJobsAndRefusesNewOnes() async throws {
        let jobs = try manager()
        let job = try jobs.submit(kind: "train", arguments: ["-c", #"trap 'echo saving; exit 130' INT; echo up; while true; do sleep 0.05; done"#])
        let waiting = try jobs.submit(kind: "train", arguments: ["-c", "true"])
        try await waitFor { (try? self.logs(jobs, job.id))?.contains("up") == true }
        await jobs.shutdown(timeout: 10)
        XCTAssertEqual(try jobs.job(job.id).state, .stopped, "\((try? logs(jobs, job.id)) ?? [])")
        XCTAssertEqual(try jobs.job(waiting.id).state, .stopped)
        XCTAssertTrue(try logs(jobs, job.id).contains("saving"))
        XCTAssertThrowsError(try jobs.submit(kind: "train", arguments: ["-c", "true"]))
    }

    func waitFor(_ condition: @escaping () -> Bool, timeout: Double = 30) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            guard Date() < deadline else { return XCTFail("timed out") }
            try await Task.sleep(nanoseconds: 20_000_000)
        }
    }
}

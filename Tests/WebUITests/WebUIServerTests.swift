import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import TestSupport
import WebUI
import XCTest

/// `peft webui`'s JSON API in the test process on a free port, its jobs real `peft` children on the built-in demo
/// model: forms from the commands' own options, data previews and their errors, a training run's events replayed
/// from Last-Event-ID, stop and resume, the chat proxy, exports, and what it refuses (paths, hosts, keys).
final class WebUIServerTests: XCTestCase {
    final class Harness {
        let server: WebUIServer
        let port: Int
        let running: RunningService

        init(workdir: URL, apiKey: String? = nil) async throws {
            var settings = WebUIServer.Settings(workdir: workdir, executable: PeftCommand.executable)
            settings.port = 0
            settings.apiKey = apiKey
            let server = try WebUIServer(settings: settings)
            self.server = server
            running = await RunningService { logger, onListening in server.application(logger: logger, onListening: onListening) }
            port = running.port
        }

        func stop() async throws { try await running.stop() }

        typealias Reply = HTTPReply

        func request(_ method: HTTPMethod, _ path: String, body: Any? = nil, headers: [(String, String)] = [],
                     contentType: String = "application/json") async throws -> Reply {
            try await running.request(method, path, body: try body.map { try JSONSerialization.data(withJSONObject: $0) },
                                      contentType: contentType, headers: headers, timeout: 300)
        }

        func get(_ path: String, headers: [(String, String)] = []) async throws -> Reply { try await request(.GET, path, headers: headers) }
        func post(_ path: String, _ body: [String: Any]) async throws -> Reply { try await request(.POST, path, body: body) }

        func waitForJob(_ id: String, until: ([String: Any]) -> Bool = { ["succeeded", "failed", "stopped", "lost"].contains($0["state"] as? String ?? "") },
                        timeout: Double = 240) async throws -> [String: Any] {
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                let job = try await get("/api/jobs/\(id)").json
                if until(job) || Date() > deadline { return job }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
    }

    var dir: TemporaryDirectory!
    override func setUpWithError() throws { dir = try TemporaryDirectory("webui") }
    override func tearDown() { dir.cleanup() }

    func testFormsPreviewsAndRefusals() async throws {
        let h = try await Harness(workdir: dir.url)
        let page = try await h.get("/")
        XCTAssertEqual(page.status, 200)
        XCTAssertTrue(page.body.contains("<canvas id=\"job-chart\""), "one self-contained page")
        XCTAssertFalse(page.body.contains("http://") || page.body.contains("https://"), "it fetches nothing from elsewhere")
        let info = try await h.get("/api/info").json
        let demo = info["demo"] as! [String: String]
        XCTAssertTrue(FileManager.default.fileExists(atPath: demo["model"]! + "/config.json"), "the demo model is written at start")
        // The form of `peft train` is its own option list, method options marked.
        let train = try await h.get("/api/schema/train").json
        let options = train["options"] as! [[String: Any]]
        let loraR = options.first { $0["name"] as? String == "lora-r" }
        XCTAssertEqual(loraR?["methods"] as? [String], ["lora", "dora"])
        XCTAssertEqual(options.first { $0["name"] as? String == "epochs" }?["default"] as? String, "3.0")
        for name in ["num-virtual-tokens", "adapter-config", "freeze-trainable-layers", "stage", "quantize", "gradient-checkpointing"] {
            XCTAssertTrue(options.contains { $0["name"] as? String == name }, name)
        }
        // Preview command: the exact line, with the output folder the server picks.
        let line = try await h.post("/api/command", ["command": "train", "options": ["model": demo["model"]!, "data": demo["train"]!, "use-rslora": true, "system": "be brief"]])
        XCTAssertEqual(line.status, 200, line.body)
        let text = line.json["line"] as! String
        XCTAssertTrue(text.hasPrefix("peft train --model \(demo["model"]!) --data \(demo["train"]!) --output \(dir.url.resolvingSymlinksInPath().path)/runs/lora-"), text)
        XCTAssertTrue(text.contains("--use-rslora") && text.contains("--system 'be brief'"), text)
        let unknown = try await h.post("/api/command", ["command": "train", "options": ["model": "m", "rm-rf": "/"]])
        XCTAssertEqual(unknown.status, 400)
        XCTAssertEqual(unknown.error, "peft train has no option --rm-rf")
        let badCommand = try await h.post("/api/jobs", ["command": "download", "options": [:]])
        XCTAssertEqual(badCommand.status, 400)
        // Data preview: counts and the trained tokens marked.
        let preview = try await h.post("/api/preview", ["options": ["model": demo["model"]!, "data": demo["train"]!, "count": 2]])
        XCTAssertEqual(preview.status, 200, preview.body)
        XCTAssertEqual(preview.json["records"] as? Int, 80)
        let samples = preview.json["samples"] as! [[String: Any]]
        XCTAssertEqual(samples.count, 2)
        let segments = samples[0]["segments"] as! [[String: Any]]
        let trained = segments.filter { $0["trained"] as? Bool == true }.map { $0["text"] as! String }.joined()
        XCTAssertTrue(trained.hasPrefix("推荐用药："), trained)
        XCTAssertFalse(segments.filter { $0["trained"] as? Bool == false }.map { $0["text"] as! String }.joined().contains("推荐用药"))
        // A broken record is named: file, record, field.
        let bad = dir.url.appendingPathComponent("bad.jsonl")
        try Data("{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\"}\n".utf8).write(to: bad)
        let badPreview = try await h.post("/api/preview", ["options": ["model": demo["model"]!, "data": "bad.jsonl"]])
        XCTAssertEqual(badPreview.status, 400)
        XCTAssertTrue(badPreview.error.contains("bad.jsonl") && badPreview.error.contains("record 2"), badPreview.error)
        // A broken dataset_info.json: the file, line and column; a broken entry: its name and why.
        let folder = dir.url.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data("{\"med\": {\"file_name\": \"med.json\"},\n \"x\": }".utf8).write(to: folder.appendingPathComponent("dataset_info.json"))
        let broken = try await h.get("/api/datasets?dir=data")
        XCTAssertEqual(broken.status, 400)
        XCTAssertTrue(broken.error.contains("dataset_info.json: malformed JSON at line 2, column 7"), broken.error)
        try Data(#"{"med": {"file_name": "med.json"}, "hub": {"hf_hub_url": "a/b"}, "ok": {"file_name": "ok.jsonl"}}"#.utf8)
            .write(to: folder.appendingPathComponent("dataset_info.json"))
        try FileManager.default.copyItem(atPath: demo["train"]!, toPath: folder.appendingPathComponent("ok.jsonl").path)
        let listed = try await h.get("/api/datasets?dir=data").json["datasets"] as! [[String: Any]]
        XCTAssertEqual(listed.map { $0["name"] as! String }, ["hub", "med", "ok"])
        XCTAssertTrue((listed[0]["problem"] as? String ?? "").contains("hf_hub_url"))
        XCTAssertTrue((listed[1]["problem"] as? String ?? "").contains("med.json: not found"))
        XCTAssertNil(listed[2]["problem"])
        // Files: the workdir and typed paths only; loopback Host only; JSON posts only.
        let outside = try await h.get("/api/files?path=/etc/passwd")
        XCTAssertEqual(outside.status, 403)
        let climb = try await h.get("/api/files?path=../../../../etc/passwd")
        XCTAssertEqual(climb.status, 403)
        let inside = try await h.get("/api/files?path=data/ok.jsonl")
        XCTAssertEqual(inside.status, 200)
        let rebound = try await h.get("/api/info", headers: [("Host", "attacker.example:7860")])
        XCTAssertEqual(rebound.status, 403)
        let form = try await h.request(.POST, "/api/jobs", body: ["command": "train"], contentType: "text/plain")
        XCTAssertEqual(form.status, 400)
        try await h.stop()
    }

    func testTrainingRunStreamsReplaysStopsResumesChatsAndExports() async throws {
        let h = try await Harness(workdir: dir.url)
        let demo = try await h.get("/api/info").json["demo"] as! [String: String]
        let started = try await h.post("/api/jobs", ["command": "train", "options": [
            "model": demo["model"]!, "data": demo["train"]!, "eval-data": demo["test"]!, "max-steps": "400", "lr": "3e-3",
            "eval-every": "20", "save-every": "20", "dtype": "float32"]])
        XCTAssertEqual(started.status, 201, started.body)
        let id = started.json["id"] as! String
        let output = started.json["output"] as! String
        // Progress and memory are live figures of the job.
        let moving = try await h.waitForJob(id, until: { (($0["progress"] as? [String: Any])?["step"] as? Int ?? 0) >= 25 })
        let progress = moving["progress"] as! [String: Any]
        XCTAssertEqual(progress["totalSteps"] as? Int, 400)
        XCTAssertNotNil(progress["memoryBytes"])
        let stopped = try await h.post("/api/jobs/\(id)/stop", [:])
        XCTAssertEqual(stopped.json["state"] as? String, "stopping")
        let ended = try await h.waitForJob(id)
        XCTAssertEqual(ended["state"] as? String, "stopped")
        let all = try await h.get("/api/jobs/\(id)/events")
        let events = all.body.components(separatedBy: "\n\n").filter { $0.hasPrefix("id: ") }
        let metrics = events.filter { $0.contains("event: metric") }
        XCTAssertGreaterThanOrEqual(metrics.count, 25, "every training-log record is an event")
        XCTAssertTrue(events.contains { $0.contains("event: metric") && $0.contains("eval_loss") }, "the eval-loss curve too")
        XCTAssertTrue(all.body.hasSuffix("event: end\ndata: {}\n\n"))
        let replay = try await h.get("/api/jobs/\(id)/events", headers: [("Last-Event-ID", "10")])
        let replayed = replay.body.components(separatedBy: "\n\n").filter { $0.hasPrefix("id: ") }
        XCTAssertEqual(replayed, Array(events.dropFirst(11)), "a page that reconnects gets exactly what it missed")
        let result = try await h.get("/api/jobs/\(id)/result").json
        let checkpoint = try XCTUnwrap(result["checkpoint"] as? String)
        XCTAssertTrue(checkpoint.hasPrefix(output + "/checkpoint-"))
        // Resume: the same command from the newest checkpoint, into the same folder, to the end.
        let resumed = try await h.post("/api/jobs/\(id)/resume", [:])
        XCTAssertEqual(resumed.status, 201, resumed.body)
        let args = resumed.json["arguments"] as! [String]
        XCTAssertEqual(Array(args.suffix(2)), ["--resume", checkpoint])
        let second = resumed.json["id"] as! String
        XCTAssertEqual(resumed.json["resumes"] as? String, id)
        let finished = try await h.waitForJob(second)
        XCTAssertEqual(finished["state"] as? String, "succeeded", "\(finished)")
        let summary = try await h.get("/api/jobs/\(second)/result").json["summary"] as? [String: Any]
        XCTAssertEqual(summary?["steps"] as? Int, 400)
        // The run is in the workdir's history, its whole log readable (both jobs' steps).
        let runs = try await h.get("/api/runs").json["runs"] as? [[String: Any]] ?? []
        let run = try XCTUnwrap(runs.first { $0["path"] as? String == output })
        XCTAssertGreaterThanOrEqual(run["records"] as? Int ?? 0, 400)
        let curve = try await h.get("/api/runs/metrics?path=\(output)").json["metrics"] as? [[String: Any]] ?? []
        XCTAssertEqual(curve.filter { $0["type"] as? String == "train" }.compactMap { $0["step"] as? Int }.max(), 400)
        let again = try await h.post("/api/jobs/\(second)/resume", [:])
        XCTAssertEqual(again.status, 409, "a finished run has nothing to resume")

        // Chat: a server with the trained adapter behind the proxy.
        let serve = try await h.post("/api/jobs", ["command": "serve", "options": ["model": demo["model"]!, "adapter": ["tuned=\(output)"], "dtype": "float32"]])
        XCTAssertEqual(serve.status, 201, serve.body)
        let chat = serve.json["id"] as! String
        let up = try await h.waitForJob(chat, until: { $0["port"] != nil || ($0["state"] as? String) != "running" }, timeout: 120)
        XCTAssertNotNil(up["port"], "\(up)")
        let models = try await h.get("/api/chat/\(chat)/v1/models").json["data"] as? [[String: Any]]
        XCTAssertEqual(models?.map { $0["id"] as! String }.last, "tuned")
        let answer = try await h.post("/api/chat/\(chat)/v1/chat/completions", [
            "model": "tuned", "messages": [["role": "user", "content": "使用中医知识正确回答适合这个病例的中成药。 最近火气特别大，眼睛又红又肿，咽喉肿痛，嘴唇起了疮。"]],
            "max_tokens": 6, "temperature": 0])
        XCTAssertEqual(answer.status, 200, answer.body)
        let content = ((answer.json["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        XCTAssertTrue(content?.hasPrefix("推荐用药") == true, "the trained adapter answers in the trained layout: \(content ?? "nil")")
        _ = try await h.post("/api/jobs/\(chat)/stop", [:])
        let chatEnded = try await h.waitForJob(chat, timeout: 60)
        XCTAssertEqual(chatEnded["state"] as? String, "stopped")
        let gone = try await h.get("/api/chat/\(chat)/v1/models")
        XCTAssertEqual(gone.status, 409)

        // Export: a GGUF of the merged model, with its size.
        let quantize = try await h.post("/api/jobs", ["command": "quantize", "options": ["model": demo["model"]!, "adapter": output, "type": "q8_0"]])
        XCTAssertEqual(quantize.status, 201, quantize.body)
        let q = quantize.json["id"] as! String
        let exported = try await h.waitForJob(q)
        XCTAssertEqual(exported["state"] as? String, "succeeded", "\(exported)")
        let file = try await h.get("/api/jobs/\(q)/result").json
        let path = try XCTUnwrap(file["output"] as? String)
        XCTAssertTrue(path.hasSuffix(".gguf"))
        XCTAssertEqual(file["bytes"] as? Int, try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
        XCTAssertGreaterThan(file["bytes"] as? Int ?? 0, 1_000_000)
        try await h.stop()
    }

    func testAKeyGuardsTheAPIAndOtherAddressesNeedOne() async throws {
        var open = WebUIServer.Settings(workdir: dir.url, executable: PeftCommand.executable)
        open.host = "0.0.0.0"
        XCTAssertThrowsError(try WebUIServer(settings: open)) { XCTAssertTrue("\($0)".contains("--api-key"), "\($0)") }
        let h = try await Harness(workdir: dir.url, apiKey: "sekret")
        let page = try await h.get("/")
        XCTAssertEqual(page.status, 200, "the page itself holds nothing secret: it asks for the key")
        let denied = try await h.get("/api/jobs")
        XCTAssertEqual(denied.status, 401)
        let bearer = try await h.get("/api/jobs", headers: [("Authorization", "Bearer sekret")])
        XCTAssertEqual(bearer.status, 200)
        let wrong = try await h.post("/api/login", ["key": "guess"])
        XCTAssertEqual(wrong.status, 403)
        let login = try await h.post("/api/login", ["key": "sekret"])
        XCTAssertEqual(login.status, 200)
        let cookie = try XCTUnwrap(login.headers.first { $0.0.lowercased() == "set-cookie" }?.1)
        XCTAssertTrue(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), cookie)
        let withCookie = try await h.get("/api/jobs", headers: [("Cookie", String(cookie.split(separator: ";")[0]))])
        XCTAssertEqual(withCookie.status, 200)
        try await h.stop()
    }
}

extension HTTPReply {
    /// The web UI's error message.
    var error: String { json["error"] as? String ?? "<no error>" }
}

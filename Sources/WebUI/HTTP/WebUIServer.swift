import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Training

/// `peft webui`: one embedded page and the JSON API behind it. Every piece of work is a `peft` child process owned by
/// the `JobManager`; the page only asks, watches (server-sent events, replayed from `Last-Event-ID`) and shows.
///
/// Routes (all under /api need the key when one is set):
/// `GET /` the page; `POST /api/login`; `GET /api/info`; `GET /api/schema/{command}`; `GET /api/suggest`;
/// `GET /api/datasets?dir=`; `POST /api/preview`; `POST /api/command`; `GET|POST /api/jobs`; `GET /api/jobs/{id}`;
/// `GET /api/jobs/{id}/events`; `GET /api/jobs/{id}/metrics`; `GET /api/runs`; `GET /api/runs/metrics?path=`; `POST /api/jobs/{id}/stop`; `POST /api/jobs/{id}/resume`; `GET /api/jobs/{id}/result`;
/// `GET /api/files?path=`; `/api/chat/{id}/v1/**` (the chat job's OpenAI API).
public final class WebUIServer: Sendable {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        public var port = 7860
        public var apiKey: String?
        /// The workdir, the `peft` executable jobs run, how many run at once.
        public var jobs: JobManager.Settings
        public init(workdir: URL, executable: URL) { jobs = JobManager.Settings(workdir: workdir, executable: executable) }
    }

    /// The subcommands the page runs as jobs, and the one it runs to preview data.
    public static let jobCommands = ["train", "eval", "compare", "merge", "quantize", "serve"]
    static let schemaCommands = jobCommands + ["preview"]

    public let settings: Settings
    public let workspace: Workspace
    public let jobs: JobManager
    let schemas: [String: CommandSchema]
    /// The key of the chat servers this server starts (they listen on 127.0.0.1 only; the page goes through the proxy).
    let chatKey: String

    public init(settings: Settings) throws {
        if !Self.isLoopback(settings.host) && (settings.apiKey ?? "").isEmpty {
            throw WebUIError.badRequest("--host \(settings.host) reaches other machines: give --api-key KEY (or PEFT_API_KEY)")
        }
        self.settings = settings
        workspace = try Workspace(root: settings.jobs.workdir)
        try workspace.seedDemo()
        var jobSettings = settings.jobs
        jobSettings.workdir = workspace.root
        jobs = try JobManager(settings: jobSettings)
        var schemas: [String: CommandSchema] = [:]
        for command in Self.schemaCommands {
            schemas[command] = try CommandSchema(command: command, dump: Self.dumpHelp(settings.jobs.executable, command))
        }
        self.schemas = schemas
        chatKey = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
        for job in jobs.list() { workspace.allow(Self.paths(in: job.arguments)) }
    }

    static func isLoopback(_ host: String) -> Bool { ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host) }

    /// `executable command --experimental-dump-help`: the command's options as its parser knows them.
    static func dumpHelp(_ executable: URL, _ command: String) throws -> Data {
        let run = try JobProcess.capture(executable, [command, "--experimental-dump-help"],
                                         directory: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        guard run.status == 0 else {
            throw WebUIError.badRequest("\(executable.path) \(command) --experimental-dump-help failed (status \(run.status))")
        }
        return run.out
    }

    /// The values of path-like options in a command line (remembered so their results may be read back).
    static func paths(in arguments: [String]) -> [String] {
        let pathOptions: Set<String> = ["--model", "--data", "--eval-data", "--output", "--output-dir", "--adapter", "--dataset-dir",
                                        "--resume", "--log", "--benchmark-dir", "--ref-model", "--teacher"]
        var out: [String] = []
        for (i, a) in arguments.enumerated() where pathOptions.contains(a) && i + 1 < arguments.count {
            let v = arguments[i + 1]
            // --adapter NAME=DIR (serve)
            if a == "--adapter", let eq = v.firstIndex(of: "="), !v[..<eq].contains("/") { out.append(String(v[v.index(after: eq)...])) } else { out.append(v) }
        }
        return out
    }

    // MARK: The application

    public func application(logger: Logger, onListening: @escaping @Sendable (Int) -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router()
        router.add(middleware: GuardMiddleware(apiKey: settings.apiKey, loopback: Self.isLoopback(settings.host)))
        router.get("/") { _, _ in Self.page() }
        router.get("/favicon.ico") { _, _ in Response(status: .noContent) }
        router.post("/api/login") { request, _ in try await self.login(request) }
        router.get("/api/info") { _, _ in try self.info() }
        router.get("/api/schema/{command}") { _, context in
            let command = try context.parameters.require("command")
            guard let s = self.schemas[command] else { throw WebUIError.notFound("no schema for \(command)") }
            return try Self.json(s.json)
        }
        router.get("/api/suggest") { _, _ in try Self.json(self.workspace.suggestions()) }
        router.get("/api/datasets") { request, _ in try self.datasets(request) }
        router.post("/api/preview") { request, _ in try await self.preview(request) }
        router.post("/api/command") { request, _ in
            let body = try await Self.body(request)
            let p = try self.prepare(command: body["command"] as? String ?? "", options: body["options"] as? [String: Any] ?? [:])
            let shown = p.options.filter { $0.key == "output" || $0.key == "output-dir" }
            return try Self.json(["arguments": p.arguments, "line": shellLine(["peft"] + p.arguments), "command": p.command, "filled": shown])
        }
        router.get("/api/jobs") { _, _ in try Self.json(["jobs": self.jobs.list().map(Self.object)]) }
        router.post("/api/jobs") { request, _ in try await self.submit(request) }
        router.get("/api/jobs/{id}") { _, context in try Self.json(Self.object(self.jobs.job(context.parameters.require("id")))) }
        router.get("/api/jobs/{id}/events") { request, context in try self.events(request, id: context.parameters.require("id")) }
        router.post("/api/jobs/{id}/stop") { _, context in try Self.json(Self.object(self.jobs.stop(context.parameters.require("id")))) }
        router.post("/api/jobs/{id}/resume") { _, context in try self.resume(context.parameters.require("id")) }
        router.get("/api/jobs/{id}/result") { _, context in try self.result(context.parameters.require("id")) }
        router.get("/api/jobs/{id}/metrics") { _, context in
            let events = try self.jobs.events(context.parameters.require("id")).filter { $0.kind == .metric }
            return try Self.json(["metrics": events.compactMap { try? JSONSerialization.jsonObject(with: Data($0.data.utf8)) }])
        }
        router.get("/api/runs") { _, _ in
            let root = self.workspace.root.path + "/"
            return try Self.json(["runs": self.workspace.runs().map { run -> [String: Any] in
                ["path": run.path, "name": run.path.hasPrefix(root) ? String(run.path.dropFirst(root.count)) : run.path,
                 "records": run.records, "modified": run.modified]
            }])
        }
        router.get("/api/runs/metrics") { request, _ in
            guard let path = request.uri.queryParameters.get("path") else { throw WebUIError.badRequest("give ?path=RUN") }
            let log = try self.workspace.readable(path + "/train_log.jsonl")
            let text = try String(contentsOf: log, encoding: .utf8)
            return try Self.json(["metrics": text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }])
        }
        router.get("/api/files") { request, _ in try self.file(request) }
        for method in [HTTPRequest.Method.get, .post] {
            router.on("/api/chat/{id}/v1/**", method: method) { request, context in try await self.proxy(request, context: context) }
        }
        let jobs = self.jobs
        return Application(router: router,
                           configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "peft-webui"),
                           services: [JobService(jobs: jobs)],
                           onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
                           logger: logger)
    }

    // MARK: Handlers

    static func json(_ object: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func object(_ job: Job) -> Any {
        (try? JSONSerialization.jsonObject(with: Data(job.json().utf8))) ?? [:]
    }

    static func body(_ request: Request) async throws -> [String: Any] {
        var request = request
        let buffer = try await request.collectBody(upTo: 1 << 20)
        let data = Data(buffer.readableBytesView)
        guard !data.isEmpty else { return [:] }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw WebUIError.badRequest("the request body must be a JSON object")
        }
        return object
    }

    static func page() -> Response {
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                                         .init("Content-Security-Policy")!: "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-src 'self'"],
                 body: .init(byteBuffer: ByteBuffer(string: WebPage.html)))
    }

    func login(_ request: Request) async throws -> Response {
        let body = try await Self.body(request)
        guard let key = settings.apiKey else { return try Self.json(["ok": true]) }
        guard body["key"] as? String == key else { throw WebUIError.forbidden("wrong key") }
        var response = try Self.json(["ok": true])
        response.headers[.setCookie] = "peft_webui_key=\(key); Path=/; HttpOnly; SameSite=Strict"
        return response
    }

    func info() throws -> Response {
        try Self.json([
            "workdir": workspace.root.path,
            "demo": ["model": workspace.demoModel.path,
                     "train": workspace.demoData.appendingPathComponent("train.jsonl").path,
                     "test": workspace.demoData.appendingPathComponent("test.jsonl").path],
            "methods": CommandSchema.methods,
            "commands": Self.jobCommands,
            "max_running": settings.jobs.maxRunning,
        ])
    }

    func datasets(_ request: Request) throws -> Response {
        guard let dir = request.uri.queryParameters.get("dir"), !dir.isEmpty else { throw WebUIError.badRequest("give ?dir=FOLDER") }
        let url = workspace.resolve(dir)
        do {
            let entries = try DatasetCatalog.entries(in: url)
            return try Self.json(["datasets": entries.map(\.json)])
        } catch {
            throw WebUIError.badRequest("\(error)")
        }
    }

    /// `peft preview --json` with the page's options, run now (it reads only the tokenizer).
    func preview(_ request: Request) async throws -> Response {
        let body = try await Self.body(request)
        guard let schema = schemas["preview"] else { throw WebUIError.notFound("no preview") }
        let given = body["options"] as? [String: Any] ?? [:]
        let known = Set(schema.options.map(\.name))
        var options = given.filter { known.contains($0.key) }
        options["json"] = true
        let arguments = try schema.arguments(options)
        workspace.allow(Self.paths(in: arguments))
        let executable = settings.jobs.executable, root = workspace.root
        // Off the server's threads: the preview reads a tokenizer and a data set.
        let (status, out, err) = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try JobProcess.capture(executable, arguments, directory: root) })
            }
        }
        guard status == 0, let object = try? JSONSerialization.jsonObject(with: out) else {
            let message = String(decoding: err, as: UTF8.self).split(separator: "\n").filter { !$0.hasPrefix("Usage:") && !$0.hasPrefix("  See '") }
                .joined(separator: "\n").replacingOccurrences(of: "Error: ", with: "")
            throw WebUIError.badRequest(message.isEmpty ? "peft preview failed (status \(status))" : message)
        }
        return try Self.json(object)
    }

    /// A job ready to start: its command line (with the defaults the server fills in: a fresh output folder, the
    /// chat server's address and key), where it writes, and the training log to follow.
    struct Prepared {
        var command: String
        var options: [String: Any]
        var arguments: [String]
        var output: String?
        var metricsLog: URL?
        var environment: [String: String] = [:]
    }

    func prepare(command: String, options given: [String: Any]) throws -> Prepared {
        guard Self.jobCommands.contains(command), let schema = schemas[command] else {
            throw WebUIError.badRequest("'command' must be one of \(Self.jobCommands.joined(separator: ", "))")
        }
        var options = given
        var environment: [String: String] = [:]
        var output: String?
        var metricsLog: URL?
        func text(_ key: String) -> String? { (options[key] as? String).flatMap { $0.isEmpty ? nil : $0 } }
        switch command {
        case "train":
            if text("output") == nil { options["output"] = workspace.freshPath("runs", label: text("method") ?? "lora") }
            output = text("output")
            metricsLog = workspace.resolve(text("log") ?? output! + "/train_log.jsonl")
        case "eval":
            if options["generate"] as? Bool == true && text("output-dir") == nil { options["output-dir"] = workspace.freshPath("evals", label: "eval") }
            if text("benchmark") != nil && text("output") == nil { options["output"] = workspace.freshPath("evals", label: text("benchmark")!) }
            options["json"] = true
            output = text("output-dir") ?? text("output")
        case "compare":
            if text("output") == nil { options["output"] = workspace.freshPath("compare", label: "compare") }
            output = text("output")
        case "merge":
            if text("output") == nil { options["output"] = workspace.freshPath("exports", label: "merged") }
            output = text("output")
        case "quantize":
            if text("output") == nil { options["output"] = workspace.freshPath("exports", label: "model-\(text("type") ?? "q8_0")") + ".gguf" }
            output = text("output")
        case "serve":
            // The chat server listens on this machine only, on a free port, behind the page's proxy and its key.
            options["host"] = "127.0.0.1"
            options["port"] = 0
            options["api-key"] = nil
            environment["PEFT_API_KEY"] = chatKey
        default: break
        }
        let arguments = try schema.arguments(options)
        if let output {
            // Jobs write into folders of the workdir (runs/, exports/, ...) that may not exist yet.
            try? FileManager.default.createDirectory(at: workspace.resolve(output).deletingLastPathComponent(), withIntermediateDirectories: true)
        }
        return Prepared(command: command, options: options, arguments: arguments, output: output.map { workspace.resolve($0).path },
                        metricsLog: metricsLog, environment: environment)
    }

    func submit(_ request: Request) async throws -> Response {
        let body = try await Self.body(request)
        let p = try prepare(command: body["command"] as? String ?? "", options: body["options"] as? [String: Any] ?? [:])
        workspace.allow(Self.paths(in: p.arguments))
        let job = try jobs.submit(kind: p.command, arguments: p.arguments, output: p.output, metricsLog: p.metricsLog, environment: p.environment)
        return try Self.json(Self.object(job), status: .created)
    }

    /// A stopped (or failed, or lost) training run again from its newest checkpoint, into the same folder.
    func resume(_ id: String) throws -> Response {
        let job = try jobs.job(id)
        guard job.kind == "train", job.state.isFinal, job.state != .succeeded, let output = job.output else {
            throw JobManager.Failure.conflict("only a training run that stopped, failed or was lost can be resumed (\(id) is a \(job.kind) job, \(job.state.rawValue))")
        }
        guard let checkpoint = Self.newestCheckpoint(in: URL(fileURLWithPath: output)) else {
            throw JobManager.Failure.conflict("\(output) holds no checkpoint-N folder to resume from")
        }
        var arguments: [String] = []
        var i = 0
        while i < job.arguments.count {
            if job.arguments[i] == "--resume" { i += 2; continue }
            arguments.append(job.arguments[i])
            i += 1
        }
        arguments += ["--resume", checkpoint.path]
        var log = URL(fileURLWithPath: output).appendingPathComponent("train_log.jsonl")
        if let l = job.arguments.firstIndex(of: "--log"), l + 1 < job.arguments.count { log = workspace.resolve(job.arguments[l + 1]) }
        let next = try jobs.submit(kind: "train", arguments: arguments, output: output, metricsLog: log, resumes: id)
        return try Self.json(Self.object(next), status: .created)
    }

    static func newestCheckpoint(in folder: URL) -> URL? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        let best = names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("checkpoint-"), let n = Int(name.dropFirst("checkpoint-".count)) else { return nil }
            return (n, name)
        }.max { $0.0 < $1.0 }
        return best.map { folder.appendingPathComponent($0.1) }
    }

    /// What a finished job made: a run's summary, an evaluation's metrics and predictions, a comparison's report, an
    /// export's file and size.
    func result(_ id: String) throws -> Response {
        let job = try jobs.job(id)
        var out: [String: Any] = ["id": id, "kind": job.kind, "state": job.state.rawValue]
        let fm = FileManager.default
        func readJSON(_ url: URL) -> Any? { fm.contents(atPath: url.path).flatMap { try? JSONSerialization.jsonObject(with: $0) } }
        if let output = job.output {
            let url = URL(fileURLWithPath: output)
            out["output"] = output
            switch job.kind {
            case "train":
                out["summary"] = readJSON(url.appendingPathComponent("train_summary.json"))
                out["adapter"] = fm.fileExists(atPath: url.appendingPathComponent("adapter_config.json").path) ? output : nil
                out["checkpoint"] = Self.newestCheckpoint(in: url)?.path
            case "eval":
                if let text = try? String(contentsOf: url.appendingPathComponent("predictions.jsonl"), encoding: .utf8) {
                    out["predictions"] = text.split(separator: "\n").prefix(500).compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }
                }
                out["benchmark"] = readJSON(url.appendingPathComponent("results.json"))
            case "compare":
                let report = url.appendingPathComponent("compare.html")
                if fm.fileExists(atPath: report.path) { out["report"] = report.path }
            case "merge", "quantize":
                out["bytes"] = Self.size(of: url)
            default: break
            }
        }
        if job.kind == "eval" {
            // `peft eval --json` prints one JSON object: the last stdout line that parses.
            let lines = (try jobs.events(id)).filter { $0.kind == .log && $0.data.hasPrefix("{") }
            if let metrics = lines.reversed().lazy.compactMap({ try? JSONSerialization.jsonObject(with: Data($0.data.utf8)) }).first {
                out["metrics"] = metrics
            }
        }
        if job.kind == "serve", let port = job.port { out["port"] = port }
        return try Self.json(out)
    }

    static func size(of url: URL) -> Int? {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: url.path, isDirectory: &isDir) else { return nil }
        if !isDir.boolValue { return (try? fm.attributesOfItem(atPath: url.path)[.size] as? Int) ?? nil }
        let names = (try? fm.subpathsOfDirectory(atPath: url.path)) ?? []
        return names.reduce(0) { $0 + ((try? fm.attributesOfItem(atPath: url.appendingPathComponent($1).path)[.size] as? Int) ?? 0) }
    }

    func file(_ request: Request) throws -> Response {
        guard let path = request.uri.queryParameters.get("path"), !path.isEmpty else { throw WebUIError.badRequest("give ?path=FILE") }
        let url = try workspace.readable(path)
        guard let data = FileManager.default.contents(atPath: url.path) else { throw WebUIError.notFound("\(path): unreadable") }
        let types = ["html": "text/html; charset=utf-8", "json": "application/json", "jsonl": "application/x-ndjson",
                     "md": "text/markdown; charset=utf-8", "txt": "text/plain; charset=utf-8", "png": "image/png", "svg": "image/svg+xml"]
        let type = types[url.pathExtension.lowercased()] ?? "application/octet-stream"
        return Response(status: .ok, headers: [.contentType: type, .cacheControl: "no-store"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// A job's events as server-sent events: those after `Last-Event-ID` (or ?after=), then live ones until it ends.
    func events(_ request: Request, id: String) throws -> Response {
        let header = request.headers.first { $0.name.canonicalName == "last-event-id" }?.value
        let after = Int(header ?? request.uri.queryParameters.get("after") ?? "") ?? -1
        let (backlog, updates) = try jobs.subscribe(id, after: after)
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "retry: 1500\n\n"))
            var text = ""
            for e in backlog {
                text += e.sse
                if text.utf8.count > 1 << 16 {
                    try await writer.write(ByteBuffer(string: text))
                    text = ""
                }
            }
            if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
            if let updates {
                for await update in updates {
                    switch update {
                    case .event(let e): try await writer.write(ByteBuffer(string: e.sse))
                    case .progress(let job): try await writer.write(ByteBuffer(string: "event: progress\ndata: \(job.json())\n\n"))
                    case .ping: try await writer.write(ByteBuffer(string: ": ping\n\n"))
                    }
                }
            }
            try await writer.write(ByteBuffer(string: "event: end\ndata: {}\n\n"))
            try await writer.finish(nil)
        })
    }

    /// The chat job's OpenAI API, reached through this server (the page never needs the chat server's key or port).
    func proxy(_ request: Request, context: BasicRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let job = try jobs.job(id)
        guard job.kind == "serve", job.state == .running, let port = job.port else {
            throw JobManager.Failure.conflict("chat job \(id) is not running (\(job.state.rawValue))")
        }
        let rest = context.parameters.getCatchAll().joined(separator: "/")
        var upstream = HTTPClientRequest(url: "http://127.0.0.1:\(port)/v1/\(rest)")
        upstream.method = request.method == .post ? .POST : .GET
        upstream.headers.add(name: "Authorization", value: "Bearer \(chatKey)")
        if request.method == .post {
            var request = request
            let body = try await request.collectBody(upTo: 4 << 20)
            upstream.headers.add(name: "Content-Type", value: "application/json")
            upstream.body = .bytes(body)
        }
        let response = try await HTTPClient.shared.execute(upstream, timeout: .hours(2))
        let type = response.headers.first(name: "content-type") ?? "application/json"
        return Response(status: .init(code: Int(response.status.code)), headers: [.contentType: type, .cacheControl: "no-cache"],
                        body: ResponseBody(asyncSequence: response.body))
    }
}

/// The job manager beside the HTTP server: on SIGINT / SIGTERM it stops the children (a training run saves its
/// checkpoint) before the process ends.
struct JobService: Service {
    let jobs: JobManager
    func run() async throws {
        try? await gracefulShutdown()
        await jobs.shutdown()
    }
}

/// The key (Bearer header or the login cookie) on /api, the Host of a loopback server (no DNS rebinding), JSON bodies
/// on POST (no cross-site form posts), and errors as {"error": message} with their status.
struct GuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let apiKey: String?
    let loopback: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let path = request.uri.path
            if loopback, let host = request.head.authority {
                let name = host.hasPrefix("[") ? String(host.prefix { $0 != "]" }) + "]" : String(host.split(separator: ":").first ?? "")
                guard WebUIServer.isLoopback(name) else { throw WebUIError.forbidden("this server answers only requests for localhost (Host: \(host))") }
            }
            if path.hasPrefix("/api/") {
                if request.method == .post, !(request.headers[.contentType] ?? "").hasPrefix("application/json") {
                    throw WebUIError.badRequest("send Content-Type: application/json")
                }
                if let key = apiKey, path != "/api/login" {
                    let bearer = request.headers[.authorization] == "Bearer \(key)"
                    let cookie = request.headers[values: .cookie].contains { $0.split(separator: ";").contains { $0.trimmingCharacters(in: .whitespaces) == "peft_webui_key=\(key)" } }
                    guard bearer || cookie else { return try WebUIServer.json(["error": "this server needs its key (--api-key)"], status: .unauthorized) }
                }
            }
            return try await next(request, context)
        } catch let e as WebUIError {
            let status: HTTPResponse.Status = switch e {
            case .badRequest: .badRequest
            case .forbidden: .forbidden
            case .notFound: .notFound
            }
            return try WebUIServer.json(["error": e.description], status: status)
        } catch let e as JobManager.Failure {
            let status: HTTPResponse.Status = switch e {
            case .notFound: .notFound
            case .conflict: .conflict
            }
            return try WebUIServer.json(["error": e.description], status: status)
        } catch let e as HTTPError {
            return try WebUIServer.json(["error": e.body ?? "\(e.status.reasonPhrase): \(request.uri.path)"], status: e.status)
        } catch {
            return try WebUIServer.json(["error": "\(error)"], status: .internalServerError)
        }
    }
}

import ArgumentParser
import Foundation
import Logging
import WebUI

struct WebUICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webui",
        abstract: "The whole workflow in the browser: train (every method), evaluate, compare, chat and export, with live curves.",
        discussion: "Serves one self-contained page (English and Chinese). Every job runs as a `peft` child process owned by this "
            + "server: closing or reloading the page changes nothing, and a page that reconnects replays each job's log and "
            + "curves. Jobs queue; --max-jobs run at once (chat servers are not counted). The workdir holds the built-in demo "
            + "model and data (written at first start), the jobs' records (jobs/), and the default homes of runs/, evals/, "
            + "compare/ and exports/; relative paths typed on the page are relative to it. Only the workdir and the paths typed "
            + "into jobs are served. Binds 127.0.0.1 by default; any other address needs --api-key. SIGINT or SIGTERM: running "
            + "jobs are stopped (a training run saves a checkpoint), then the server exits.")

    @Option(help: "Address to listen on (127.0.0.1: this machine only; any other needs --api-key).") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed at start).") var port = 7860
    @Option(help: "Key the page asks for once (default: PEFT_API_KEY if set).") var apiKey: String?
    @Option(help: "Folder for the demo model and data, job records and outputs.") var workdir = "peft-webui"
    @Option(help: "Jobs running at once (training, evaluation, comparison, export); the others wait in a queue.") var maxJobs = 1

    func validate() throws {
        guard port >= 0 && port <= 65535 else { throw ValidationError("--port must be in 0...65535") }
        guard maxJobs >= 1 else { throw ValidationError("--max-jobs must be at least 1") }
    }

    func run() async throws {
        var settings = WebUIServer.Settings(workdir: URL(fileURLWithPath: (workdir as NSString).expandingTildeInPath),
                                            executable: try selfExecutable())
        settings.host = host
        settings.port = port
        settings.apiKey = apiKey ?? ProcessInfo.processInfo.environment["PEFT_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        settings.jobs.maxRunning = maxJobs
        let server: WebUIServer
        do { server = try WebUIServer(settings: settings) } catch let e as WebUIError { throw ValidationError(e.description) }
        var logger = Logger(label: "peft.webui")
        logger.logLevel = .warning
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        let root = server.workspace.root.path
        let app = server.application(logger: logger) { port in
            Terminal.note("peft webui: open http://\(host):\(port)/ (workdir \(root))")
        }
        try await app.runService()
        Terminal.note("peft webui: stopped")
    }
}

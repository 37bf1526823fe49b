import ArgumentParser
import Foundation
import Hub

/// `--model` / `--adapter` values that are hub ids (`ORG/NAME[@REVISION]`) become local snapshot folders (downloaded
/// into huggingface_hub's cache, through `HF_ENDPOINT` when set) before a command runs; paths stay paths.
enum HubResolution {
    nonisolated(unsafe) private static var resolved: [String: URL] = [:]
    private static let lock = NSLock()

    /// The local folder for `text`: an existing path as given, a hub id as its snapshot.
    static func resolve(_ text: String) throws {
        let expanded = (text as NSString).expandingTildeInPath
        lock.lock()
        defer { lock.unlock() }
        guard resolved[text] == nil, !FileManager.default.fileExists(atPath: expanded), let repo = RepoID(text) else { return }
        let client = HubClient()
        let endpoint = client.settings.endpoint
        FileHandle.standardError.write(Data("fetching \(repo.name)@\(repo.revision) from \(endpoint) into \(client.settings.cache.path)\n".utf8))
        client.onProgress = HubProgress.reporter()
        do {
            resolved[text] = try client.snapshotSync(repo)
        } catch HubError.notFound(let what) {
            throw ValidationError("\(text): there is no such file or folder here, and \(what)")
        } catch {
            throw ValidationError("--model/--adapter \(text): \(error)")
        }
    }

    static func url(_ text: String) -> URL {
        lock.lock()
        defer { lock.unlock() }
        return resolved[text] ?? URL(fileURLWithPath: (text as NSString).expandingTildeInPath)
    }
}

/// Download progress on stderr: a line per file and size step (a terminal redraws it in place).
enum HubProgress {
    static func reporter() -> @Sendable (String, Int64, Int64?) -> Void {
        final class State: @unchecked Sendable {
            let lock = NSLock()
            var last: [String: (Int64, Date)] = [:]
            let start = Date()
        }
        let state = State()
        let tty = isatty(2) != 0
        return { file, bytes, total in
            state.lock.lock()
            defer { state.lock.unlock() }
            let now = Date()
            let previous = state.last[file]
            let finished = total.map { bytes >= $0 } ?? false
            // Every 64 MiB on a pipe, every half second on a terminal, and at the end.
            if let p = previous, !finished {
                if tty ? now.timeIntervalSince(p.1) < 0.5 : bytes - p.0 < 64 << 20 { return }
            }
            let elapsed = max(now.timeIntervalSince(previous?.1 ?? state.start), 1e-3)
            let rate = Double(bytes - (previous?.0 ?? 0)) / elapsed
            state.last[file] = (bytes, now)
            let mb = { (b: Int64) in String(format: "%.1f MB", Double(b) / 1e6) }
            var line = "  \(file): \(mb(bytes))" + (total.map { " of \(mb($0))" } ?? "") + String(format: ", %.1f MB/s", rate / 1e6)
            if let total, rate > 0, !finished { line += String(format: ", ETA %.0f s", Double(total - bytes) / rate) }
            FileHandle.standardError.write(Data(((tty ? "\r\u{1B}[K" : "") + line + (tty && !finished ? "" : "\n")).utf8))
        }
    }
}

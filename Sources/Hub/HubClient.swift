import AsyncHTTPClient
import CKernels
import Foundation
import NIOCore
import NIOHTTP1

/// Where and how the hub is reached, from huggingface_hub's environment: `HF_ENDPOINT` (a mirror), `HF_HOME`,
/// `HF_HUB_CACHE`, `HF_TOKEN` (or the token file under `HF_HOME`), `HF_HUB_OFFLINE=1`.
public struct HubSettings: Sendable {
    public var endpoint: String
    public var cache: URL
    public var token: String?
    public var offline: Bool

    public init(endpoint: String, cache: URL, token: String? = nil, offline: Bool = false) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.cache = cache
        self.token = token
        self.offline = offline
    }

    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) -> HubSettings {
        let home = env["HF_HOME"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")).appendingPathComponent("huggingface")
        let cache = env["HF_HUB_CACHE"].map { URL(fileURLWithPath: $0) } ?? home.appendingPathComponent("hub")
        var token = env["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        if token == nil, let data = FileManager.default.contents(atPath: home.appendingPathComponent("token").path) {
            token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            if token?.isEmpty == true { token = nil }
        }
        let offline = ["1", "ON", "YES", "TRUE"].contains((env["HF_HUB_OFFLINE"] ?? "").uppercased())
        return HubSettings(endpoint: env["HF_ENDPOINT"] ?? "https://huggingface.co", cache: cache, token: token, offline: offline)
    }
}

public enum HubError: Error, CustomStringConvertible {
    case gated(repo: String, status: Int)
    case notFound(String)
    case unreachable(endpoint: String, reason: String)
    case offline(String)
    case integrity(String)
    case http(String)
    /// A 5xx answer or a connection dropped mid-file: retried.
    case retry(String)
    case io(String)

    public var description: String {
        switch self {
        case .gated(let repo, let status):
            "\(repo) answered \(status): the repository is gated or private; accept the licence on the model page and set HF_TOKEN (or log in so that HF_HOME/token holds a token)"
        case .notFound(let what): what
        case .unreachable(let endpoint, let reason): "cannot reach the hub at \(endpoint) (\(reason)) and nothing is cached; check the network or set HF_ENDPOINT to a mirror"
        case .offline(let what): "HF_HUB_OFFLINE is set and \(what) is not in the cache"
        case .integrity(let what): what
        case .http(let what), .retry(let what): what
        case .io(let what): what
        }
    }
}

/// A repository id with an optional revision: `ORG/NAME` or `ORG/NAME@REVISION`.
public struct RepoID: Sendable, Equatable {
    public var name: String
    public var revision: String
    public enum Kind: String, Sendable { case model, dataset }
    public var kind: Kind

    /// Parses `ORG/NAME[@REV]`; nil for anything else (a path, a file).
    public init?(_ text: String, kind: Kind = .model) {
        var t = text
        var rev = "main"
        if let at = t.lastIndex(of: "@") {
            rev = String(t[t.index(after: at)...])
            t = String(t[..<at])
            if rev.isEmpty { return nil }
        }
        let parts = t.split(separator: "/", omittingEmptySubsequences: false)
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-_."))
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.unicodeScalars.allSatisfy(allowed.contains) && !$0.hasPrefix(".") }) else { return nil }
        name = t
        revision = rev
        self.kind = kind
    }

    /// huggingface_hub's cache folder: `models--ORG--NAME` / `datasets--ORG--NAME`.
    var folderName: String { "\(kind.rawValue)s--" + name.replacingOccurrences(of: "/", with: "--") }
    var urlPrefix: String { kind == .dataset ? "datasets/" : "" }
}

/// Downloads repository snapshots into huggingface_hub's cache layout exactly (`blobs/<etag>`, `snapshots/<commit>/`
/// holding relative links into blobs, `refs/<revision>`), so a model downloaded by Python is reused without a byte
/// transferred, and the other way round. Speaks the hub's protocol: revision info from
/// `/api/models/ORG/NAME/revision/REV`, files from `/ORG/NAME/resolve/COMMIT/PATH` (redirects followed by hand so
/// that `X-Linked-Etag` / `ETag` of the hub's answer name the blob), sha256 checked for LFS files, interrupted
/// downloads resumed with `Range` from `.incomplete` files, retries with backoff on 5xx and dropped connections.
public final class HubClient: @unchecked Sendable {
    public let settings: HubSettings
    /// Progress: (file, bytes so far, total bytes or nil).
    public var onProgress: (@Sendable (String, Int64, Int64?) -> Void)?
    public var maxAttempts = 5
    public var retryDelay: Double = 0.5
    private let http: HTTPClient

    public init(settings: HubSettings = .fromEnvironment(), connectTimeout: Double = 10) {
        self.settings = settings
        var config = HTTPClient.Configuration(redirectConfiguration: .disallow)
        config.timeout = .init(connect: .milliseconds(Int64(connectTimeout * 1000)), read: .seconds(60))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    deinit { try? http.syncShutdown() }

    func repoFolder(_ repo: RepoID) -> URL { settings.cache.appendingPathComponent(repo.folderName) }

    /// The commit a revision resolves to in the cache (a commit hash resolves to itself when its snapshot exists).
    func cachedCommit(_ repo: RepoID) -> String? {
        let folder = repoFolder(repo)
        if repo.revision.count == 40, FileManager.default.fileExists(atPath: folder.appendingPathComponent("snapshots/\(repo.revision)").path) {
            return repo.revision
        }
        guard let data = FileManager.default.contents(atPath: folder.appendingPathComponent("refs/\(repo.revision)").path) else { return nil }
        let commit = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return commit.isEmpty ? nil : commit
    }

    /// The snapshot folder of `repo` with every file (or those matching `include` and not `exclude`, shell globs).
    public func snapshot(_ repo: RepoID, include: [String] = [], exclude: [String] = []) async throws -> URL {
        let folder = repoFolder(repo)
        func cached() -> URL? {
            guard let commit = cachedCommit(repo) else { return nil }
            let dir = folder.appendingPathComponent("snapshots/\(commit)")
            return FileManager.default.fileExists(atPath: dir.path) ? dir : nil
        }
        if settings.offline {
            guard let dir = cached() else { throw HubError.offline("\(repo.name)@\(repo.revision)") }
            return dir
        }
        let info: (commit: String, files: [String])
        do {
            info = try await revisionInfo(repo)
        } catch HubError.unreachable(let endpoint, let reason) {
            if let dir = cached() { return dir }   // as huggingface_hub does: the cached snapshot when the hub is down
            throw HubError.unreachable(endpoint: endpoint, reason: reason)
        }
        let wanted = info.files.filter { f in
            (include.isEmpty || include.contains { Self.glob($0, f) }) && !exclude.contains { Self.glob($0, f) }
        }
        let snapshot = folder.appendingPathComponent("snapshots/\(info.commit)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        // A few files at once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            var pending = wanted[...]
            for _ in 0..<min(4, pending.count) {
                let f = pending.removeFirst()
                group.addTask { try await self.file(repo, commit: info.commit, path: f, snapshot: snapshot) }
            }
            while try await group.next() != nil {
                if let f = pending.popFirst() {
                    group.addTask { try await self.file(repo, commit: info.commit, path: f, snapshot: snapshot) }
                }
            }
        }
        if repo.revision != info.commit {
            let refs = folder.appendingPathComponent("refs")
            try FileManager.default.createDirectory(at: refs, withIntermediateDirectories: true)
            try Data(info.commit.utf8).write(to: refs.appendingPathComponent(repo.revision), options: .atomic)
        }
        return snapshot
    }

    /// Blocking form for command-line use.
    public func snapshotSync(_ repo: RepoID, include: [String] = [], exclude: [String] = []) throws -> URL {
        final class Box: @unchecked Sendable { var result: Result<URL, Error>? }
        let box = Box(), done = DispatchSemaphore(value: 0)
        Task {
            do { box.result = .success(try await self.snapshot(repo, include: include, exclude: exclude)) } catch { box.result = .failure(error) }
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }

    private func request(_ url: String, range: Int64? = nil) -> HTTPClientRequest {
        var r = HTTPClientRequest(url: url)
        r.headers.add(name: "User-Agent", value: "peft-swift/1.0")
        if let token = settings.token, url.hasPrefix(settings.endpoint) { r.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let range { r.headers.add(name: "Range", value: "bytes=\(range)-") }
        return r
    }

    private func check(_ status: HTTPResponseStatus, _ repo: RepoID, what: String) throws {
        switch status.code {
        case 200..<300: return
        case 401, 403: throw HubError.gated(repo: repo.name, status: Int(status.code))
        case 404: throw HubError.notFound("\(what) was not found on \(settings.endpoint) (HTTP 404): check the repository name and revision")
        case 500..<600: throw HubError.retry("\(what): HTTP \(status.code) from \(settings.endpoint)")
        default: throw HubError.http("\(what): HTTP \(status.code) from \(settings.endpoint)")
        }
    }

    /// Retries `body` on 5xx answers and dropped connections, with exponential backoff.
    private func withRetries<T>(_ what: String, _ body: () async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            do { return try await body() } catch {
                attempt += 1
                let transient: Bool
                if case HubError.retry = error { transient = true } else { transient = !(error is HubError) }
                guard transient, attempt < maxAttempts else {
                    if !(error is HubError) { throw HubError.unreachable(endpoint: settings.endpoint, reason: "\(what): \(error)") }
                    if case HubError.retry(let m) = error { throw HubError.http("\(m) (after \(attempt) attempts)") }
                    throw error
                }
                try await Task.sleep(nanoseconds: UInt64(retryDelay * pow(2, Double(attempt - 1)) * 1e9))
            }
        }
    }

    func revisionInfo(_ repo: RepoID) async throws -> (commit: String, files: [String]) {
        let url = "\(settings.endpoint)/api/\(repo.kind.rawValue)s/\(repo.name)/revision/\(repo.revision)"
        return try await withRetries("revision info of \(repo.name)") {
            let response = try await http.execute(request(url), timeout: .seconds(60))
            let body = try await response.body.collect(upTo: 64 << 20)
            try check(response.status, repo, what: "\(repo.name) at revision \(repo.revision)")
            return try Self.parseRevisionInfo(Data(body.readableBytesView), url: url)
        }
    }

    /// The hub's revision answer (`{"sha": ..., "siblings": [{"rfilename": ...}]}`): the commit and the repository's
    /// files. A file name that would leave the snapshot folder (absolute, `..`, empty parts, control characters) or
    /// a commit that is not a plain id is an error: the answer comes from the network.
    public static func parseRevisionInfo(_ data: Data, url: String) throws -> (commit: String, files: [String]) {
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let sha = object["sha"] as? String else {
            throw HubError.http("\(url): the answer has no commit (sha)")
        }
        guard !sha.isEmpty, sha.utf8.count <= 128, sha.utf8.allSatisfy({ $0 < 0x80 && (isalnum(Int32($0)) != 0 || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")) }),
              sha != ".", sha != ".." else {
            throw HubError.http("\(url): the commit '\(sha.prefix(80))' is not a commit id")
        }
        let files = ((object["siblings"] as? [Any]) ?? []).compactMap { ($0 as? [String: Any])?["rfilename"] as? String }
        for f in files where !isSafeRelativePath(f) {
            throw HubError.http("\(url): the file name '\(f.prefix(200))' would leave the snapshot folder")
        }
        return (sha, files)
    }

    /// A relative path of plain parts: no leading '/', no '.', '..' or empty parts, no backslash, NUL or control
    /// characters, at most 1024 bytes.
    static func isSafeRelativePath(_ path: String) -> Bool {
        guard !path.isEmpty, path.utf8.count <= 1024, !path.hasPrefix("/"),
              !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0 == "\\" || $0.value == 0x7F }) else { return false }
        return path.split(separator: "/", omittingEmptySubsequences: false).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }

    /// One file into blobs/ and its link into the snapshot.
    func file(_ repo: RepoID, commit: String, path: String, snapshot: URL) async throws {
        let link = snapshot.appendingPathComponent(path)
        if FileManager.default.fileExists(atPath: link.path) { return }
        let blobs = repoFolder(repo).appendingPathComponent("blobs")
        let encoded = path.split(separator: "/").map { String($0).addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "?#"))) ?? String($0) }.joined(separator: "/")
        let first = "\(settings.endpoint)/\(repo.urlPrefix)\(repo.name)/resolve/\(commit)/\(encoded)"
        let etag: String = try await withRetries("\(path)") {
            // Follow redirects by hand; the hub's own answer names the blob (X-Linked-Etag for LFS files, else ETag).
            var url = first, tag: String?, hops = 0
            var partialPath: URL?
            while true {
                let existing: Int64? = partialPath.flatMap { (try? FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? Int64) ?? nil }
                let response = try await http.execute(request(url, range: existing.flatMap { $0 > 0 ? $0 : nil }), timeout: .hours(6))
                if tag == nil {
                    tag = (response.headers.first(name: "X-Linked-Etag") ?? response.headers.first(name: "ETag")).map(Self.cleanEtag)
                }
                if (300..<400).contains(Int(response.status.code)), let location = response.headers.first(name: "Location") {
                    hops += 1
                    guard hops <= 5 else { throw HubError.http("\(path): too many redirects") }
                    url = location.hasPrefix("http") ? location : settings.endpoint + (location.hasPrefix("/") ? "" : "/") + location
                    if partialPath == nil, let tag { partialPath = blobs.appendingPathComponent(tag + ".incomplete") }
                    continue
                }
                try check(response.status, repo, what: "\(repo.name)/\(path)")
                guard let tag else { throw HubError.http("\(path): the hub sent no ETag") }
                let blob = blobs.appendingPathComponent(tag)
                if FileManager.default.fileExists(atPath: blob.path) { return tag }
                let partial = blobs.appendingPathComponent(tag + ".incomplete")
                if partialPath == nil, FileManager.default.fileExists(atPath: partial.path), response.status.code == 200,
                   let size = try? FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? Int64, size > 0 {
                    // A resumable partial file exists: ask again for the rest.
                    partialPath = partial
                    continue
                }
                if response.status.code != 206 || !FileManager.default.fileExists(atPath: partial.path) {
                    FileManager.default.createFile(atPath: partial.path, contents: nil)
                }
                guard let handle = FileHandle(forWritingAtPath: partial.path) else { throw HubError.io("cannot write \(partial.path)") }
                defer { try? handle.close() }
                var written: Int64 = response.status.code == 206 ? try handle.seekToEnd().int64 : 0
                if response.status.code != 206 { try handle.truncate(atOffset: 0) }
                let total = response.headers.first(name: "Content-Length").flatMap(Int64.init).map { $0 + written }
                for try await chunk in response.body {
                    do { try handle.write(contentsOf: Data(chunk.readableBytesView)) } catch {
                        throw HubError.io("cannot write \(partial.path): \(error.localizedDescription) (disk full?)")
                    }
                    written += Int64(chunk.readableBytes)
                    onProgress?(path, written, total)
                }
                if let total, written < total { throw HubError.retry("\(path): the connection dropped after \(written) of \(total) bytes") }
                try handle.close()
                if tag.count == 64, tag.allSatisfy(\.isHexDigit) {
                    guard try Self.sha256(partial) == tag.lowercased() else {
                        try? FileManager.default.removeItem(at: partial)
                        throw HubError.integrity("\(repo.name)/\(path): the downloaded bytes do not match their sha256 \(tag); removed, run again")
                    }
                }
                try FileManager.default.moveItem(at: partial, to: blob)
                return tag
            }
        }
        // The snapshot link: relative, as huggingface_hub writes it.
        try FileManager.default.createDirectory(at: link.deletingLastPathComponent(), withIntermediateDirectories: true)
        let depth = path.split(separator: "/").count - 1
        let target = String(repeating: "../", count: depth + 2) + "blobs/" + etag
        try? FileManager.default.removeItem(at: link)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: target)
    }

    static func cleanEtag(_ raw: String) -> String {
        var s = raw.trimmingCharacters(in: .whitespaces)
        if s.hasPrefix("W/") { s.removeFirst(2) }
        return s.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    static func sha256(_ url: URL) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { throw HubError.io("cannot read \(url.path)") }
        defer { try? handle.close() }
        var state = pk_sha256()
        pk_sha256_init(&state)
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            chunk.withUnsafeBytes { pk_sha256_update(&state, $0.bindMemory(to: UInt8.self).baseAddress!, chunk.count) }
        }
        var digest = [UInt8](repeating: 0, count: 32)
        pk_sha256_final(&state, &digest)
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    /// Shell-style glob (`*`, `?`) on a repository path, as huggingface_hub's allow/ignore patterns.
    public static func glob(_ pattern: String, _ path: String) -> Bool {
        fnmatch(pattern, path, 0) == 0
    }
}

private extension UInt64 {
    var int64: Int64 { Int64(self) }
}

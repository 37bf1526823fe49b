import Foundation
import Hub
import TestSupport
import XCTest

/// The hub client against a loopback hub serving the tiny fixture model: huggingface_hub's cache layout, reuse
/// without transfers, redirects with X-Linked-Etag, sha256 checks, a dropped connection resumed with Range, a gated
/// repository, missing repositories and revisions, offline mode and an unreachable endpoint.
final class HubClientTests: XCTestCase {
    var hub: LoopbackHub!
    var cache: URL!
    let commit = String(repeating: "ab12", count: 10)

    override func setUpWithError() throws {
        hub = try LoopbackHub()
        cache = temporaryURL("hub-cache")
        var files: [String: Data] = [:]
        let dir = modelFixture("tiny-qwen2")
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) {
            files[name] = try Data(contentsOf: dir.appendingPathComponent(name))
        }
        files["nested/notes.txt"] = Data("a file in a folder\n".utf8)
        hub.repos["org/tiny"] = .init(commit: commit, files: files)
        hub.repos["org/gated"] = .init(commit: commit, files: ["config.json": files["config.json"]!], gated: true)
    }

    override func tearDown() {
        hub.stop()
        try? FileManager.default.removeItem(at: cache)
    }

    func client(token: String? = nil, offline: Bool = false, endpoint: String? = nil) -> HubClient {
        let c = HubClient(settings: HubSettings(endpoint: endpoint ?? hub.endpoint, cache: cache, token: token, offline: offline),
                          connectTimeout: 0.5)
        c.retryDelay = 0.01
        return c
    }

    func testSnapshotInHuggingFaceHubsLayoutAndReuse() throws {
        let snapshot = try client().snapshotSync(try XCTUnwrap(RepoID("org/tiny")))
        let folder = cache.appendingPathComponent("models--org--tiny")
        XCTAssertEqual(snapshot.path, folder.appendingPathComponent("snapshots/\(commit)").path)
        XCTAssertEqual(try String(contentsOf: folder.appendingPathComponent("refs/main"), encoding: .utf8), commit)
        for (name, data) in hub.repos["org/tiny"]!.files {
            let link = snapshot.appendingPathComponent(name)
            XCTAssertEqual(try Data(contentsOf: link), data, name)
            // A relative link into blobs/, as huggingface_hub writes it.
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: link.path)
            XCTAssertTrue(target.hasPrefix(name.contains("/") ? "../../../blobs/" : "../../blobs/"), target)
        }
        // The large file's blob is named by its sha256 (X-Linked-Etag), fetched through the redirect.
        let big = hub.repos["org/tiny"]!.files["model.safetensors"]!
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("blobs/\(LoopbackHub.sha256Hex(big))").path))
        // A second run transfers nothing (only the revision is asked for).
        let before = hub.log.count
        _ = try client().snapshotSync(try XCTUnwrap(RepoID("org/tiny")))
        XCTAssertEqual(hub.log.dropFirst(before).map(\.1), ["/api/models/org/tiny/revision/main"])
        // Offline: straight from the cache, by revision or by commit.
        XCTAssertEqual(try client(offline: true).snapshotSync(try XCTUnwrap(RepoID("org/tiny"))).path, snapshot.path)
        XCTAssertEqual(try client(offline: true).snapshotSync(try XCTUnwrap(RepoID("org/tiny@\(commit)"))).path, snapshot.path)
        XCTAssertThrowsError(try client(offline: true).snapshotSync(try XCTUnwrap(RepoID("org/other")))) {
            XCTAssertTrue("\($0)".contains("HF_HUB_OFFLINE"), "\($0)")
        }
    }

    func testADroppedConnectionResumesWithRange() throws {
        hub.dropNextDownload = true
        let snapshot = try client().snapshotSync(try XCTUnwrap(RepoID("org/tiny")), include: ["*.safetensors"])
        let big = hub.repos["org/tiny"]!.files["model.safetensors"]!
        XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent("model.safetensors")), big)
        XCTAssertTrue(hub.log.contains { $0.1.hasPrefix("/cdn/") && $0.2 != nil }, "the second attempt asks for the rest with Range")
        // Only what --include asked for.
        XCTAssertFalse(FileManager.default.fileExists(atPath: snapshot.appendingPathComponent("config.json").path))
    }

    func testGatedMissingAndUnreachableAreClearErrors() throws {
        XCTAssertThrowsError(try client().snapshotSync(try XCTUnwrap(RepoID("org/gated")))) {
            XCTAssertTrue("\($0)".contains("accept the licence") && "\($0)".contains("HF_TOKEN"), "\($0)")
        }
        XCTAssertNoThrow(try client(token: hub.token).snapshotSync(try XCTUnwrap(RepoID("org/gated"))))
        XCTAssertThrowsError(try client().snapshotSync(try XCTUnwrap(RepoID("org/missing")))) { XCTAssertTrue("\($0)".contains("404"), "\($0)") }
        XCTAssertThrowsError(try client().snapshotSync(try XCTUnwrap(RepoID("org/tiny@v9")))) { XCTAssertTrue("\($0)".contains("revision v9"), "\($0)") }
        let closed = "http://127.0.0.1:9"   // nothing listens on the discard port here
        XCTAssertThrowsError(try client(endpoint: closed).snapshotSync(try XCTUnwrap(RepoID("org/tiny")))) {
            XCTAssertTrue("\($0)".contains(closed), "\($0)")
        }
        // Nothing half-written in snapshots/ after failures.
        let snapshots = cache.appendingPathComponent("models--org--missing/snapshots")
        XCTAssertFalse(FileManager.default.fileExists(atPath: snapshots.path))
    }

    func testRepoIDsAndEnvironment() {
        XCTAssertEqual(RepoID("Qwen/Qwen2.5-0.5B-Instruct")?.revision, "main")
        XCTAssertEqual(RepoID("Qwen/Qwen2.5-0.5B-Instruct@v1.0")?.revision, "v1.0")
        XCTAssertNil(RepoID("./models/qwen"))
        XCTAssertNil(RepoID("/abs/path"))
        XCTAssertNil(RepoID("model.gguf"))
        let s = HubSettings.fromEnvironment(["HF_ENDPOINT": "https://hf-mirror.com", "HF_HOME": "/tmp/hfhome", "HF_HUB_OFFLINE": "1"])
        XCTAssertEqual(s.endpoint, "https://hf-mirror.com")
        XCTAssertEqual(s.cache.path, "/tmp/hfhome/hub")
        XCTAssertTrue(s.offline)
        XCTAssertEqual(HubSettings.fromEnvironment(["HF_HUB_CACHE": "/x/hub"]).cache.path, "/x/hub")
    }
}

/// `--model ORG/NAME` and `peft download` through the executable, with HF_ENDPOINT pointing at the loopback hub.
final class HubCommandTests: XCTestCase {
    func testGenerateByHubIDThroughAMirror() throws {
        let hub = try LoopbackHub()
        defer { hub.stop() }
        var files: [String: Data] = [:]
        let dir = modelFixture("tiny-qwen2")
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) { files[name] = try Data(contentsOf: dir.appendingPathComponent(name)) }
        hub.repos["Qwen/Tiny-Instruct"] = .init(commit: String(repeating: "c0ffee", count: 7).prefix(40).description, files: files)
        let cache = temporaryURL("hub-cli")
        defer { try? FileManager.default.removeItem(at: cache) }
        let env = ["HF_ENDPOINT": hub.endpoint, "HF_HUB_CACHE": cache.path, "HF_TOKEN": ""]
        let g = try PeftCommand.run(["generate", "--model", "Qwen/Tiny-Instruct", "--prompt", "你好", "--max-new-tokens", "3", "--json"], environment: env)
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(g.stderr.contains("fetching Qwen/Tiny-Instruct@main from \(hub.endpoint)"), g.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: cache.appendingPathComponent("models--Qwen--Tiny-Instruct/refs/main").path))
        // Offline, from the cache.
        let offline = try PeftCommand.run(["generate", "--model", "Qwen/Tiny-Instruct", "--prompt", "你好", "--max-new-tokens", "3"],
                                          environment: env.merging(["HF_HUB_OFFLINE": "1"]) { $1 })
        XCTAssertEqual(offline.status, 0, offline.stderr)
        // peft download with globs into a plain folder.
        let local = temporaryURL("hub-local")
        defer { try? FileManager.default.removeItem(at: local) }
        let d = try PeftCommand.run(["download", "Qwen/Tiny-Instruct", "--include", "*.json", "--exclude", "tokenizer*", "--local-dir", local.path], environment: env)
        XCTAssertEqual(d.status, 0, d.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: local.appendingPathComponent("config.json").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: local.appendingPathComponent("tokenizer.json").path))
        let missing = try PeftCommand.run(["generate", "--model", "Qwen/None", "--prompt", "x"], environment: env)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("404"), missing.stderr)
    }
}

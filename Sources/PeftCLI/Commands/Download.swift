import ArgumentParser
import Foundation
import Hub

/// `peft download`: a repository snapshot into huggingface_hub's cache (or a plain folder), without loading it.
struct Download: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a model or data set from the hub (or the mirror in HF_ENDPOINT) into the huggingface_hub cache.",
        discussion: "The cache layout is huggingface_hub's (HF_HUB_CACHE, default ~/.cache/huggingface/hub), so files Python downloaded are reused and the other way round. HF_TOKEN (or HF_HOME/token) for gated repositories; HF_HUB_OFFLINE=1 answers from the cache only.")

    @Argument(help: "ORG/NAME") var repo: String
    @Option(help: "Branch, tag or commit.") var revision: String = "main"
    @Option(help: "Only files matching this glob (repeatable).") var include: [String] = []
    @Option(help: "Skip files matching this glob (repeatable).") var exclude: [String] = []
    @Option(help: "Also copy the files into this folder (plain files, no links).") var localDir: String?
    @Option(help: "model or dataset.") var repoType: String = "model"

    func run() throws {
        guard let kind = RepoID.Kind(rawValue: repoType) else { throw ValidationError("--repo-type must be model or dataset") }
        guard let id = RepoID(repo.contains("@") ? repo : repo + "@" + revision, kind: kind) else {
            throw ValidationError("'\(repo)' is not a repository id ORG/NAME")
        }
        let client = HubClient()
        client.onProgress = HubProgress.reporter()
        let snapshot: URL
        do { snapshot = try client.snapshotSync(id, include: include, exclude: exclude) } catch { throw ValidationError("\(error)") }
        var out = snapshot
        if let localDir {
            let dst = URL(fileURLWithPath: (localDir as NSString).expandingTildeInPath)
            let files = FileManager.default.enumerator(at: snapshot, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL } ?? []
            for f in files {
                let rel = String(f.path.dropFirst(snapshot.path.count + 1))
                // The snapshot may hold files of earlier downloads: copy only those this one asked for.
                guard include.isEmpty || include.contains(where: { HubClient.glob($0, rel) }),
                      !exclude.contains(where: { HubClient.glob($0, rel) }) else { continue }
                let resolved = f.resolvingSymlinksInPath()
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: resolved.path, isDirectory: &isDir), !isDir.boolValue else { continue }
                let target = dst.appendingPathComponent(rel)
                try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try? FileManager.default.removeItem(at: target)
                try FileManager.default.copyItem(at: resolved, to: target)
            }
            out = dst
        }
        print(out.path)
    }
}

import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A hub on 127.0.0.1 inside the test process, with the endpoints huggingface_hub uses: revision info
/// (`/api/models/ORG/NAME/revision/REV`), files (`/ORG/NAME/resolve/COMMIT/PATH`) that answer small files directly
/// with an `ETag` and large ("LFS") files with a redirect carrying `X-Linked-Etag` (their sha256) to a CDN path that
/// honours `Range`; a gated repository (401 without the right token); and a switch that drops the connection halfway
/// through the next CDN download.
final class LoopbackHub: @unchecked Sendable {
    struct Repo {
        var commit: String
        var files: [String: Data]
        var gated = false
    }

    let lock = NSLock()
    var repos: [String: Repo] = [:]
    var dropNextDownload = false
    /// Every request: (method, path, Range header).
    var log: [(String, String, String?)] = []
    let token = "hf_good_token"
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private var channel: Channel!
    var port: Int { channel.localAddress!.port! }
    var endpoint: String { "http://127.0.0.1:\(port)" }

    init() throws {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.pipeline.configureHTTPServerPipeline().flatMap { channel.pipeline.addHandler(Handler(hub: self)) }
            }
        channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
    }

    func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    static func sha256Hex(_ data: Data) -> String {
        // The client's own hashing is under test; the fixture's digests come from an independent computation.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        let inPipe = Pipe(), outPipe = Pipe()
        p.standardInput = inPipe
        p.standardOutput = outPipe
        try? p.run()
        inPipe.fileHandleForWriting.write(data)
        try? inPipe.fileHandleForWriting.close()
        let out = outPipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(String(decoding: out, as: UTF8.self).prefix(64))
    }

    /// Files larger than this go through the LFS redirect.
    static let lfsThreshold = 10_000

    func respond(method: String, uri: String, headers: HTTPHeaders) -> (HTTPResponseStatus, HTTPHeaders, Data, drop: Bool) {
        lock.lock()
        defer { lock.unlock() }
        log.append((method, uri, headers.first(name: "Range")))
        let path = uri.split(separator: "?").first.map(String.init) ?? uri
        let parts = path.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        func json(_ object: Any, _ status: HTTPResponseStatus = .ok) -> (HTTPResponseStatus, HTTPHeaders, Data, drop: Bool) {
            (status, ["Content-Type": "application/json"], try! JSONSerialization.data(withJSONObject: object), false)
        }
        func authorized(_ repo: Repo) -> Bool { !repo.gated || headers.first(name: "Authorization") == "Bearer \(token)" }
        // /api/models/ORG/NAME/revision/REV
        if parts.count == 6, parts[0] == "api", parts[1] == "models", parts[4] == "revision" {
            guard let repo = repos["\(parts[2])/\(parts[3])"] else { return json(["error": "Repository not found"], .notFound) }
            guard authorized(repo) else { return json(["error": "Access to this repository is restricted"], .unauthorized) }
            guard parts[5] == "main" || parts[5] == repo.commit else { return json(["error": "Revision not found"], .notFound) }
            return json(["sha": repo.commit, "siblings": repo.files.keys.sorted().map { ["rfilename": $0] }])
        }
        // /ORG/NAME/resolve/COMMIT/PATH...
        if parts.count >= 5, parts[2] == "resolve" {
            guard let repo = repos["\(parts[0])/\(parts[1])"] else { return (.notFound, [:], Data(), false) }
            guard authorized(repo) else { return (.unauthorized, [:], Data(), false) }
            let file = parts[4...].joined(separator: "/")
            guard parts[3] == repo.commit, let data = repo.files[file] else { return (.notFound, [:], Data(), false) }
            if data.count > Self.lfsThreshold {
                let sha = Self.sha256Hex(data)
                return (.found, ["Location": "/cdn/\(sha)", "X-Linked-Etag": "\"\(sha)\"", "X-Repo-Commit": repo.commit,
                                 "ETag": "\"redirect-etag\""], Data(), false)
            }
            let etag = String(Self.sha256Hex(data).prefix(40))   // like a git blob id: not a sha256, so not checked
            return (.ok, ["ETag": "\"\(etag)\"", "X-Repo-Commit": repo.commit], data, false)
        }
        // /cdn/SHA256 with Range.
        if parts.count == 2, parts[0] == "cdn" {
            guard let data = repos.values.flatMap({ $0.files.values }).first(where: { Self.sha256Hex($0) == parts[1] }) else {
                return (.notFound, [:], Data(), false)
            }
            var start = 0
            if let range = headers.first(name: "Range"), range.hasPrefix("bytes="), let from = Int(range.dropFirst(6).split(separator: "-").first ?? "") {
                start = min(from, data.count)
            }
            let body = data.subdata(in: start..<data.count)
            let drop = dropNextDownload
            dropNextDownload = false
            var h: HTTPHeaders = ["ETag": "\"cdn\"", "Content-Length": "\(body.count)"]
            if start > 0 { h.add(name: "Content-Range", value: "bytes \(start)-\(data.count - 1)/\(data.count)") }
            return (start > 0 ? .partialContent : .ok, h, body, drop)
        }
        return (.notFound, [:], Data(), false)
    }

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let hub: LoopbackHub
        var head: HTTPRequestHead?
        init(hub: LoopbackHub) { self.hub = hub }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let head else { return }
                let (status, headers, body, drop) = hub.respond(method: head.method.rawValue, uri: head.uri, headers: head.headers)
                var h = headers
                if h.first(name: "Content-Length") == nil { h.add(name: "Content-Length", value: "\(body.count)") }
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: h))), promise: nil)
                var buffer = context.channel.allocator.buffer(capacity: body.count)
                if drop {
                    // Half the bytes, then the connection goes away.
                    buffer.writeBytes(body.prefix(body.count / 2))
                    context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer)))).whenComplete { _ in context.close(promise: nil) }
                    return
                }
                buffer.writeBytes(body)
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

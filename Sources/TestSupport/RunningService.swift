import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle

/// A service (an HTTP application) running in the test process until `stop()`, with the port it reported when it
/// began listening (ask it for port 0: a free one), and a client for requests to it.
public final class RunningService: @unchecked Sendable {
    public let port: Int
    public let client = HTTPClient(eventLoopGroupProvider: .singleton)
    private let group: ServiceGroup
    private let task: Task<Void, Error>

    /// `make` builds the service from a logger and the callback it calls with its port.
    public init(_ make: (Logger, @escaping @Sendable (Int) -> Void) -> any Service) async {
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "test")
        logger.logLevel = .error
        group = ServiceGroup(configuration: .init(services: [make(logger) { continuation.yield($0) }], logger: logger))
        let g = group
        task = Task { try await g.run() }
        var it = ports.makeAsyncIterator()
        port = await it.next() ?? 0
    }

    /// Graceful shutdown: what runs finishes, then the group returns.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
        try await client.shutdown()
    }

    /// `method path` on 127.0.0.1 with `body` (sent as `contentType`), the whole answer read.
    public func request(_ method: HTTPMethod, _ path: String, body: Data? = nil, contentType: String = "application/json",
                        headers: [(String, String)] = [], timeout: Int64 = 120) async throws -> HTTPReply {
        var req = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        req.method = method
        req.headers.add(name: "content-type", value: contentType)
        for (k, v) in headers { req.headers.add(name: k, value: v) }
        if let body { req.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await client.execute(req, timeout: .seconds(timeout))
        let bytes = try await response.body.collect(upTo: 1 << 26)
        return HTTPReply(status: Int(response.status.code), body: String(buffer: bytes), headers: response.headers.map { ($0.name, $0.value) })
    }
}

/// An HTTP answer: status, body text, headers, and the body as a JSON object (empty when it is not one).
public struct HTTPReply {
    public var status: Int
    public var body: String
    public var headers: [(String, String)]
    public var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:] }
}

import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// `peft serve`: the OpenAI API (and vLLM's adapter endpoints) over a `BatchEngine`.
///
/// Routes: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/load_lora_adapter`,
/// `POST /v1/unload_lora_adapter`, `GET /health`, `GET /metrics`.
public struct OpenAIServer: Sendable {
    public struct Settings: Sendable {
        public var host = "127.0.0.1"
        /// 0 picks a free port (reported through `onListening`).
        public var port = 8000
        /// When set, every request needs `Authorization: Bearer <key>` (401 otherwise); /health stays open.
        public var apiKey: String?
        /// Largest request body accepted.
        public var maxBodyBytes = 16 << 20
        /// Seconds a connection may go without a complete request head (a new connection, one between requests, or
        /// a client sending its headers a byte at a time) before it is closed; a request being answered is never cut.
        /// nil: no limit.
        public var idleTimeout: Double? = 30

        public init() {}
    }

    public let served: ServedModel
    public let engine: BatchEngine
    public let metrics: ServerMetrics
    public let settings: Settings

    public init(served: ServedModel, engine: BatchEngine, metrics: ServerMetrics, settings: Settings) {
        self.served = served
        self.engine = engine
        self.metrics = metrics
        self.settings = settings
    }

    /// The HTTP application with the engine as a service beside it: run it with `runService()` (SIGTERM/SIGINT: stop
    /// accepting, finish what runs, return) or inside a `ServiceGroup`.
    public func application(logger: Logger, onListening: @escaping @Sendable (Int) -> Void = { _ in })
        -> some ApplicationProtocol {
        let router = Router(context: ServerContext.self)
        router.add(middleware: ErrorAndMetricsMiddleware(metrics: metrics))
        if let key = settings.apiKey { router.add(middleware: BearerAuthMiddleware(key: key)) }
        let handlers = Handlers(server: self)
        router.get("/health") { _, _ in try handlers.health() }
        router.get("/metrics") { _, _ in handlers.metricsText() }
        router.get("/v1/models") { _, _ in handlers.models() }
        router.get("/v1/models/{id}") { _, context in try handlers.model(id: context.parameters.require("id")) }
        router.post("/v1/chat/completions") { request, context in try await handlers.completion(request, context: context, chat: true) }
        router.post("/v1/completions") { request, context in try await handlers.completion(request, context: context, chat: false) }
        router.post("/v1/load_lora_adapter") { request, _ in try await handlers.loadAdapter(request) }
        router.post("/v1/unload_lora_adapter") { request, _ in try await handlers.unloadAdapter(request) }
        return Application(router: router,
                           server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionObserver()],
                                                                 idleTimeout: settings.idleTimeout.map { .nanoseconds(Int64($0 * 1e9)) })),
                           configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "peft"),
                           services: [engine],
                           onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
                           logger: logger)
    }
}

/// The request context: Hummingbird's, plus the connection (a closed one cancels its generation).
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// Every error becomes OpenAI's JSON with its status; each request is counted by route and status.
struct ErrorAndMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let endpoint = Self.endpoint(request.uri.path)
        let response: Response
        do {
            response = try await next(request, context)
        } catch let e as APIError {
            response = try e.response(from: request, context: context)
        } catch let e as HTTPError {
            let message = e.status == .notFound ? "no route for \(request.method) \(request.uri.path)" : (e.body ?? e.status.reasonPhrase)
            response = try APIError(e.status, message).response(from: request, context: context)
        } catch {
            response = try APIError(.internalServerError, "\(error)").response(from: request, context: context)
        }
        metrics.countRequest(endpoint: endpoint, status: response.status.code)
        return response
    }

    static func endpoint(_ path: String) -> String {
        ["/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/load_lora_adapter", "/v1/unload_lora_adapter",
         "/health", "/metrics"].first { path == $0 || path.hasPrefix($0 + "/") } ?? "other"
    }
}

/// `Authorization: Bearer KEY` on every route but /health.
struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let key: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.uri.path != "/health" {
            let given = request.headers[.authorization] ?? ""
            guard given == "Bearer \(key)" else {
                throw APIError(.unauthorized, given.isEmpty ? "missing 'Authorization: Bearer <key>' header" : "invalid API key")
            }
        }
        return try await next(request, context)
    }
}

import Foundation
import Hummingbird
import NIOCore

/// The route handlers of `OpenAIServer`.
struct Handlers: Sendable {
    let server: OpenAIServer
    var served: ServedModel { server.served }
    var engine: BatchEngine { server.engine }

    private func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: JSON.bytes(object))))
    }

    private func body(_ request: Request) async throws -> RequestBody {
        var request = request
        // A declared length past the limit is refused before a byte of the body is read.
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > server.settings.maxBodyBytes {
            throw APIError(.contentTooLarge, "the request body is larger than \(server.settings.maxBodyBytes) bytes (Content-Length \(declared))")
        }
        let buffer: ByteBuffer
        do { buffer = try await request.collectBody(upTo: server.settings.maxBodyBytes) } catch {
            throw APIError(.contentTooLarge, "the request body is larger than \(server.settings.maxBodyBytes) bytes")
        }
        return try RequestBody(Data(buffer.readableBytesView))
    }

    func health() throws -> Response {
        let (waiting, running) = engine.load
        return json(["status": "ok", "running": running, "waiting": waiting])
    }

    func metricsText() -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: server.metrics.render())))
    }

    private func modelCards() -> [[String: Any]] {
        let length = min(served.model.config.maxPositionEmbeddings, engine.settings.maxModelLength)
        var cards: [[String: Any]] = [["id": served.name, "object": "model", "created": served.created, "owned_by": "peft",
                                       "root": served.name, "parent": NSNull(), "max_model_len": length]]
        for (name, a) in served.adapterList {
            cards.append(["id": name, "object": "model", "created": a.created, "owned_by": "peft", "root": a.path,
                          "parent": served.name, "max_model_len": length])
        }
        return cards
    }

    func models() -> Response { json(["object": "list", "data": modelCards()]) }

    func model(id: String) throws -> Response {
        guard let card = modelCards().first(where: { $0["id"] as? String == id }) else {
            throw APIError(.notFound, "the model '\(id)' does not exist", param: "model")
        }
        return json(card)
    }

    func loadAdapter(_ request: Request) async throws -> Response {
        let b = try await body(request)
        guard let name = try b.string("lora_name") else { throw APIError.badRequest("'lora_name' is required", param: "lora_name") }
        guard let path = try b.string("lora_path") else { throw APIError.badRequest("'lora_path' is required", param: "lora_path") }
        let served = self.served
        // Reading the files happens off the event loop.
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
            DispatchQueue.global().async {
                do { try served.loadAdapter(name: name, path: path); c.resume() } catch { c.resume(throwing: error) }
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: "Success: adapter '\(name)' added successfully.")))
    }

    func unloadAdapter(_ request: Request) async throws -> Response {
        let b = try await body(request)
        guard let name = try b.string("lora_name") else { throw APIError.badRequest("'lora_name' is required", param: "lora_name") }
        try served.unloadAdapter(name: name)
        return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: "Success: adapter '\(name)' removed successfully.")))
    }

    /// A client that closes its connection cancels its generation, queued or running, and frees its slot: the
    /// connection's `ConnectionObserver` reports it while the answer is computed, and a stream's failed write after.
    func completion(_ request: Request, context: ServerContext, chat: Bool) async throws -> Response {
        let watch = DisconnectWatch(engine: engine)
        let observer = try? await context.channel.pipeline.handler(type: ConnectionObserver.self).get()
        let token = observer?.onClose { watch.disconnected() }
        defer { if let observer, let token { observer.remove(token) } }
        return try await completion(try await body(request), chat: chat, watch: watch)
    }

    private func completion(_ requestBody: RequestBody, chat: Bool, watch: DisconnectWatch) async throws -> Response {
        let parsed = try CompletionRequest(body: requestBody, chat: chat, served: served,
                                           maxModelLength: engine.settings.maxModelLength)
        let job = GenerationJob(prompt: parsed.prompt, modelName: parsed.modelName, adapter: parsed.adapter,
                                options: parsed.options, stopIDs: parsed.ignoreEOS ? [] : served.stopIDs(chat: chat),
                                stopStrings: parsed.stopStrings)
        let submission: (id: Int, events: AsyncStream<GenerationEvent>)
        do { submission = try engine.submitCancellable(job) } catch let e as EngineError {
            switch e {
            case .queueFull: throw APIError(.tooManyRequests, e.description)
            case .shuttingDown: throw APIError(.serviceUnavailable, e.description)
            }
        }
        watch.watch(submission.id)
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let created = Int(Date().timeIntervalSince1970)
        let shape = ResponseShape(id: id, created: created, model: parsed.modelName, chat: chat)
        if parsed.stream {
            let engine = self.engine, includeUsage = parsed.includeUsage, toolCalls = parsed.parsesToolCalls
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                            body: ResponseBody { writer in
                do {
                    if chat { try await writer.write(shape.sse(shape.chunk(delta: ["role": "assistant", "content": ""], finish: nil))) }
                    var splitter = toolCalls ? HermesToolCalls.Splitter() : nil
                    for await event in submission.events {
                        switch event {
                        case .text(let piece):
                            let t = splitter?.feed(piece) ?? piece
                            if t.isEmpty { continue }
                            try await writer.write(shape.sse(shape.chunk(delta: chat ? ["content": t] : ["text": t], finish: nil)))
                        case .finished(let outcome):
                            var reason = outcome.finishReason
                            if let (calls, rest) = splitter?.finish() {
                                if !rest.isEmpty { try await writer.write(shape.sse(shape.chunk(delta: ["content": rest], finish: nil))) }
                                if !calls.isEmpty {
                                    try await writer.write(shape.sse(shape.chunk(delta: ["tool_calls": shape.toolCalls(calls, streaming: true)], finish: nil)))
                                    if reason == "stop" { reason = "tool_calls" }
                                }
                            }
                            try await writer.write(shape.sse(shape.chunk(delta: chat ? [:] : ["text": ""], finish: reason)))
                            if includeUsage { try await writer.write(shape.sse(shape.usageChunk(outcome))) }
                        case .failed(let message):
                            try await writer.write(shape.sse(APIError(.internalServerError, message).json))
                        }
                    }
                    try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                    try await writer.finish(nil)
                } catch {
                    // The client went away: its generation stops and its slot is freed.
                    engine.cancel(submission.id)
                    throw error
                }
            })
        }
        // Not streaming: a client that disconnects while waiting cancels the generation too.
        var text = ""
        var outcome: GenerationOutcome?
        try await withTaskCancellationHandler {
            for await event in submission.events {
                switch event {
                case .text(let t): text += t
                case .finished(let o): outcome = o
                case .failed(let message): throw APIError(.internalServerError, message)
                }
            }
        } onCancel: { [engine] in engine.cancel(submission.id) }
        guard let outcome else { throw APIError(.internalServerError, "the generation was cancelled") }
        if parsed.parsesToolCalls, let (content, calls) = HermesToolCalls.parse(text), !calls.isEmpty {
            return json(shape.whole(text: content, outcome: outcome, calls: calls))
        }
        return json(shape.whole(text: text, outcome: outcome))
    }
}

/// The JSON of completions, whole or as server-sent-event chunks.
struct ResponseShape {
    let id: String
    let created: Int
    let model: String
    let chat: Bool

    func usage(_ o: GenerationOutcome) -> [String: Any] {
        ["prompt_tokens": o.promptTokens, "completion_tokens": o.completionTokens, "total_tokens": o.promptTokens + o.completionTokens]
    }

    /// OpenAI's `tool_calls` list (with `index` in stream deltas).
    func toolCalls(_ calls: [HermesToolCalls.Call], streaming: Bool) -> [[String: Any]] {
        calls.enumerated().map { i, c in
            var call: [String: Any] = ["id": "call_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24),
                                       "type": "function", "function": ["name": c.name, "arguments": c.arguments]]
            if streaming { call["index"] = i }
            return call
        }
    }

    func whole(text: String, outcome o: GenerationOutcome, calls: [HermesToolCalls.Call] = []) -> [String: Any] {
        var message: [String: Any] = ["role": "assistant", "content": text]
        var reason = o.finishReason
        if !calls.isEmpty {
            message["tool_calls"] = toolCalls(calls, streaming: false)
            if text.isEmpty { message["content"] = NSNull() }
            if reason == "stop" { reason = "tool_calls" }
        }
        let choice: [String: Any] = chat
            ? ["index": 0, "message": message, "finish_reason": reason, "logprobs": NSNull()]
            : ["index": 0, "text": text, "finish_reason": reason, "logprobs": NSNull()]
        return ["id": id, "object": chat ? "chat.completion" : "text_completion", "created": created, "model": model,
                "choices": [choice], "usage": usage(o)]
    }

    func chunk(delta: [String: Any], finish: String?) -> [String: Any] {
        var choice: [String: Any] = ["index": 0, "finish_reason": finish as Any? ?? NSNull(), "logprobs": NSNull()]
        if chat { choice["delta"] = delta } else { choice["text"] = delta["text"] ?? "" }
        return ["id": id, "object": chat ? "chat.completion.chunk" : "text_completion", "created": created, "model": model,
                "choices": [choice]]
    }

    func usageChunk(_ o: GenerationOutcome) -> [String: Any] {
        ["id": id, "object": chat ? "chat.completion.chunk" : "text_completion", "created": created, "model": model,
         "choices": [], "usage": usage(o)]
    }

    func sse(_ object: [String: Any]) -> ByteBuffer {
        var b = ByteBuffer(string: "data: ")
        b.writeBytes(JSON.bytes(object))
        b.writeString("\n\n")
        return b
    }
}

/// Cancels a generation when its client disconnects, whether that happens before or after it was submitted.
final class DisconnectWatch: @unchecked Sendable {
    private let engine: BatchEngine
    private let lock = NSLock()
    private var id: Int?
    private var gone = false

    init(engine: BatchEngine) { self.engine = engine }

    func watch(_ id: Int) {
        let cancel = lock.withLock { self.id = id; return gone }
        if cancel { engine.cancel(id) }
    }

    func disconnected() {
        let id = lock.withLock { gone = true; return self.id }
        if let id { engine.cancel(id) }
    }
}

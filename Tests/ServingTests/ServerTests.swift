import AsyncHTTPClient
import Foundation
import NIOHTTP1
import Serving
import TestSupport
import Transformer
import XCTest

/// `peft serve` over real HTTP on a loopback port: every endpoint, streaming, adapters per request, hot loading,
/// batching equal to decoding alone, bad input and the queue's bound.
final class ServerTests: XCTestCase {
    /// Runs `body` against a started server and always shuts it down.
    func withServer(_ make: @autoclosure () async throws -> ServerHarness, _ body: (ServerHarness) async throws -> Void) async throws {
        let h = try await make()
        do { try await body(h) } catch {
            try? await h.stop()
            throw error
        }
        try await h.stop()
    }

    func chat(_ model: String, _ text: String, _ extra: [String: Any] = [:]) -> [String: Any] {
        ["model": model, "messages": [["role": "user", "content": text]], "max_tokens": 12, "temperature": 0].merging(extra) { $1 }
    }

    func testEndpointsStreamingAndAdapters() async throws {
        try await withServer(await ServerHarness()) { h in
        // Models: the base, then every adapter with the base as parent.
        let models = try await h.request(.GET, "/v1/models")
        XCTAssertEqual(models.status, 200)
        let data = models.json["data"] as? [[String: Any]] ?? []
        XCTAssertEqual(data.compactMap { $0["id"] as? String }, ["tiny"] + ServerHarness.adapters.map(\.0).sorted())
        XCTAssertTrue(data.dropFirst().allSatisfy { $0["parent"] as? String == "tiny" && $0["owned_by"] as? String == "peft" })
        let v1 = try await h.request(.GET, "/v1/models/lora").json["parent"] as? String
        XCTAssertEqual(v1, "tiny")
        let v2 = try await h.request(.GET, "/health").status
        XCTAssertEqual(v2, 200)

        // Each model answers as it does alone (greedy), and the adapters change the answer.
        var answers: [String: String] = [:]
        for name in ["tiny"] + ServerHarness.adapters.map(\.0) {
            let reply = try await h.post("/v1/chat/completions", chat(name, "你好，介绍一下板蓝根"))
            XCTAssertEqual(reply.status, 200, reply.body)
            let choice = reply.choice
            let text = reply.content
            let usage = reply.json["usage"] as? [String: Int] ?? [:]
            let prompt = try h.served.formatter!.promptIDs([.init(role: .user, content: "你好，介绍一下板蓝根")])
            let adapter = h.served.resolve(name)!
            let reference = try referenceAnswer(h.served, prompt: prompt, adapter: adapter, maxTokens: 12, stops: h.served.stopIDs(chat: true))
            XCTAssertEqual(text, reference.text, name)
            XCTAssertEqual(usage["prompt_tokens"], prompt.count, name)
            XCTAssertEqual(usage["completion_tokens"], reference.ids.count, name)
            XCTAssertEqual(choice?["finish_reason"] as? String, reference.ids.count == 12 ? "length" : "stop", name)
            XCTAssertEqual(reply.json["object"] as? String, "chat.completion")
            answers[name] = text
        }
        for name in ["lora", "dora", "ia3", "prefix", "ptuning"] {
            XCTAssertNotEqual(answers[name], answers["tiny"], "\(name) changes the answer: \(answers)")
        }

        // Streaming: a role chunk, content deltas that add up to the whole answer, the finish, usage, [DONE].
        let events = try await h.stream("/v1/chat/completions", chat("lora", "你好，介绍一下板蓝根", ["stream": true, "stream_options": ["include_usage": true]]))
        XCTAssertEqual(events.last, "[DONE]")
        let chunks = events.dropLast().map { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] ?? [:] }
        XCTAssertTrue(chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
        let deltas = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
        XCTAssertEqual(deltas.first?["role"] as? String, "assistant")
        XCTAssertEqual(deltas.compactMap { $0["content"] as? String }.joined(), answers["lora"])
        XCTAssertEqual((chunks.last?["usage"] as? [String: Int])?["completion_tokens"], 12)
        XCTAssertEqual((chunks.last?["choices"] as? [Any])?.count, 0)

        // With tools (the template's Hermes blocks are parsed back): an answer without calls is the same text whole
        // and streamed.
        let tools: [[String: Any]] = [["type": "function", "function": ["name": "get_weather", "description": "天气",
                                       "parameters": ["type": "object", "properties": ["city": ["type": "string"]]]]]]
        let withTools = chat("lora", "北京天气怎么样", ["tools": tools, "max_tokens": 24])
        let toolReply = try await h.post("/v1/chat/completions", withTools)
        XCTAssertEqual(toolReply.status, 200, toolReply.body)
        let toolText = toolReply.content
        let toolEvents = try await h.stream("/v1/chat/completions", withTools.merging(["stream": true]) { $1 })
        let toolDeltas = toolEvents.dropLast().compactMap { (((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
        XCTAssertEqual(toolDeltas.compactMap { $0["content"] as? String }.joined(), toolText)
        let toolPrompt = try h.served.formatter!.promptIDs([.init(role: .user, content: "北京天气怎么样")],
                                                           tools: String(decoding: try JSONSerialization.data(withJSONObject: tools), as: UTF8.self))
        XCTAssertEqual((toolReply.json["usage"] as? [String: Int])?["prompt_tokens"], toolPrompt.count, "the tools are in the prompt")

        // Completions, whole and streamed, with a stop string.
        let whole = try await h.post("/v1/completions", ["model": "tiny", "prompt": "板蓝根颗粒", "max_tokens": 10, "temperature": 0])
        let wholeText = whole.choice?["text"] as? String ?? "<none>"
        XCTAssertEqual(whole.json["object"] as? String, "text_completion")
        let streamed = try await h.stream("/v1/completions", ["model": "tiny", "prompt": "板蓝根颗粒", "max_tokens": 10, "temperature": 0, "stream": true])
        let pieces = streamed.dropLast().compactMap { (((try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any])?["choices"] as? [[String: Any]])?.first?["text"] as? String }
        XCTAssertEqual(pieces.joined(), wholeText)
        if let cut = wholeText.dropFirst(2).first.map(String.init), !cut.isEmpty {
            let stopped = try await h.post("/v1/completions", ["model": "tiny", "prompt": "板蓝根颗粒", "max_tokens": 10, "temperature": 0, "stop": [cut]])
            let choice = stopped.choice
            XCTAssertEqual(choice?["finish_reason"] as? String, "stop")
            XCTAssertEqual(choice?["text"] as? String, String(wholeText[..<wholeText.range(of: cut)!.lowerBound]))
        }

        // Hot load and unload (vLLM's endpoints).
        let path = fixtureURL("methods/tiny-llama-ia3/adapter").path
        let wrong = try await h.post("/v1/load_lora_adapter", ["lora_name": "bad", "lora_path": path])
        XCTAssertEqual(wrong.status, 400, "an adapter of another architecture is refused: \(wrong.body)")
        let load = try await h.post("/v1/load_lora_adapter", ["lora_name": "late", "lora_path": fixtureURL("methods/tiny-qwen2-ia3/adapter").path])
        XCTAssertEqual(load.status, 200, load.body)
        let v3 = try await h.post("/v1/load_lora_adapter", ["lora_name": "late", "lora_path": path]).status
        XCTAssertEqual(v3, 400)
        let late = try await h.post("/v1/chat/completions", chat("late", "你好，介绍一下板蓝根"))
        XCTAssertEqual(late.content, answers["ia3"])
        let v4 = try await h.post("/v1/unload_lora_adapter", ["lora_name": "late"]).status
        XCTAssertEqual(v4, 200)
        let v5 = try await h.post("/v1/chat/completions", chat("late", "hi")).status
        XCTAssertEqual(v5, 404)
        let v6 = try await h.post("/v1/unload_lora_adapter", ["lora_name": "late"]).status
        XCTAssertEqual(v6, 404)

        // Metrics in Prometheus text.
        let metrics = try await h.request(.GET, "/metrics")
        for name in ["peft_requests_total", "peft_generation_tokens_total", "peft_queue_depth", "peft_batch_size",
                     "peft_time_to_first_token_seconds", "peft_time_per_output_token_seconds"] {
            XCTAssertTrue(metrics.body.contains("# TYPE \(name)"), name)
        }
        XCTAssertTrue(metrics.body.contains(#"peft_requests_total{endpoint="/v1/chat/completions",status="404"} 1"#), metrics.body)
        }
    }

    /// Requests of different adapters decoded together give what each gives alone.
    func testConcurrentRequestsEqualAlone() async throws {
        try await withServer(await ServerHarness(maxBatch: 8)) { h in
        let names = ["tiny"] + ServerHarness.adapters.map(\.0)
        let prompts = ["你好", "六味地黄丸的功效是什么？", "板蓝根颗粒可以长期服用吗", "hello there", "感冒了吃什么药", "a", "咳嗽", "头痛发热怎么办"]
        var alone: [String] = []
        for (i, p) in prompts.enumerated() {
            let r = try await h.post("/v1/chat/completions", chat(names[i % names.count], p, ["max_tokens": 16]))
            alone.append(r.content)
        }
        let together = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (i, p) in prompts.enumerated() {
                group.addTask {
                    let r = try await h.post("/v1/chat/completions", self.chat(names[i % names.count], p, ["max_tokens": 16]))
                    return (i, r.content)
                }
            }
            var out = [String](repeating: "", count: prompts.count)
            for try await (i, t) in group { out[i] = t }
            return out
        }
        XCTAssertEqual(together, alone)
        // Sampling is per request: a seeded sampled answer is the same alone and in a batch of greedy ones.
        let sampled = chat("lora", "板蓝根", ["temperature": 1.0, "top_k": 50, "seed": 7, "max_tokens": 16])
        func text(_ r: ServerHarness.Reply) -> String {
            r.content
        }
        let first = text(try await h.post("/v1/chat/completions", sampled))
        let other = text(try await h.post("/v1/chat/completions", sampled.merging(["seed": 8]) { $1 }))
        XCTAssertNotEqual(first, other, "another seed, another answer")
        let mixed = try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { text(try await h.post("/v1/chat/completions", sampled)) }
            for p in prompts.prefix(5) { group.addTask { _ = try await h.post("/v1/chat/completions", self.chat("tiny", p)); return nil } }
            var out: String?
            for try await t in group where t != nil { out = t }
            return out
        }
        XCTAssertEqual(mixed, first)
        let metrics = try await h.request(.GET, "/metrics").body
        // Some step decoded more than one sequence.
        let single = metrics.split(separator: "\n").first { $0.hasPrefix(#"peft_batch_size_bucket{le="1.0"}"#) }
        let count = metrics.split(separator: "\n").first { $0.hasPrefix("peft_batch_size_count") }
        XCTAssertNotEqual(single.map { $0.split(separator: " ").last }, count.map { $0.split(separator: " ").last }, metrics)
        }
    }

    /// Bottleneck adapters (AdapterHub) of each kind, batched together with the base, each as it is alone.
    func testBottleneckAdaptersBatched() async throws {
        let adapters = [("seq", "bottleneck/tiny-llama-seq_bn/adapter"), ("par", "bottleneck/tiny-llama-par_bn/adapter"),
                        ("double", "bottleneck/tiny-llama-double_seq_bn/adapter"), ("dora", "methods/tiny-llama-dora/adapter")]
        try await withServer(await ServerHarness(base: "tiny-llama", adapters: adapters)) { h in
            let names = ["tiny"] + adapters.map(\.0)
            var references: [String] = []
            for name in names {
                let prompt = try h.served.formatter!.promptIDs([.init(role: .user, content: "头痛发热怎么办")])
                references.append(try referenceAnswer(h.served, prompt: prompt, adapter: h.served.resolve(name)!, maxTokens: 12,
                                                      stops: h.served.stopIDs(chat: true)).text)
            }
            let together = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                for (i, name) in names.enumerated() {
                    group.addTask {
                        let r = try await h.post("/v1/chat/completions", self.chat(name, "头痛发热怎么办"))
                        return (i, r.content)
                    }
                }
                var out = [String](repeating: "", count: names.count)
                for try await (i, t) in group { out[i] = t }
                return out
            }
            XCTAssertEqual(together, references)
            XCTAssertEqual(Set(references).count, references.count, "each adapter changes the answer: \(references)")
        }
    }

    /// A connection that never completes a request head (idle, or headers trickling in a byte every 100 ms) is closed
    /// after the idle timeout instead of holding its slot; /health still answers at once. (Each /health goes on a
    /// connection of its own: a pooled keep-alive connection may itself be closed by the 1 s timeout as it is reused.)
    func testIdleAndSlowHeaderConnectionsTimeOut() async throws {
        try await withServer(await ServerHarness(maxBatch: 1, idleTimeout: 1)) { h in
            let idle = (0..<20).map { _ in rawConnect(port: h.port) }
            let slow = rawConnect(port: h.port)
            let trickle = Task.detached {
                for byte in Array("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + Array(repeating: UInt8(ascii: "a"), count: 60) {
                    var b = byte
                    if send(slow, &b, 1, Int32(MSG_NOSIGNAL)) <= 0 { return }
                    try? await Task.sleep(nanoseconds: 100_000_000)
                }
            }
            XCTAssertEqual(rawGetStatus(port: h.port, path: "/health"), 200)
            // Every idle connection and the slow one are closed well before the trickle would finish (8 s).
            for fd in idle { XCTAssertTrue(peerCloses(fd, within: 5), "an idle connection stayed open"); close(fd) }
            XCTAssertTrue(peerCloses(slow, within: 5), "the slow-header connection stayed open")
            trickle.cancel()
            close(slow)
            XCTAssertEqual(rawGetStatus(port: h.port, path: "/health"), 200)
        }
    }

    /// Hundreds of bad requests get OpenAI-shaped errors with the right status; the server still answers after.
    func testBadRequestsAndBounds() async throws {
        try await withServer(await ServerHarness(maxBatch: 1, maxQueue: 2, apiKey: "sekret")) { h in
        let auth = [("authorization", "Bearer sekret")]
        let v7 = try await h.request(.GET, "/v1/models").status
        XCTAssertEqual(v7, 401)
        let v8 = try await h.request(.GET, "/v1/models", headers: [("authorization", "Bearer wrong")]).status
        XCTAssertEqual(v8, 401)
        let v9 = try await h.request(.GET, "/health").status
        XCTAssertEqual(v9, 200)
        let long = String(repeating: "板蓝根 ", count: 200)
        var cases: [(String, String, Int)] = [
            ("/v1/chat/completions", "{", 400), ("/v1/chat/completions", "", 400), ("/v1/chat/completions", "[1,2]", 400),
            ("/v1/chat/completions", #"{"model": "tiny"}"#, 400),
            ("/v1/chat/completions", #"{"model": "nope", "messages": [{"role": "user", "content": "x"}]}"#, 404),
            ("/v1/chat/completions", #"{"model": 3, "messages": []}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": "hi"}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": 5}]}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1000}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "temperature": -1}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "top_p": 0}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "n": 2}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "stop": [1]}"#, 400),
            ("/v1/chat/completions", #"{"model": "tiny", "messages": [{"role": "user", "content": "\#(long)"}]}"#, 400),
            ("/v1/completions", #"{"model": "tiny", "prompt": [999999]}"#, 400),
            ("/v1/completions", #"{"model": "tiny", "prompt": [-1]}"#, 400),
            ("/v1/completions", #"{"model": "tiny", "a": \#(String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000))}"#, 400),
            ("/v1/completions", #"{"model": "tiny", "prompt": {"a": 1}}"#, 400),
            ("/v1/completions", #"{"model": "tiny"}"#, 400),
            ("/v1/completions", #"{"model": "tiny", "prompt": "x", "seed": 1.5}"#, 400),
            ("/v1/load_lora_adapter", #"{"lora_name": "x", "lora_path": "/nonexistent"}"#, 400),
            ("/v1/load_lora_adapter", #"{"lora_path": "/nonexistent"}"#, 400),
            ("/v1/unload_lora_adapter", #"{"lora_name": "never"}"#, 404),
            ("/v1/nowhere", "{}", 404),
        ]
        // A few hundred: every case several times, plus truncated prefixes of a good body.
        let good = #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3}"#
        for cut in stride(from: 1, to: good.count - 1, by: 1) { cases.append(("/v1/chat/completions", String(good.prefix(cut)), 400)) }
        var sent = 0
        for _ in 0..<4 {
            for (path, body, status) in cases {
                let r = try await h.request(.POST, path, body: body, headers: auth)
                XCTAssertEqual(r.status, status, "\(path) \(body.prefix(120)): \(r.body)")
                let error = r.json["error"] as? [String: Any]
                XCTAssertNotNil(error?["message"] as? String, r.body)
                XCTAssertEqual(error?["code"] as? Int, status)
                sent += 1
            }
        }
        XCTAssertGreaterThan(sent, 300)

        // The queue is bounded: with admission held, two requests wait and the third gets 429.
        h.engine.pauseAdmission(true)
        let waiting = (0..<2).map { _ in Task { try await h.request(.POST, "/v1/chat/completions", body: good, headers: auth) } }
        while h.engine.load.waiting < 2 { try await Task.sleep(for: .milliseconds(10)) }
        let v10 = try await h.request(.POST, "/v1/chat/completions", body: good, headers: auth).status
        XCTAssertEqual(v10, 429)
        h.engine.pauseAdmission(false)
        for t in waiting {
            let status = try await t.value.status
            XCTAssertEqual(status, 200)
        }

        // A client that goes away frees its place: queued, it leaves the queue; running, its slot.
        h.engine.pauseAdmission(true)
        let queued = rawPost(port: h.port, path: "/v1/chat/completions", body: good)
        while h.engine.load.waiting < 1 { try await Task.sleep(for: .milliseconds(10)) }
        close(queued)
        var tries = 0
        while h.engine.load.waiting > 0 && tries < 500 { try await Task.sleep(for: .milliseconds(10)); tries += 1 }
        XCTAssertEqual(h.engine.load.waiting, 0, "a disconnected client's request left the queue")
        h.engine.pauseAdmission(false)
        let endless = #"{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 100, "stream": true, "ignore_eos": true}"#
        let running = rawPost(port: h.port, path: "/v1/chat/completions", body: endless)
        var buffer = [UInt8](repeating: 0, count: 256)
        _ = recv(running, &buffer, 256, 0)   // the first chunk: it runs
        close(running)
        tries = 0
        while h.engine.load.running > 0 && tries < 500 { try await Task.sleep(for: .milliseconds(10)); tries += 1 }
        XCTAssertEqual(h.engine.load.running, 0, "a disconnected client's generation stopped")

        let ok = try await h.request(.POST, "/v1/chat/completions", body: good, headers: auth)
        XCTAssertEqual(ok.status, 200, ok.body)
        }
    }
}

import Adapters
import Foundation
import GGUF
import Generation
import Hub
import Jinja
import Kernels
import ModelIO
import Serving
import Tokenizer
import Training
import Transformer

/// The body of every fuzz target (FuzzTesting/ wraps each in libFuzzer's entry point; `swift test` replays the saved
/// cases through the same functions): one per kind of input peft reads from other people. Each returns normally on
/// any input; a crash, a trap or a hang is a finding.
public enum FuzzTargets {
    /// The targets by name (the executable names in FuzzTesting/).
    public static let all: [(name: String, run: @Sendable (Data) -> Void)] = [
        ("FuzzSafetensors", { safetensors($0) }),
        ("FuzzGGUF", { gguf($0) }),
        ("FuzzConfig", { config($0) }),
        ("FuzzTokenizerJSON", { tokenizerJSON($0) }),
        ("FuzzSentencePiece", { sentencePiece($0) }),
        ("FuzzJSON", { json($0) }),
        ("FuzzJinja", { jinja($0) }),
        ("FuzzDataset", { dataset($0) }),
        ("FuzzAdapter", { adapter($0) }),
        ("FuzzOpenAIRequest", { openAIRequest($0) }),
        ("FuzzHubResponse", { hubResponse($0) }),
    ]

    /// Runs the target called `name` on one input.
    public static func run(_ name: String, _ data: Data) {
        guard let target = all.first(where: { $0.name == name }) else { fatalError("no fuzz target \(name)") }
        target.run(data)
    }

    /// A safetensors file: the header (sizes, offsets, dtypes, shapes), then every tensor read as floats.
    public static func safetensors(_ data: Data) {
        let url = FuzzInput.file(data, name: "model.safetensors")
        guard let file = try? SafetensorsFile(path: url.path) else { return }
        for (_, tensor) in file.tensors where tensor.elementCount <= 1 << 20 {
            _ = try? tensor.floats()
        }
    }

    /// A GGUF file: header, metadata, tensor table, every tensor converted to floats; then, when the file describes a
    /// model we run, its config, its tokenizer and (small models) the model itself with one forward pass.
    public static func gguf(_ data: Data) {
        let url = FuzzInput.file(data, name: "model.gguf")
        guard let file = try? GGUFFile(path: url.path) else { return }
        for (_, t) in file.tensors where t.elementCount <= 1 << 20 {
            let out = FloatBuffer(count: t.elementCount)
            withExtendedLifetime(out) { t.floats(into: out.pointer) }
        }
        guard let gguf = try? GGUFModel(path: url.path) else { return }
        if let tokenizer = try? gguf.tokenizer() {
            let ids = tokenizer.encode("Hello, 世界! 123")
            _ = tokenizer.decode(ids)
        }
        if gguf.config.parameterCount <= 1 << 20, let model = try? gguf.transformer(dtype: .float32) {
            let v = Int32(model.config.vocabSize)
            _ = model.logits(PackedBatch(sequences: [[0, 1 % v, 2 % v]]))
        }
    }

    /// config.json, then (small dense models) the model built from it with zero weights and run: a forward pass and a
    /// few cached decoding steps, so sizes that parse but cannot run are caught.
    public static func config(_ data: Data) {
        guard let config = try? ModelConfig(json: data, path: "config.json") else { return }
        let tensors = BaseTensor.all(config)
        _ = tensors.map { config.layout.name($0) }
        _ = config.parameterCount
        _ = config.activeParameterCount
        guard config.moe == nil, config.parameterCount <= 1 << 18 else { return }
        var writer = SafetensorsWriter()
        for t in tensors {
            let shape: [Int]
            switch t {
            case .embedding, .lmHead: shape = [config.vocabSize, config.hiddenSize]
            case .qNorm, .kNorm: shape = [config.headDim]
            case .weight(let s): let (i, o) = config.features(s.projection); shape = [o, i]
            case .bias(let s): shape = [config.features(s.projection).1]
            default: shape = [config.hiddenSize]
            }
            writer.add(config.layout.name(t), dtype: .float32, shape: shape, floats: [Float](repeating: 0.01, count: shape.reduce(1, *)))
        }
        let folder = FuzzInput.folder("config-model", files: ["config.json": data])
        guard (try? writer.write(to: folder.appendingPathComponent("model.safetensors"))) != nil,
              let model = try? TransformerModel.load(directory: folder, dtype: .float32) else { return }
        let v = Int32(config.vocabSize)
        _ = model.logits(PackedBatch(sequences: [[1 % v, 2 % v, 3 % v]]))
        let session = DecodeSession(model: model, capacity: 8)
        _ = try? session.append([1 % v, 2 % v])
        _ = try? session.append([3 % v])
    }

    /// tokenizer.json, 0x00, a text: the tokenizer built, the text encoded and decoded, and ids from the text's bytes
    /// decoded (unknown ids included).
    public static func tokenizerJSON(_ data: Data) {
        let parts = FuzzInput.split(data, parts: 2)
        guard let tokenizer = try? Tokenizer(tokenizerJSON: parts[0], config: TokenizerConfig()) else { return }
        let text = FuzzInput.text(parts[1])
        let ids = tokenizer.encode(text)
        _ = tokenizer.decode(ids)
        _ = tokenizer.decode(parts[1].prefix(64).map { Int32($0) * 7 - 3 }, skipSpecialTokens: true)
    }

    /// A SentencePiece tokenizer.model (protobuf), then encoding and decoding a fixed mixed text.
    public static func sentencePiece(_ data: Data) {
        guard let vocabulary = try? SentencePieceVocabulary(modelFile: data, file: "tokenizer.model"),
              let tokenizer = try? Tokenizer(sentencePiece: vocabulary, config: TokenizerConfig()) else { return }
        let ids = tokenizer.encode("Hello  world, 你好 ▁ <s> 12345\n\t")
        _ = tokenizer.decode(ids)
    }

    /// The JSON reader behind tokenizer.json (nesting, escapes, numbers, byte order marks).
    public static func json(_ data: Data) {
        _ = try? JSONReader.validate(data, file: "fuzz.json")
    }

    /// A chat template, 0x00, the messages as JSON: parsed and rendered as a chat prompt (fixed date).
    public static func jinja(_ data: Data) {
        let parts = FuzzInput.split(data, parts: 2)
        guard let template = try? Template(FuzzInput.text(parts[0])) else { return }
        let messages = (try? Value.fromJSON(FuzzInput.text(parts[1])))
            ?? .array([.object([("role", .string("user")), ("content", .string("hi"))])])
        let variables: [String: Value] = ["messages": messages, "add_generation_prompt": .bool(true),
                                          "bos_token": .string("<s>"), "eos_token": .string("</s>")]
        _ = try? template.render(variables, options: RenderOptions(date: Date(timeIntervalSince1970: 1_800_000_000),
                                                                   timeZone: TimeZone(identifier: "UTC")!))
    }

    /// A data set file as `peft train --data` reads it: JSON Lines and a JSON array (alpaca, sharegpt, messages, tools),
    /// strictly and with --skip-invalid.
    public static func dataset(_ data: Data) {
        for name in ["data.jsonl", "data.json"] {
            let url = FuzzInput.file(data, name: name)
            _ = try? DataLoader.load(url)
            _ = try? DataLoader.load(url, skipInvalid: true)
        }
    }

    /// adapter_config.json, 0x00, adapter_model.safetensors: the adapter loaded against tiny-qwen2's config (every
    /// method's reader: LoRA, DoRA, (IA)³, prompt, prefix, P-tuning, bottleneck).
    public static func adapter(_ data: Data) {
        let parts = FuzzInput.split(data, parts: 2)
        let folder = FuzzInput.folder("adapter", files: ["adapter_config.json": parts[0], "adapter_model.safetensors": parts[1]])
        _ = try? AdapterFiles.load(from: folder, model: TinyModel.config)
    }

    /// An OpenAI request body as `peft serve` reads it, for /v1/chat/completions and /v1/completions, against tiny-qwen2
    /// with its chat template.
    public static func openAIRequest(_ data: Data) {
        for chat in [true, false] {
            _ = try? OpenAIRequestDecoder.decode(data, chat: chat, served: Served.model, maxModelLength: 128)
        }
    }

    /// The hub's revision answer (commit and file list), and repository ids and glob patterns from the same bytes.
    public static func hubResponse(_ data: Data) {
        _ = try? HubClient.parseRevisionInfo(data, url: "https://hub.invalid/api/models/x/revision/main")
        let parts = FuzzInput.split(data, parts: 2)
        let text = FuzzInput.text(parts[0])
        _ = RepoID(text)
        _ = HubClient.glob(text, FuzzInput.text(parts[1]))
    }
}

enum TinyModel {
    static let config: ModelConfig = try! ModelConfig(directory: FuzzInput.fixture("models/tiny-qwen2"))
}

enum Served {
    static let model: ServedModel = {
        let dir = FuzzInput.fixture("models/tiny-qwen2")
        let model = try! TransformerModel.load(directory: dir, dtype: .float32)
        let tokenizer = try! Tokenizer.load(directory: dir)
        let (defaults, eos) = try! SamplingOptions.defaults(directory: dir)
        return ServedModel(name: "tiny", model: model, tokenizer: tokenizer,
                           formatter: try? ChatFormatter(template: .jinja, tokenizer: tokenizer), defaults: defaults,
                           eosTokenIDs: eos)
    }()
}

import ArgumentParser
import Foundation
import Generation
import Kernels
import Tokenizer

/// Compute precision of the large matrices. f32 reproduces transformers' float32 numbers; bf16 halves
/// memory and doubles decode speed (f32 accumulation either way).
enum ComputeDType: String, ExpressibleByArgument, CaseIterable {
    case float32, bfloat16

    var dtype: DType { self == .float32 ? .float32 : .bfloat16 }

    /// The training default: bf16 products run at twice the f32 rate where oneDNN provides them; f32 otherwise.
    static var fastestForTraining: ComputeDType { Gemm.hasBF16Products ? .bfloat16 : .float32 }
}

struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Hugging Face model directory (config.json, *.safetensors, tokenizer.json), a hub id ORG/NAME[@REVISION] (downloaded into huggingface_hub's cache; HF_ENDPOINT, HF_HOME, HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE honoured), or a .gguf file.")
    var model: String

    func validate() throws { try HubResolution.resolve(model) }

    var url: URL { HubResolution.url(model) }
}

/// `--quantize TYPE` on the commands that run a model: frozen matrices in a GGML block format.
struct QuantizeOption: ParsableArguments {
    @Option(help: "Quantize the frozen weights at load: q8_0 (8.5 bits per weight), q6_k (6.6), q4_0 or q4_k (4.5); norms stay f32.")
    var quantize: QuantType?
}

extension QuantType: ExpressibleByArgument {}

/// `--adapter DIR` on the commands that run a model.
struct AdapterOption: ParsableArguments {
    @Option(help: "An adapter to apply: a directory (PEFT or AdapterHub files) or a hub id ORG/NAME[@REVISION].") var adapter: String?

    func validate() throws { if let adapter { try HubResolution.resolve(adapter) } }

    var url: URL? { adapter.map(HubResolution.url) }
}

struct TemplateOptions: ParsableArguments {
    @Option(name: .long, help: "Prompt format: auto (the default: the model's own chat template, rendered as transformers renders it; plain when it has none), jinja (the model's template, required), chatml, llama3, plain or none.")
    var template: String?

    @Option(name: .long, help: "System prompt (default: the template's own, if any).")
    var system: String?

    /// The formatter for `--template`; `auto` builds the model's own template once and falls back (with a note)
    /// when the model has none that works.
    func formatter(for tokenizer: Tokenizer) throws -> ChatFormatter {
        let systemPrompt: String?? = system.map { .some($0) }
        guard let template, template != "auto" else {
            guard tokenizer.config.chatTemplate != nil else {
                return try ChatFormatter(template: .plain, tokenizer: tokenizer, defaultSystemPrompt: systemPrompt)
            }
            do {
                return try ChatFormatter(template: .jinja, tokenizer: tokenizer, defaultSystemPrompt: systemPrompt)
            } catch {
                let fallback = ChatTemplate.detect(from: tokenizer.config)
                Terminal.note("note: the model's chat template cannot be used (\(error)); using the \(fallback.rawValue) format (pass --template to choose)")
                return try ChatFormatter(template: fallback, tokenizer: tokenizer, defaultSystemPrompt: systemPrompt)
            }
        }
        guard let t = ChatTemplate(rawValue: template) else {
            throw ValidationError("unknown template '\(template)'; choose one of: auto, \(ChatTemplate.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return try ChatFormatter(template: t, tokenizer: tokenizer, defaultSystemPrompt: systemPrompt)
    }
}

struct SamplingFlags: ParsableArguments {
    @Option(name: .long, help: "Most tokens to generate.") var maxNewTokens: Int?
    @Option(name: .long, help: "Sampling temperature; 0 is greedy (default: generation_config.json).") var temperature: Float?
    @Option(name: .long, help: "Keep the k most likely tokens (0 = off).") var topK: Int?
    @Option(name: .long, help: "Nucleus sampling threshold in (0, 1].") var topP: Float?
    @Option(name: .long, help: "Penalty for tokens already present (1 = off).") var repetitionPenalty: Float?
    @Option(name: .long, help: "Never repeat an n-gram of this size (0 = off).") var noRepeatNgramSize: Int?
    @Option(name: .long, help: "Random seed for sampling (same seed, same text).") var seed: UInt64 = 0

    /// generation_config.json defaults overridden by the flags that were given.
    func resolve(_ defaults: SamplingOptions, fallbackMaxNewTokens: Int = 256) -> SamplingOptions {
        var o = defaults
        o.maxNewTokens = maxNewTokens ?? (defaults.maxNewTokens == SamplingOptions().maxNewTokens ? fallbackMaxNewTokens : defaults.maxNewTokens)
        if let t = temperature { o.temperature = t }
        if let k = topK { o.topK = k }
        if let p = topP { o.topP = p }
        if let r = repetitionPenalty { o.repetitionPenalty = r }
        if let n = noRepeatNgramSize { o.noRepeatNgramSize = n }
        o.seed = seed
        return o
    }
}

import ArgumentParser
import Foundation
import Generation
import Tokenizer
import Transformer

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate an answer to one prompt (streams the text; --json for a machine-readable result).")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOption: AdapterOption
    @OptionGroup var quantizeOption: QuantizeOption
    @Option(help: "The user message.") var prompt: String
    @OptionGroup var templateOptions: TemplateOptions
    @OptionGroup var sampling: SamplingFlags
    @Option(help: "Compute precision: bfloat16 (default: half the memory, twice the decode speed) or float32 (matches transformers' float32 numbers).")
    var dtype: ComputeDType = .bfloat16
    @Flag(help: "Print one JSON object: text, token_ids, prompt_tokens, prefill/decode tokens per second.") var json = false

    func run() throws {
        let loaded = try LoadedModel.open(modelOptions.url, dtype: dtype.dtype,
                                          adapter: adapterOption.url, quantize: quantizeOption.quantize)
        let formatter = try templateOptions.formatter(for: loaded.tokenizer)
        let ids = try formatter.promptIDs([ChatMessage(role: .user, content: prompt)])
        let options = sampling.resolve(loaded.sampling)
        try options.validate()
        let context = loaded.model.config.maxPositionEmbeddings
        guard ids.count < context else {
            throw ValidationError("the prompt is \(ids.count) tokens, longer than the model's context of \(context) tokens (max_position_embeddings)")
        }
        let generator = Generator(model: loaded.model, capacity: min(context, ids.count + min(options.maxNewTokens, context)))
        var decoder = StreamingDecoder(tokenizer: loaded.tokenizer)
        let result = try generator.generate(prompt: ids, options: options, stopIDs: loaded.stopIDs(formatter)) { id in
            if !json { Terminal.out(decoder.append(id), newline: false) }
            return true
        }
        if json {
            try Terminal.json([
                "text": loaded.tokenizer.decode(result.tokens, skipSpecialTokens: true),
                "token_ids": result.tokens.map(Int.init),
                "prompt_tokens": result.promptTokens,
                "prefill_tokens_per_second": result.prefillTokensPerSecond,
                "decode_tokens_per_second": result.decodeTokensPerSecond,
                "finish_reason": result.finishReason,
            ])
        } else {
            Terminal.out(decoder.flush())
        }
    }
}

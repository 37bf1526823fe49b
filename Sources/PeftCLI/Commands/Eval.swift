import ArgumentParser
import Foundation
import Tokenizer
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer loss and perplexity over a data file (token-weighted mean over answer tokens).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "A PEFT LoRA adapter directory to apply.") var adapter: String?
    @Option(help: "Data file (Alpaca, ShareGPT or messages).") var data: String
    @OptionGroup var templateOptions: TemplateOptions
    @Option(help: "Longest example in tokens.") var maxLength: Int = 1024
    @Option(help: "Examples per forward batch.") var batchSize: Int = 4
    @Option(help: "Compute precision: float32 (default) or bfloat16.") var dtype: ComputeDType = .float32
    @Flag(help: "Print one JSON object: loss, perplexity, tokens, examples.") var json = false

    func run() throws {
        let set = try DataLoader.load(URL(fileURLWithPath: data))
        let loaded = try LoadedModel.open(modelOptions.url, dtype: dtype.dtype, adapter: adapter.map { URL(fileURLWithPath: $0) })
        let builder = ExampleBuilder(formatter: try templateOptions.formatter(for: loaded.tokenizer), maxLength: maxLength)
        let built = try builder.build(set.conversations)
        let bar = ProgressBar(total: built.examples.count, label: "eval")
        let result = LossEvaluator.evaluate(model: loaded.model, examples: built.examples, batchSize: batchSize) { done, _ in
            if !json { bar.update(done) }
        }
        if json {
            Terminal.json(["loss": result.loss, "perplexity": result.perplexity, "tokens": result.tokens,
                           "examples": result.examples])
        } else {
            Terminal.out(String(format: "loss %.4f  perplexity %.3f  (%d answer tokens, %d examples%@)", result.loss,
                                result.perplexity, result.tokens, result.examples,
                                built.dropped > 0 ? ", \(built.dropped) dropped by --max-length" : ""))
        }
    }
}

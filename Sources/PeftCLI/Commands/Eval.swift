import ArgumentParser
import Evaluation
import Foundation
import Generation
import Tokenizer
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer loss and perplexity over a data file; with --generate also BLEU-4, ROUGE and exact match of generated answers.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOption: AdapterOption
    @OptionGroup var quantizeOption: QuantizeOption
    @Option(help: "Data file (Alpaca, ShareGPT or messages).") var data: String
    @OptionGroup var templateOptions: TemplateOptions
    @Option(help: "Longest example in tokens.") var maxLength: Int = 1024
    @Option(help: "Examples per forward batch.") var batchSize: Int = 4
    @Option(help: "Compute precision: float32 or bfloat16 (default: float32, bfloat16 with --generate).") var dtype: ComputeDType?
    @Flag(help: "Print one JSON object: loss, perplexity, tokens, examples (and the generation metrics).") var json = false
    @Flag(help: "Generate an answer for every record and score it against the reference.") var generate = false
    @Option(help: "With --generate: where predictions.jsonl and metrics.json go.") var outputDir: String = "eval-out"
    @Option(help: "With --generate: also report the share of answers whose first match of this regex equals the reference's (e.g. '推荐用药：([^。]+)').")
    var metricNameMatch: String?
    @Option(help: "Only the first N records.") var limit: Int?
    @Option(help: "A teacher model (folder, hub id or .gguf): also report distill_loss, the divergence of the model from it on the answer tokens (with --beta and --temperature, as peft distill).")
    var teacher: String?
    @Option(help: "With --teacher: 0 forward KL(teacher || model), 1 reverse KL, between the generalized JSD.") var beta: Double = 0.5
    @OptionGroup var sampling: SamplingFlags

    func validate() throws {
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if maxLength < 2 { throw ValidationError("--max-length must be at least 2") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if teacher != nil {
            if generate { throw ValidationError("--teacher measures the divergence on the reference answers; it does not combine with --generate") }
            if !(0...1).contains(beta) { throw ValidationError("--beta must be in [0, 1], not \(beta)") }
            if let t = sampling.temperature, !(t > 0 && t.isFinite) { throw ValidationError("--temperature must be positive with --teacher, not \(t)") }
        }
    }

    func run() throws {
        if generate { try runGenerate(); return }
        let dtype = self.dtype ?? .float32
        let set = try DataLoader.load(URL(fileURLWithPath: data))
        let loaded = try LoadedModel.open(modelOptions.url, dtype: dtype.dtype, adapter: adapterOption.url,
                                          quantize: quantizeOption.quantize)
        let builder = ExampleBuilder(formatter: try templateOptions.formatter(for: loaded.tokenizer), maxLength: min(maxLength, loaded.model.config.maxPositionEmbeddings))
        let built = try builder.build(set.conversations)
        let bar = ProgressBar(total: built.examples.count, label: "eval")
        let result = try LossEvaluator.evaluate(model: loaded.model, examples: built.examples, batchSize: batchSize) { done, _ in
            if !json { bar.update(done) }
        }
        guard result.loss.isFinite else { throw NonFiniteResult(what: "the evaluation loss (\(result.loss))") }
        var distilled: DistillationEvaluator.Result?
        if let teacher {
            let url = HubResolution.url(teacher)
            try HubResolution.resolve(teacher)
            let t = try LoadedModel.open(url, dtype: dtype.dtype)
            if let note = try Distill.checkCompatible(student: loaded, teacher: t, teacherPath: url.path), !json { Terminal.note(note) }
            let temperature = Double(sampling.temperature ?? 1)
            distilled = try DistillationEvaluator.evaluate(student: loaded.model, teacher: t.model, examples: built.examples,
                                                           beta: beta, temperature: temperature, batchSize: batchSize)
            guard let d = distilled, d.distillLoss.isFinite else { throw NonFiniteResult(what: "the distillation loss") }
        }
        if json {
            var o: [String: Any] = ["loss": result.loss, "perplexity": result.perplexity, "tokens": result.tokens,
                                    "examples": result.examples]
            if let distilled {
                o["distill_loss"] = distilled.distillLoss
                o["beta"] = beta
                o["temperature"] = Double(sampling.temperature ?? 1)
            }
            try Terminal.json(o)
        } else {
            if let distilled { Terminal.out(String(format: "distill loss %.4f (beta %.2f, temperature %.2f)", distilled.distillLoss, beta, Double(sampling.temperature ?? 1))) }
            Terminal.out(String(format: "loss %.4f  perplexity %.3f  (%d answer tokens, %d examples%@)", result.loss,
                                result.perplexity, result.tokens, result.examples,
                                built.dropped > 0 ? ", \(built.dropped) dropped by --max-length" : ""))
        }
    }

    func runGenerate() throws {
        var set = try DataLoader.load(URL(fileURLWithPath: data))
        if let limit { set.conversations = Array(set.conversations.prefix(max(0, limit))) }
        let loaded = try LoadedModel.open(modelOptions.url, dtype: (dtype ?? .bfloat16).dtype,
                                          adapter: adapterOption.url, quantize: quantizeOption.quantize)
        let formatter = try templateOptions.formatter(for: loaded.tokenizer)
        let builder = ExampleBuilder(formatter: formatter, maxLength: min(maxLength, loaded.model.config.maxPositionEmbeddings))
        let options = sampling.resolve(loaded.sampling)
        try options.validate()
        Interrupt.install()
        let bar = ProgressBar(total: set.conversations.count, label: "generate")
        let run = try GenerationEvaluator.run(
            model: loaded.model, builder: builder, conversations: set.conversations, sampling: options,
            stopIDs: loaded.stopIDs(formatter), nameRegex: metricNameMatch, lossBatchSize: batchSize,
            progress: { done, _, _ in if !json { bar.update(done) } }, shouldStop: { Interrupt.requested })
        let out = URL(fileURLWithPath: outputDir)
        try EvaluationRunFiles.write(run, to: out)
        if json {
            try Terminal.json(EvalSummary.object(run))
        } else {
            if run.partial { bar.finishLine() }
            Terminal.out(EvalSummary.text(run))
            Terminal.note("predictions and metrics in \(out.path)")
        }
        if run.partial { throw ExitCode(130) }
    }
}

/// Printing of generation-evaluation results.
enum EvalSummary {
    static func object(_ run: EvaluationRun) -> [String: Any] {
        var o: [String: Any] = ["examples": run.predictions.count, "partial": run.partial]
        if let l = run.loss, l.loss.isFinite {
            o["loss"] = l.loss; o["perplexity"] = l.perplexity; o["tokens"] = l.tokens
        }
        if let m = run.metrics {
            o["bleu4"] = m.bleu4; o["rouge1"] = m.rouge1; o["rouge2"] = m.rouge2; o["rougeL"] = m.rougeL
            o["exact_match"] = m.exactMatch
            if let n = m.nameMatch { o["name_match"] = n }
        }
        return o
    }

    static func text(_ run: EvaluationRun) -> String {
        var parts: [String] = []
        if let m = run.metrics {
            parts.append(String(format: "BLEU-4 %.2f  ROUGE-1 %.2f  ROUGE-2 %.2f  ROUGE-L %.2f  exact %.1f%%", m.bleu4,
                                m.rouge1, m.rouge2, m.rougeL, m.exactMatch))
            if let n = m.nameMatch { parts.append(String(format: "name match %.1f%%", n)) }
        }
        if let l = run.loss, l.loss.isFinite { parts.append(String(format: "loss %.4f  perplexity %.3f", l.loss, l.perplexity)) }
        parts.append("(\(run.predictions.count) examples\(run.partial ? ", stopped early" : ""))")
        return parts.joined(separator: "  ")
    }
}

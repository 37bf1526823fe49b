import ArgumentParser
import Evaluation
import Foundation
import Generation
import ModelIO
import Tokenizer
import Training

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Answer loss and perplexity over a data file; with --generate also BLEU-4, ROUGE and exact match of generated answers; with --benchmark, MMLU / CMMLU / C-Eval accuracy.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOption: AdapterOption
    @OptionGroup var quantizeOption: QuantizeOption
    @Option(help: "Data file (Alpaca, ShareGPT or messages).") var data: String?
    @Option(help: "A multiple-choice benchmark instead of --data: mmlu, cmmlu or ceval (its own CSV layout in --benchmark-dir).") var benchmark: BenchmarkKind?
    @Option(help: "The benchmark's folder (its dev/val/test CSV folders, or data/ holding them, and LLaMA-Factory's mapping.json).") var benchmarkDir: String?
    @Option(help: "Benchmark: dev questions shown before each question.") var nShot: Int = 5
    @Option(help: "Benchmark: the split scored, test or val (CMMLU has test only; C-Eval's test answers are hidden).") var split: String = "test"
    @Option(help: "Benchmark: argmax (LLaMA-Factory: the largest logit among the letters A-D at the last position) or loglikelihood (lm-evaluation-harness: the most likely of \" A\" .. \" D\").") var scoring: BenchmarkEvaluator.Scoring = .argmax
    @Option(help: "Benchmark: write results.json (every subject's predicted letters and accuracy) into this folder.") var output: String?
    @OptionGroup var preferenceOptions: PreferenceOptions
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
        if (data == nil) == (benchmark == nil) { throw ValidationError("give exactly one of --data FILE or --benchmark mmlu|cmmlu|ceval") }
        if benchmark != nil {
            if benchmarkDir == nil { throw ValidationError("--benchmark needs --benchmark-dir DIR (the benchmark's CSV folders)") }
            if generate || teacher != nil { throw ValidationError("--benchmark does not combine with --generate or --teacher") }
            if nShot < 0 { throw ValidationError("--n-shot must be at least 0") }
            if !["test", "val"].contains(split) { throw ValidationError("--split must be test or val, not \(split)") }
        }
        if teacher != nil {
            if generate { throw ValidationError("--teacher measures the divergence on the reference answers; it does not combine with --generate") }
            if !(0...1).contains(beta) { throw ValidationError("--beta must be in [0, 1], not \(beta)") }
            if let t = sampling.temperature, !(t > 0 && t.isFinite) { throw ValidationError("--temperature must be positive with --teacher, not \(t)") }
        }
    }

    func run() throws {
        if let benchmark { try runBenchmark(benchmark); return }
        guard let data else { return }
        if let pref = try preferenceOptions.settings() { try runPreference(data, pref); return }
        if generate { try runGenerate(data); return }
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

    func runBenchmark(_ kind: BenchmarkKind) throws {
        let subjects = try BenchmarkData.load(kind, directory: URL(fileURLWithPath: benchmarkDir!), split: split)
        let loaded = try LoadedModel.open(modelOptions.url, dtype: (dtype ?? .float32).dtype, adapter: adapterOption.url,
                                          quantize: quantizeOption.quantize)
        var evaluator = BenchmarkEvaluator(model: loaded.model, tokenizer: loaded.tokenizer, kind: kind)
        evaluator.nShot = nShot
        evaluator.scoring = scoring
        evaluator.batchSize = batchSize
        var chosen = subjects
        if let limit { chosen = subjects.map { var s = $0; s.questions = Array(s.questions.prefix(limit)); return s } }
        let total = chosen.reduce(0) { $0 + $1.questions.count }
        if !json { Terminal.note("\(kind.rawValue) \(split): \(chosen.count) subjects, \(total) questions, \(nShot)-shot, \(scoring.rawValue) scoring") }
        let bar = ProgressBar(total: total, label: kind.rawValue)
        let result = try evaluator.evaluate(chosen) { done, _ in if !json { bar.update(done) } }
        if result.average == nil {
            throw ValidationError("\(benchmarkDir!): the \(split) split has no answers to score (C-Eval hides its test answers: use --split val)")
        }
        if let output {
            var subjectsJSON: [String: Any] = [:]
            for s in result.subjects {
                subjectsJSON[s.subject] = ["name": s.name, "category": s.category, "predictions": s.predictions,
                                           "accuracy": s.accuracy.map { $0 as Any } ?? NSNull()] as [String: Any]
            }
            let data = try JSONSerialization.data(withJSONObject: subjectsJSON, options: [.prettyPrinted, .sortedKeys])
            let dir = URL(fileURLWithPath: output)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try AtomicFile.write(data, to: dir.appendingPathComponent("results.json"))
        }
        if result.droppedShots > 0 && !json {
            Terminal.note("note: \(result.droppedShots) shots left out where the prompt would pass the model's context")
        }
        if json {
            var o: [String: Any] = ["benchmark": kind.rawValue, "split": split, "n_shot": nShot, "scoring": scoring.rawValue,
                                    "questions": result.questions, "average": result.average ?? NSNull()]
            for c in BenchmarkData.categories { o[c] = result.categories[c] ?? NSNull() }
            try Terminal.json(o)
        } else {
            var lines = [String(format: "%-16@ %6.2f", "Average" as NSString, 100 * (result.average ?? .nan))]
            for c in BenchmarkData.categories {
                if let a = result.categories[c] { lines.append(String(format: "%-16@ %6.2f", c as NSString, 100 * a)) }
            }
            Terminal.out(lines.joined(separator: "\n"))
        }
    }

    /// `--stage dpo|orpo|simpo|kto`: the preference loss and TRL's rewards on held-out pairs (KTO: answers), without
    /// training.
    func runPreference(_ data: String, _ settings: PreferenceSettings) throws {
        var pref = settings
        let loaded = try LoadedModel.open(modelOptions.url, dtype: (dtype ?? .float32).dtype, adapter: adapterOption.url,
                                          quantize: quantizeOption.quantize)
        if let ref = preferenceOptions.refModel {
            pref.reference = try LoadedModel.open(URL(fileURLWithPath: ref), dtype: (dtype ?? .float32).dtype).model
        }
        let builder = ExampleBuilder(formatter: try templateOptions.formatter(for: loaded.tokenizer),
                                     maxLength: min(maxLength, loaded.model.config.maxPositionEmbeddings))
        let built = try PreferenceData.examples(file: URL(fileURLWithPath: data), for: pref.loss, builder: builder, limit: limit)
        let unit = pref.loss.isPaired ? "pairs" : "answers"
        guard !built.examples.isEmpty else { throw ValidationError("\(data): no \(unit.dropLast()) keeps an answer token within --max-length \(maxLength)") }
        let sums = try pref.evaluate(model: loaded.model, examples: built.examples, batchSize: batchSize, maxLength: builder.maxLength)
        guard sums.loss.isFinite else { throw NonFiniteResult(what: "the preference loss (\(sums.loss))") }
        if json {
            var o: [String: Any] = ["loss": sums.loss, unit: sums.pairs, "stage": preferenceOptions.stage.rawValue]
            for (k, v) in sums.logged { o[k] = v }
            try Terminal.json(o)
        } else {
            var line = String(format: "%@ loss %.4f over %d %@; rewards chosen %.4f rejected %.4f", preferenceOptions.stage.rawValue,
                              sums.loss, sums.pairs, unit, sums.rewardsChosen, sums.rewardsRejected)
            if let a = sums.rewardsAccuracies { line += String(format: ", accuracy %.3f", a) }
            line += String(format: ", margin %.4f", sums.rewardsMargins)
            if let kl = sums.kl { line += String(format: ", KL %.4f", kl) }
            Terminal.out(line)
        }
    }

    func runGenerate(_ data: String) throws {
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

extension BenchmarkKind: ExpressibleByArgument {}
extension BenchmarkEvaluator.Scoring: ExpressibleByArgument {}

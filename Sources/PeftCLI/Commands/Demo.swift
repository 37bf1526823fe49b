import Adapters
import Compare
import ArgumentParser
import Demo
import Evaluation
import Foundation
import Generation
import Tokenizer
import Training

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole workflow on bundled Chinese patent-medicine Q&A: answer, fine-tune (LoRA or another --method), answer again, report.",
        discussion: """
        Without --model it uses a built-in tiny model (random weights, ~3.7M parameters) and finishes in a few
        minutes. With --model DIR (e.g. Qwen1.5-1.8B-Chat) the defaults keep it well within an hour on 2 cores:
        80 steps and 10 of the 20 test questions (--questions 20 --max-steps 120 for the full version).
        The data set is a demo, not medical advice.
        """)

    @Option(help: "A Hugging Face chat model directory (default: the built-in tiny demo model).") var model: String?
    @Option(help: "Directory for the data, model, adapter, answers and report.") var output: String = "peft-demo"
    @Option(help: "Test questions answered before and after (default: all 20; 10 with --model).") var questions: Int?
    @Option(help: "Optimiser steps (default: 30 epochs for the built-in model; 80 steps with --model).") var maxSteps: Int?
    @Option(help: "Peak learning rate (default: 3e-3 built-in, 2e-4 with --model).") var lr: Double?
    @Option(help: "Fine-tuning method: \(MethodOptions.methodList) (default lora; the others with their defaults).") var method: String = "lora"
    @Option(help: "lora, dora: rank (default 32 built-in, 8 with --model).") var loraR: Int?
    @Option(help: "Examples per step.") var batchSize: Int = 4
    @Option(help: "Longest answer generated, in tokens.") var maxNewTokens: Int = 128
    @Option(help: "Seed for initialisation, shuffling and dropout.") var seed: UInt64 = 42
    @OptionGroup var quantizeOption: QuantizeOption
    @Flag(help: "Instead of one method, compare them all (peft compare) on the built-in data: report in OUTPUT/compare.") var compare = false
    @OptionGroup var benchmarkOptions: BenchmarkColumnOptions

    var methodTitle: String { AdapterMethod(rawValue: method)?.title ?? method }

    func validate() throws {
        if let q = questions, q < 1 { throw ValidationError("--questions must be at least 1") }
        if let s = maxSteps, s < 1 || s > TrainingOptions.stepLimit { throw ValidationError("--max-steps must be within 1...\(TrainingOptions.stepLimit)") }
        if let r = loraR, r < 1 || r > LoRAConfig.maxRank { throw ValidationError("--lora-r must be within 1...\(LoRAConfig.maxRank)") }
        guard let m = AdapterMethod(rawValue: method) else {
            throw ValidationError("unknown --method '\(method)'; choose one of: \(MethodOptions.methodList)")
        }
        if loraR != nil, m != .lora, m != .dora { throw ValidationError("--lora-r belongs to --method lora/dora, not \(method)") }
        if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr must be a positive number") }
        if batchSize < 1 || batchSize > 1 << 16 { throw ValidationError("--batch-size must be within 1...65536") }
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1") }
    }

    func run() throws {
        let began = Date()
        let out = URL(fileURLWithPath: output)
        let builtIn = model == nil
        let dataDir = out.appendingPathComponent("data")
        try DemoData.write(to: dataDir)
        let modelURL: URL
        if let model {
            modelURL = URL(fileURLWithPath: (model as NSString).expandingTildeInPath)
        } else {
            modelURL = out.appendingPathComponent("base-model")
            try DemoModel.write(to: modelURL)
        }
        Terminal.note("""
        == peft demo: Chinese patent-medicine Q&A (a demo data set, not medical advice) ==
        \(builtIn ? "Model: the built-in tiny demo model (\(DemoModel.parameterCount.formatted()) parameters, random weights). It knows no language before training, so expect gibberish first; training teaches it the answer layout and which medicine fits which complaint in 80 examples. This shows the workflow, not a real model's quality: run `peft demo --model DIR` with a chat model such as Qwen1.5-1.8B-Chat for that." : "Model: \(modelURL.path)")
        Output: \(out.path)
        """)
        if compare {
            try runCompare(modelURL: modelURL, dataDir: dataDir, out: out, builtIn: builtIn)
            return
        }
        // The tiny built-in model trains fastest in f32; a real checkpoint in bf16 where oneDNN has bf16 products.
        let dtype: ComputeDType = builtIn ? .float32 : .fastestForTraining
        let loaded = try LoadedModel.open(modelURL, dtype: dtype.dtype, quantize: quantizeOption.quantize)
        let templateOptions = try TemplateOptions.parse([])
        let formatter = try templateOptions.formatter(for: loaded.tokenizer)
        let builder = ExampleBuilder(formatter: formatter, maxLength: 512)
        let test = try DataLoader.load(dataDir.appendingPathComponent("test.jsonl"))
        let count = min(test.conversations.count, questions ?? (builtIn ? test.conversations.count : 10))
        let subset = Array(test.conversations.prefix(count))
        var sampling = loaded.sampling
        sampling.temperature = 0
        sampling.maxNewTokens = maxNewTokens
        let stops = loaded.stopIDs(formatter)
        Interrupt.install()

        // 1. Answers before training.
        Terminal.note("\n[1/4] answering \(count) test questions before training")
        let before = try answer(subset, label: "before", loaded: loaded, builder: builder, sampling: sampling, stops: stops)
        try EvaluationRunFiles.write(before, to: out.appendingPathComponent("before"))
        showFirst(before)
        var runs: [(name: String, run: EvaluationRun)] = [("before", before)]
        // With --benchmark: the benchmark's average accuracy before and after (a row of the report).
        let benchmarkColumn = try benchmarkOptions.column()
        var benchmark: [String: Double] = [:]
        func scoreBenchmark(_ name: String) throws {
            guard let kind = benchmarkOptions.benchmark, let dir = benchmarkOptions.benchmarkDir, benchmarkColumn != nil else { return }
            let subjects = try BenchmarkData.load(kind, directory: URL(fileURLWithPath: dir), split: benchmarkOptions.split)
            var evaluator = BenchmarkEvaluator(model: loaded.model, tokenizer: loaded.tokenizer, kind: kind)
            evaluator.nShot = benchmarkOptions.nShot
            let bar = ProgressBar(total: subjects.reduce(0) { $0 + $1.questions.count }, label: "\(kind.rawValue) \(name)")
            let result = try evaluator.evaluate(subjects) { done, _ in bar.update(done) }
            if let a = result.average {
                benchmark[name] = 100 * a
                Terminal.note(String(format: "%@ %@: %.2f%% average accuracy", kind.rawValue, name, 100 * a))
            }
        }
        try scoreBenchmark("before")
        var settings: [String: String] = ["model": modelURL.path, "test questions": "\(count)", "decoding": "greedy, at most \(maxNewTokens) new tokens"]
        func finish(interrupted: Bool) throws {
            let log = (try? LogEntry.read(out.appendingPathComponent("adapter/train_log.jsonl"))) ?? []
            var notes = ["A demonstration data set written for this project: not medical advice."]
            if builtIn { notes.append("Built-in tiny model with random weights (\(DemoModel.parameterCount.formatted()) parameters): the numbers show that fine-tuning works, not what a real model can do.") }
            if interrupted { notes.append("Stopped early with Ctrl-C: this report is partial.") }
            let data = ReportBuilder.build(title: "peft demo: patent-medicine Q&A before and after \(methodTitle)",
                                           subtitle: "\(modelURL.lastPathComponent) · \(ISO8601DateFormatter().string(from: Date()))",
                                           notes: notes, log: log, runs: runs, settings: settings, benchmark: benchmark)
            try ReportBuilder.write(data, html: out.appendingPathComponent("report.html"))
        }
        if Interrupt.requested { try finish(interrupted: true); throw ExitCode(130) }

        // 2. Fine-tune.
        var options = TrainingOptions()
        options.batchSize = batchSize
        options.learningRate = lr ?? (builtIn ? 3e-3 : 2e-4)
        options.seed = seed
        options.warmupRatio = 0.05
        options.scheduler = .cosine
        if let maxSteps { options.maxSteps = maxSteps } else if builtIn { options.epochs = 30 } else { options.maxSteps = 80 }
        let r = loraR ?? (builtIn ? 32 : 8)
        let lowRank = method == "lora" || method == "dora"
        let methodOptions = try MethodOptions.parse(lowRank
            ? ["--method", method, "--lora-r", "\(r)", "--lora-alpha", "\(2 * r)", "--lora-dropout", "0.05",
               "--target-modules", "all-linear"]
            : ["--method", method])
        if lr == nil, !(builtIn && lowRank) { options.learningRate = methodOptions.defaultLearningRate }
        settings[methodTitle] = lowRank ? "r=\(r), alpha=\(2 * r), dropout 0.05, all linear projections" : "defaults of peft train --method \(method)"
        settings["optimiser"] = "AdamW, lr \(options.learningRate), cosine, warmup 5%, batch \(batchSize), \(options.maxSteps.map { "\($0) steps" } ?? "\(Int(options.epochs)) epochs")"
        Terminal.note("\n[2/4] fine-tuning \(methodTitle) on the 80 training records")
        let job = TrainingJob(modelURL: modelURL, dataURL: dataDir.appendingPathComponent("train.jsonl"),
                              evalURL: dataDir.appendingPathComponent("test.jsonl"),
                              output: out.appendingPathComponent("adapter"), logURL: nil, method: methodOptions, options: options,
                              templateOptions: templateOptions, dtype: dtype, skipInvalid: false)
        let summary = try job.run(model: loaded)
        if summary.interrupted { try finish(interrupted: true); throw ExitCode(130) }

        // 3. Answers after training (the adapter is attached to the model now).
        Terminal.note("\n[3/4] answering the same questions with the adapter")
        let after = try answer(subset, label: "after", loaded: loaded, builder: builder, sampling: sampling, stops: stops)
        try EvaluationRunFiles.write(after, to: out.appendingPathComponent("after"))
        showFirst(after)
        runs.append(("after", after))
        try scoreBenchmark("after")

        // 4. Report.
        try finish(interrupted: after.partial)
        Terminal.note("\n[4/4] results")
        Terminal.out(table(before: before, after: after))
        Terminal.out(String(format: "final train loss %.4f; wall time %@", summary.finalLoss ?? .nan,
                            Terminal.duration(Date().timeIntervalSince(began))))
        Terminal.out("report: \(out.appendingPathComponent("report.html").path) (and report.md); adapter: \(out.appendingPathComponent("adapter").path)")
        if !builtIn && count < test.conversations.count {
            Terminal.out("full version: peft demo --model \(modelURL.path) --questions \(test.conversations.count) --max-steps 120")
        }
        if after.partial { throw ExitCode(130) }
    }

    func answer(_ conversations: [Conversation], label: String, loaded: LoadedModel, builder: ExampleBuilder,
                sampling: SamplingOptions, stops: [Int32]) throws -> EvaluationRun {
        let bar = ProgressBar(total: conversations.count, label: label)
        let run = try GenerationEvaluator.run(model: loaded.model, builder: builder, conversations: conversations,
                                              sampling: sampling, stopIDs: stops, nameRegex: DemoData.nameRegex,
                                              progress: { done, _, _ in bar.update(done) },
                                              shouldStop: { Interrupt.requested })
        if run.partial { bar.finishLine() }
        return run
    }

    func showFirst(_ run: EvaluationRun) {
        guard let p = run.predictions.first else { return }
        Terminal.note("  Q: \(p.prompt.replacingOccurrences(of: "\n", with: " "))\n  A: \(p.prediction.replacingOccurrences(of: "\n", with: "\n     "))")
    }

    func table(before: EvaluationRun, after: EvaluationRun) -> String {
        func row(_ name: String, _ a: Double?, _ b: Double?, _ fmt: String = "%.2f") -> String {
            let f = { (v: Double?) in v.map { String(format: fmt, $0) } ?? "-" }
            return name.padding(toLength: 18, withPad: " ", startingAt: 0) + f(a).leftPad(10) + f(b).leftPad(10)
        }
        let (m0, m1) = (before.metrics, after.metrics)
        return [
            "metric".padding(toLength: 18, withPad: " ", startingAt: 0) + "before".leftPad(10) + "after".leftPad(10),
            row("test loss", before.loss?.loss, after.loss?.loss, "%.4f"),
            row("perplexity", before.loss?.perplexity, after.loss?.perplexity),
            row("BLEU-4", m0?.bleu4, m1?.bleu4), row("ROUGE-1", m0?.rouge1, m1?.rouge1),
            row("ROUGE-2", m0?.rouge2, m1?.rouge2), row("ROUGE-L", m0?.rougeL, m1?.rougeL),
            row("exact match %", m0?.exactMatch, m1?.exactMatch, "%.1f"),
            row("medicine name %", m0?.nameMatch, m1?.nameMatch, "%.1f"),
        ].joined(separator: "\n")
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

extension Demo {
    /// `--compare`: every method on the demo data, each with a learning rate that suits the model (the built-in
    /// tiny model starts from random weights and needs larger steps than a pretrained one).
    func runCompare(modelURL: URL, dataDir: URL, out: URL, builtIn: Bool) throws {
        var settings = CompareRunner.Settings(executable: try selfExecutable(), model: modelURL,
                                              data: dataDir.appendingPathComponent("train.jsonl"),
                                              evalData: dataDir.appendingPathComponent("test.jsonl"),
                                              output: out.appendingPathComponent("compare"))
        settings.maxSteps = maxSteps ?? (builtIn ? 150 : 40)
        settings.questions = questions ?? (builtIn ? 10 : 5)
        settings.maxNewTokens = builtIn ? min(maxNewTokens, 96) : maxNewTokens
        settings.trainArguments = ["--batch-size", "\(batchSize)", "--seed", "\(seed)", "--lr-scheduler", "cosine",
                                   "--warmup-ratio", "0.05"] + (builtIn ? ["--dtype", "float32"] : [])
        settings.evalArguments = ["--metric-name-match", "推荐用药：([^。\\n]+)"]
        if builtIn {
            let r = loraR ?? 32
            let lowRank = ["--lora-r", "\(r)", "--lora-alpha", "\(2 * r)", "--target-modules", "all-linear"]
            settings.methodArguments = [
                .lora: lowRank + ["--lr", "3e-3"], .dora: lowRank + ["--lr", "3e-3"], .ia3: ["--lr", "3e-2"],
                .prompt: ["--lr", "3e-2"], .ptuning: ["--lr", "3e-3"], .prefix: ["--lr", "3e-2"],
                .adapter: ["--lr", "3e-3", "--reduction-factor", "2"], .freeze: ["--lr", "3e-3"], .full: ["--lr", "1e-3"],
            ]
        }
        settings.title = "peft demo --compare: every method on patent-medicine Q&A"
        settings.benchmark = try benchmarkOptions.column()
        settings.notes = builtIn
            ? ["The built-in tiny model starts from random weights: the numbers compare how fast each method fits 80 records, not what it does to a real chat model. A demo data set, not medical advice."]
            : ["A demo data set, not medical advice."]
        Terminal.note("Comparing \(settings.methods.count) methods, \(settings.maxSteps ?? 0) steps each, \(settings.questions ?? 0) held-out questions")
        let report = try CompareCommand.run(settings)
        if report.partial { throw ExitCode(130) }
    }
}

import Adapters
import ArgumentParser
import Compare
import Evaluation
import Foundation

struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Train several methods on the same data and budget, evaluate each on the same held-out questions, and report them side by side.",
        discussion: """
        Writes compare.html (loss curves, parameters against quality, costs and scores, sample answers), compare.md \
        and compare.json to --output, after every method. Each method trains in its own process, with the defaults \
        of `peft train --method M`: a method that fails (even out of memory) is marked failed and the others go on. \
        Without --eval-data the last tenth of the data (1 to 50 records) is held out. Ctrl-C leaves a partial report. \
        With --stage dpo|orpo|simpo|kto every method trains on preference data and is scored on the held-out records \
        with `peft eval --stage` (the preference loss, rewards, accuracy or KL, margins and log-probabilities).
        """)

    @Option(help: "Hugging Face model directory.") var model: String
    @Option(help: "Training data file.") var data: String
    @Option(help: "Held-out questions (default: the last tenth of --data).") var evalData: String?
    @Option(help: "Comma list of methods: \(MethodOptions.methodList).") var methods: String = AdapterMethod.allCases.map(\.rawValue).joined(separator: ",")
    @Option(help: "Optimiser steps per method (default: 3 epochs).") var maxSteps: Int?
    @Option(help: "Passes over the data per method (instead of --max-steps).") var epochs: Double?
    @Option(help: "Directory for the runs and the report.") var output: String = "compare-out"
    @Option(help: "Held-out questions answered by each model (default: all).") var questions: Int?
    @Option(help: "Longest generated answer, in tokens.") var maxNewTokens: Int = 128
    @Option(help: "Examples per micro-batch.") var batchSize: Int?
    @Option(help: "Longest example in tokens.") var maxLength: Int?
    @Option(help: "Prompt format (chatml, llama3, plain, none).") var template: String?
    @Option(help: "Compute precision of the training runs: float32 or bfloat16.") var dtype: ComputeDType?
    @Option(help: "Seed of every run.") var seed: UInt64?
    @Option(help: "Also score the share of answers whose first match of this regex equals the reference's.") var metricNameMatch: String?
    @OptionGroup var benchmarkOptions: BenchmarkColumnOptions
    @OptionGroup var preferenceOptions: PreferenceOptions

    func validate() throws {
        _ = try parsedMethods()
        if maxSteps != nil && epochs != nil { throw ValidationError("give --max-steps or --epochs, not both") }
        if let n = maxSteps, n < 1 || n > 1_000_000 { throw ValidationError("--max-steps must be within 1...1000000") }
        if let e = epochs, !(e > 0 && e <= 100_000) { throw ValidationError("--epochs must be positive") }
        if let q = questions, q < 1 { throw ValidationError("--questions must be at least 1") }
        if maxNewTokens < 1 { throw ValidationError("--max-new-tokens must be at least 1") }
    }

    func parsedMethods() throws -> [AdapterMethod] {
        let names = methods.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw ValidationError("--methods is empty") }
        var seen = Set<AdapterMethod>()
        return try names.compactMap { name in
            guard let m = AdapterMethod(rawValue: name) else {
                throw ValidationError("unknown method '\(name)' in --methods; choose from: \(MethodOptions.methodList)")
            }
            return seen.insert(m).inserted ? m : nil
        }
    }

    func run() throws {
        var settings = CompareRunner.Settings(executable: try selfExecutable(), model: URL(fileURLWithPath: model),
                                              data: URL(fileURLWithPath: data), evalData: evalData.map { URL(fileURLWithPath: $0) },
                                              output: URL(fileURLWithPath: output))
        settings.methods = try parsedMethods()
        settings.maxSteps = maxSteps
        settings.epochs = epochs
        settings.questions = questions
        settings.maxNewTokens = maxNewTokens
        var train: [String] = [], eval: [String] = []
        if let b = batchSize { train += ["--batch-size", "\(b)"] }
        if let m = maxLength { train += ["--max-length", "\(m)"]; eval += ["--max-length", "\(m)"] }
        if let t = template { train += ["--template", t]; eval += ["--template", t] }
        if let d = dtype { train += ["--dtype", d.rawValue] }
        if let s = seed { train += ["--seed", "\(s)"] }
        if let r = metricNameMatch { eval += ["--metric-name-match", r] }
        settings.trainArguments = train
        settings.evalArguments = eval
        settings.benchmark = try benchmarkOptions.column()
        settings.preference = try preferenceOptions.childArguments()
        let report = try Self.run(settings)
        if report.partial { throw ExitCode(130) }
    }

    /// Runs a comparison with progress lines and Ctrl-C handling; shared with `peft demo --compare`.
    static func run(_ settings: CompareRunner.Settings) throws -> CompareReport {
        Interrupt.install()
        var runner = CompareRunner(settings: settings)
        runner.onEvent = { Terminal.note($0) }
        runner.shouldStop = { Interrupt.requested }
        let report = try runner.run()
        let dir = settings.output
        Terminal.note("report: \(dir.appendingPathComponent(CompareReport.htmlName).path) (and \(CompareReport.markdownName), \(CompareReport.jsonName))")
        Terminal.out(CompareRenderer.markdownTable(report))
        return report
    }
}

/// This executable's path, to run `peft train` and `peft eval` as children.
func selfExecutable() throws -> URL {
    let url = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    let arg0 = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    guard FileManager.default.isExecutableFile(atPath: arg0.path) else {
        throw ValidationError("cannot find the peft executable to run its training children")
    }
    return arg0
}

/// `--benchmark` on `peft compare` and `peft demo --compare`: a column of benchmark accuracy before and after.
struct BenchmarkColumnOptions: ParsableArguments {
    @Option(help: "Also score the base and every trained state on this benchmark (mmlu, cmmlu, ceval; see peft eval --benchmark).") var benchmark: BenchmarkKind?
    @Option(help: "With --benchmark: the benchmark's folder.") var benchmarkDir: String?
    @Option(help: "With --benchmark: dev questions shown before each question.") var nShot: Int = 5
    @Option(help: "With --benchmark: the split scored (test or val).") var split: String = "test"

    func column() throws -> (name: String, arguments: [String])? {
        guard let benchmark else { return nil }
        guard let dir = benchmarkDir else { throw ValidationError("--benchmark needs --benchmark-dir DIR") }
        // Read the folder now: a bad one fails before any training.
        _ = try BenchmarkData.load(benchmark, directory: URL(fileURLWithPath: dir), split: split)
        return (benchmark.rawValue, ["--benchmark", benchmark.rawValue, "--benchmark-dir", URL(fileURLWithPath: dir).path,
                                     "--n-shot", "\(nShot)", "--split", split])
    }
}

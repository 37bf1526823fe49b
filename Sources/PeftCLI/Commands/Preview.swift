import ArgumentParser
import Foundation
import GGUF
import Tokenizer
import Training

/// `peft preview`: what `peft train` would make of a data set, without loading the weights: the record and token
/// counts, and the first records rendered through the chat format with the tokens that train (the answers) marked.
struct Preview: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what training would see: record and token counts, and the first records rendered through the chat format with the trained (answer) tokens marked.",
        discussion: "Reads only the tokenizer and template of --model. Text output marks trained spans as [[...]]; --json gives "
            + "{records, examples, dropped, skipped, tokens, trained_tokens, format, samples: [{record, tokens, trained_tokens, "
            + "segments: [{text, trained}]}]}. --list with --dataset-dir names the folder's data sets and what is wrong with any.")

    @Option(help: "Hugging Face model directory, hub id or .gguf file (its tokenizer and chat template are used).") var model: String?
    @Option(help: "Data file (Alpaca, ShareGPT or messages; .json or .jsonl).") var data: String?
    @Option(help: "A data set named in --dataset-dir's dataset_info.json, instead of --data.") var dataset: String?
    @Option(help: "The folder holding dataset_info.json and its files.") var datasetDir: String = "data"
    @Flag(help: "List --dataset-dir's data sets (name, file, formatting, problem) instead of a preview.") var list = false
    @Option(help: "Records shown.") var count = 3
    @Option(help: "Longest example in tokens, as in training.") var maxLength = 512
    @Flag(help: "Drop invalid records (with a count) instead of stopping at the first.") var skipInvalid = false
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var templateOptions: TemplateOptions

    func validate() throws {
        guard count >= 0 else { throw ValidationError("--count must not be negative") }
        guard maxLength >= 2 else { throw ValidationError("--max-length must be at least 2") }
        if list { return }
        guard model != nil else { throw ValidationError("--model is required (its tokenizer and template render the records)") }
        guard (data == nil) != (dataset == nil) else { throw ValidationError("give exactly one of --data FILE or --dataset NAME (with --dataset-dir DIR)") }
    }

    func run() throws {
        if list { return try listDatasets() }
        let loaded = try dataset.map { try DataLoader.load(dataset: $0, directory: URL(fileURLWithPath: datasetDir), skipInvalid: skipInvalid) }
            ?? DataLoader.load(URL(fileURLWithPath: data!), skipInvalid: skipInvalid)
        let model = self.model!
        try HubResolution.resolve(model)
        let url = HubResolution.url(model)
        let tokenizer = url.pathExtension.lowercased() == "gguf" ? try GGUFModel(path: url.path).tokenizer() : try Tokenizer.load(directory: url)
        let formatter = try templateOptions.formatter(for: tokenizer)
        let builder = ExampleBuilder(formatter: formatter, maxLength: maxLength)
        let built: ExampleBuilder.Built
        do { built = try builder.build(loaded.conversations) } catch {
            throw ValidationError("\(data ?? dataset ?? ""): \(error)")
        }
        let tokens = built.examples.reduce(0) { $0 + $1.ids.count }
        let trained = built.examples.reduce(0) { $0 + $1.labelCount }
        var samples: [[String: Any]] = []
        var shown = 0
        for (index, conversation) in loaded.conversations.enumerated() where shown < count {
            guard let example = try builder.example(conversation) else { continue }
            shown += 1
            samples.append(["record": index + 1, "tokens": example.ids.count, "trained_tokens": example.labelCount,
                            "segments": Self.segments(example, tokenizer: tokenizer).map { ["text": $0.text, "trained": $0.trained] }])
        }
        if json {
            try Terminal.json(["records": loaded.conversations.count, "examples": built.examples.count, "dropped": built.dropped,
                               "skipped": loaded.skipped.count, "tokens": tokens, "trained_tokens": trained,
                               "format": formatter.template.rawValue, "data_format": loaded.format.rawValue, "samples": samples])
            return
        }
        Terminal.out("\(loaded.conversations.count) \(loaded.format.rawValue) records, \(built.examples.count) examples (\(built.dropped) dropped, \(loaded.skipped.count) invalid skipped), \(tokens) tokens of which \(trained) train; \(formatter.template.rawValue) format")
        for sample in samples {
            Terminal.out("\n-- record \(sample["record"]!) (\(sample["tokens"]!) tokens, \(sample["trained_tokens"]!) trained; trained spans in [[ ]])")
            let segments = sample["segments"] as! [[String: Any]]
            Terminal.out(segments.map { ($0["trained"] as! Bool) ? "[[\($0["text"] as! String)]]" : $0["text"] as! String }.joined())
        }
    }

    /// Consecutive tokens with the same label state, decoded together (so multi-token characters stay whole).
    static func segments(_ example: TrainingExample, tokenizer: Tokenizer) -> [(text: String, trained: Bool)] {
        var out: [(text: String, trained: Bool)] = []
        var start = 0
        // labels[t] is the target of position t, token t + 1: token t trains when labels[t - 1] >= 0.
        let flags = example.ids.indices.map { t in t > 0 && example.labels[t - 1] >= 0 }
        guard !flags.isEmpty else { return [] }
        for i in 1...flags.count where i == flags.count || flags[i] != flags[start] {
            out.append((tokenizer.decode(Array(example.ids[start..<i])), flags[start]))
            start = i
        }
        return out
    }

    func listDatasets() throws {
        let entries = try DatasetCatalog.entries(in: URL(fileURLWithPath: datasetDir))
        if json {
            try Terminal.json(["datasets": entries.map(\.json)])
            return
        }
        for e in entries {
            Terminal.out("\(e.name)\t\(e.file ?? "-")\t\(e.formatting)\(e.ranking ? " (pairs)" : "")\(e.problem.map { "\tproblem: \($0)" } ?? "")")
        }
    }
}

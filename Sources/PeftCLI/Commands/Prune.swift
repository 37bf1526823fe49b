import ArgumentParser
import Compression
import Foundation
import Tokenizer
import Training
import Transformer

struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Prune a model from calibration data: magnitude, Wanda or SparseGPT zeros (unstructured or N:M), or whole layers removed; writes a Hugging Face folder and prune_report.json.")

    @Option(name: .long, help: "Hugging Face model directory (or hub id) to prune.") var model: String
    @Option(help: "Calibration data (Alpaca, ShareGPT or messages); each record is built as a training example.") var data: String
    @Option(help: "Directory to write the pruned model to.") var output: String
    @Option(help: "magnitude, wanda, sparsegpt or layers.") var method: PruneMethod
    @Option(help: "Calibration samples: the first N records.") var nsamples: Int = 128
    @Option(help: "Longest calibration sample in tokens (longer ones are truncated).") var seqlen: Int = 2048
    @Option(help: "Share of each projection's weights to zero (magnitude, wanda, sparsegpt).") var sparsity: Double?
    @Option(help: "unstructured, or N:M: N of every M consecutive inputs of a row zeroed (2:4, 4:8).") var pattern: String = "unstructured"
    @Option(help: "layers: remove this many layers with the lowest block influence (ShortGPT).") var removeLayers: Int?
    @Option(help: "layers: remove this many consecutive layers at the smallest angular distance (Gromov et al.).") var removeBlock: Int?
    @Option(help: "Precision the calibration passes run in: float32 (default) or bfloat16 (half the memory; pruned weights stored in bf16 before writing).") var dtype: ComputeDType = .float32
    @OptionGroup var templateOptions: TemplateOptions
    @Flag(help: "Print the report as one JSON object.") var json = false

    func validate() throws {
        try HubResolution.resolve(model)
        if nsamples < 1 { throw ValidationError("--nsamples must be at least 1") }
        if seqlen < 2 { throw ValidationError("--seqlen must be at least 2") }
        if let sparsity, !(sparsity >= 0 && sparsity < 1) { throw ValidationError("--sparsity must be in [0, 1), not \(sparsity)") }
        let pattern = try SparsityPattern(parsing: self.pattern)
        if method == .layers {
            guard (removeLayers == nil) != (removeBlock == nil) else {
                throw ValidationError("--method layers needs exactly one of --remove-layers K or --remove-block K")
            }
            if let k = removeLayers ?? removeBlock, k < 1 { throw ValidationError("--remove-layers / --remove-block must be at least 1") }
            if sparsity != nil || pattern != .unstructured { throw ValidationError("--sparsity and --pattern do not apply to --method layers") }
        } else {
            if removeLayers != nil || removeBlock != nil { throw ValidationError("--remove-layers and --remove-block apply to --method layers only") }
            if let implied = pattern.impliedSparsity, let sparsity, abs(sparsity - implied) > 1e-9 {
                throw ValidationError("--pattern \(pattern) zeroes \(implied) of the weights; --sparsity \(sparsity) contradicts it (leave --sparsity out)")
            }
        }
    }

    func run() throws {
        let started = Date()
        let url = HubResolution.url(model)
        let outURL = URL(fileURLWithPath: output)
        let pattern = try SparsityPattern(parsing: self.pattern)
        let loaded = try LoadedModel.open(url, dtype: dtype.dtype)
        let m = loaded.model, config = m.config
        if url.pathExtension.lowercased() == "gguf" { throw PruneError.unsupported("\(url.path): prune reads Hugging Face folders (safetensors); prune before exporting to GGUF") }
        if m.weights.quantType != nil { throw PruneError.unsupported("\(url.path): the model's projections are quantized (GPTQ); prune a bf16/f16/f32 checkpoint") }

        // Calibration: the first --nsamples records, each the full token sequence of its training example.
        var set = try DataLoader.load(URL(fileURLWithPath: data))
        set.conversations = Array(set.conversations.prefix(nsamples))
        let formatter = try templateOptions.formatter(for: loaded.tokenizer)
        // Samples stop at the model's context, as the reference scripts take seqlen from it.
        let seqlen = min(self.seqlen, config.maxPositionEmbeddings)
        if seqlen < self.seqlen { Terminal.note("calibration samples cut at \(seqlen) tokens, the model's context") }
        let builder = ExampleBuilder(formatter: formatter, maxLength: seqlen)
        var samples: [[Int32]] = []
        for (i, c) in set.conversations.enumerated() {
            do {
                var ids = try formatter.trainingExample(builder.messages(c), tools: c.tools).ids
                if ids.count > seqlen { ids.removeLast(ids.count - seqlen) }
                try m.validate(tokens: ids, maxPosition: ids.count)
                samples.append(ids)
            } catch {
                throw ValidationError("\(data): record \(i + 1): \(error)")
            }
        }
        guard !samples.isEmpty else { throw ValidationError("\(data): no records to calibrate with") }
        let tokens = samples.reduce(0) { $0 + $1.count }
        Terminal.note("calibrating on \(samples.count) sample\(samples.count == 1 ? "" : "s") (\(tokens) tokens, longest \(samples.map(\.count).max()!))")

        let pruner = Pruner(model: m, samples: samples)
        let before = pruner.calibrationLoss()
        var report: [String: Any] = ["method": method.rawValue, "model": url.path, "data": data, "nsamples": samples.count,
                                     "seqlen": seqlen, "calibration_tokens": tokens, "loss_before": before,
                                     "layer_count_before": config.layerCount]
        var notes: [String] = []
        var replaced = Set<String>(), removed: [Int] = []
        if method == .layers {
            let k = removeLayers ?? removeBlock!
            guard k < config.layerCount else {
                throw ValidationError("cannot remove \(k) of the model's \(config.layerCount) layers (at least one must stay)")
            }
            if let why = PrunedModelWriter.layerRemovalRefusal(config) { throw ValidationError(why) }
            let bar = ProgressBar(total: samples.count, label: "score")
            let scores = LayerRemoval.scores(model: m, samples: samples, block: removeBlock) { done, _ in if !json { bar.update(done) } }
            removed = LayerRemoval.choose(scores, layers: removeLayers, block: removeBlock)
            var layers: [String: Any] = ["block_influence": scores.blockInfluence, "removed": removed]
            if let d = scores.angularDistance { layers["angular_distance"] = d; layers["block_size"] = removeBlock! }
            layers["criterion"] = removeLayers != nil ? "block_influence" : "angular_distance"
            report["layers"] = layers
            report["loss_after"] = pruner.calibrationLoss(skipping: Set(removed))
            report["layer_count_after"] = config.layerCount - removed.count
        } else {
            var settings = PruneSettings(method: method, sparsity: pattern.impliedSparsity ?? sparsity ?? 0.5, pattern: pattern)
            settings.blockSize = 128
            let bar = ProgressBar(total: config.layerCount, label: "prune")
            let matrices = try pruner.prune(settings) { done, _ in if !json { bar.update(done, detail: "layers") } }
            replaced = Set(matrices.map(\.name))
            let zeros = matrices.reduce(0.0) { $0 + $1.sparsity * Double($1.rows * $1.cols) }
            let total = matrices.reduce(0) { $0 + $1.rows * $1.cols }
            report["sparsity"] = settings.sparsity
            report["pattern"] = pattern.description
            report["overall_sparsity"] = total > 0 ? zeros / Double(total) : 0
            report["matrices"] = matrices.map { ["name": $0.name, "rows": $0.rows, "cols": $0.cols, "sparsity": $0.sparsity] as [String: Any] }
            report["loss_after"] = pruner.calibrationLoss()
            report["layer_count_after"] = config.layerCount
            if !pruner.unreachedExperts.isEmpty {
                notes.append("no calibration token was routed to \(pruner.unreachedExperts.joined(separator: ", ")): pruned by magnitude within each row")
                report["unreached_experts"] = pruner.unreachedExperts
            }
        }
        report["seconds"] = Date().timeIntervalSince(started)
        if !notes.isEmpty { report["notes"] = notes }
        let reportData = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        let written = try PrunedModelWriter.write(source: url, model: m, replaced: replaced, removedLayers: removed,
                                                  report: reportData, output: outURL)
        if json {
            try Terminal.json(report)
        } else {
            let after = report["loss_after"] as? Double ?? .nan
            let what: String
            if method == .layers {
                what = "removed layer\(removed.count == 1 ? "" : "s") \(removed.map(String.init).joined(separator: ", ")) of \(config.layerCount)"
            } else {
                what = String(format: "%.1f%% of the projections' weights zeroed (%@)", 100 * (report["overall_sparsity"] as? Double ?? 0), pattern.description)
            }
            Terminal.out(String(format: "%@; calibration loss %.4f -> %.4f", what, before, after))
            Terminal.note("wrote \(outURL.path) (\(written.files) weight file\(written.files == 1 ? "" : "s"), \(Terminal.bytes(written.bytes))) and \(PrunedModelWriter.reportFileName)")
        }
    }
}

extension PruneMethod: ExpressibleByArgument {}

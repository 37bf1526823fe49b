import Adapters
import ArgumentParser
import Foundation
import ModelIO
import Transformer

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fold a LoRA, DoRA or (IA)³ adapter into a full Hugging Face model directory (base dtype and shards kept).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The PEFT adapter directory (lora, dora or ia3; prompt-learning adapters have nothing to fold).") var adapter: String
    @Option(help: "Directory to write the merged model to.") var output: String

    func run() throws {
        let adapterURL = URL(fileURLWithPath: adapter)
        let method = try AdapterFiles.method(of: adapterURL)
        let out = URL(fileURLWithPath: output)
        if let why = method.mergeRefusal {
            throw AdapterError.unsupported(path: adapterURL.path, reason: why + "; nothing was written")
        }
        let directory = try ModelDirectory(url: modelOptions.url)
        let config = try ModelConfig(json: directory.configData, path: modelOptions.url.appendingPathComponent("config.json").path)
        let loaded = try AdapterFiles.load(from: adapterURL, model: config)
        let report = try AdapterMerger.merge(model: modelOptions.url, adapter: loaded, output: out)
        Terminal.note("merged \(report.mergedTensors) tensors into \(out.path) (\(report.files) weight file\(report.files == 1 ? "" : "s"), \(Terminal.bytes(report.bytes)))")
        if report.remaskedTensors > 0 {
            Terminal.note("kept the zeros of \(report.remaskedTensors) pruned tensor\(report.remaskedTensors == 1 ? "" : "s") of the base model")
        }
    }
}

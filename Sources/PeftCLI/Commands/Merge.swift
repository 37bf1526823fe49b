import Adapters
import ArgumentParser
import Foundation
import ModelIO
import Transformer

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fold a LoRA adapter into a full Hugging Face model directory (base dtype and shards kept).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "The PEFT LoRA adapter directory.") var adapter: String
    @Option(help: "Directory to write the merged model to.") var output: String

    func run() throws {
        let directory = try ModelDirectory(url: modelOptions.url)
        let config = try ModelConfig(json: directory.configData, path: modelOptions.url.appendingPathComponent("config.json").path)
        let lora = try LoRAAdapter.load(from: URL(fileURLWithPath: adapter), model: config)
        let out = URL(fileURLWithPath: output)
        let report = try LoRAMerger.merge(model: modelOptions.url, adapter: lora, output: out)
        Terminal.note("merged \(report.mergedTensors) projections into \(out.path) (\(report.files) weight file\(report.files == 1 ? "" : "s"), \(Terminal.bytes(report.bytes)))")
    }
}

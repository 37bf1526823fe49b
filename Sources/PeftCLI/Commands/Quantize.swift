import Adapters
import ArgumentParser
import GGUF
import Foundation
import ModelIO
import Transformer

extension GGUFExporter.OutputType: ExpressibleByArgument {}

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model (with an adapter merged in, if given) as one GGUF file for llama.cpp and Ollama.",
        discussion: "Every tensor in the format llama.cpp's llama-quantize gives it for the chosen file type (llama.cpp's names in lower case: q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, iq4_nl, iq4_xs; f32, f16 or bf16 for every matrix; q4_k for every matrix q4_k), norms in f32, the tokenizer and chat template in the metadata, tensor names as llama.cpp's converter writes them. Qwen2 (Qwen1.5, Qwen2, Qwen2.5), Qwen3, Qwen v1, Llama, Mistral, InternLM2/3, Baichuan2-7B, Phi-3/4, GLM, GLM-4-0414, Gemma 2/3, Qwen2-MoE and Qwen3-MoE, each as llama.cpp's converter writes it; a model that llama.cpp would run differently is refused, and a sliding window (which llama.cpp ignores outside Gemma) is recorded and noted.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "A LoRA, DoRA or (IA)³ adapter to merge first.") var adapter: String?
    @Option(help: "A llama.cpp file type (q4_k_m, q8_0, q5_k_m, q3_k_m, iq4_xs, ...: see below), f32, f16, bf16 or q4_k.") var type: GGUFExporter.OutputType
    @Option(help: "The .gguf file to write.") var output: String

    func run() throws {
        let out = URL(fileURLWithPath: output)
        guard out.pathExtension == "gguf" else { throw ValidationError("--output must end in .gguf") }
        var merged: TrainableAdapter? = nil
        if let adapter {
            let directory = try ModelDirectory(url: modelOptions.url)
            let config = try ModelConfig(json: directory.configData, path: modelOptions.url.appendingPathComponent("config.json").path)
            merged = try AdapterFiles.load(from: URL(fileURLWithPath: adapter), model: config)
        }
        let report = try GGUFExporter.export(model: modelOptions.url, adapter: merged, type: type, output: out)
        for n in report.notes { Terminal.note("note: \(n)") }
        for f in report.fallbacks.prefix(3) { Terminal.note("note: \(f)") }
        if report.fallbacks.count > 3 { Terminal.note("note: \(report.fallbacks.count - 3) more tensors in a fallback format") }
        Terminal.note("wrote \(out.path): \(report.tensors) tensors, \(Terminal.bytes(report.bytes))")
    }
}

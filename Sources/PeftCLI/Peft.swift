import ArgumentParser
import Foundation
import Kernels

@main
struct Peft: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peft",
        abstract: "Fine-tune, evaluate, merge and run Hugging Face chat models natively on the CPU.",
        discussion: """
        Loads Hugging Face model directories (config.json + safetensors + tokenizer.json) of the Qwen2 / Qwen1.5 /
        Llama / Mistral / Qwen3 families, fine-tunes them (LoRA, DoRA, (IA)³, prompt tuning, P-tuning, prefix tuning,
        bottleneck adapters, freeze or full), compares the methods, generates text, and serves the OpenAI API with many adapters on one base.
        Start with `peft demo`.
        """,
        subcommands: [Demo.self, Generate.self, Chat.self, Train.self, Distill.self, CompareCommand.self, Eval.self, Merge.self, Quantize.self, Prune.self, Report.self,
                      Tokenize.self, Preview.self, TemplateCommand.self, Download.self, Info.self, Serve.self, WebUICommand.self])

    /// A PEFT_CPU that names no tier, or one this CPU lacks, stops every command before it starts.
    static func main() async {
        if let problem = CPU.environmentProblem {
            FileHandle.standardError.write(Data("peft: error: \(problem)\n".utf8))
            Foundation.exit(2)
        }
        await main(nil)
    }
}

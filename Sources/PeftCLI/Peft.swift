import ArgumentParser
import Foundation
import Kernels

@main
struct Peft: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peft",
        abstract: "Fine-tune, evaluate, merge and run Hugging Face chat models natively on the CPU.",
        discussion: """
        Loads Hugging Face model directories (config.json + safetensors + tokenizer) and GGUF files of the Qwen (v1,
        1.5, 2, 2.5, 3, MoE), Llama, Mistral, Gemma 2 / 3, Phi-3 / 4, GLM-4, InternLM2 / 3, Baichuan2, Yi, DeepSeek-R1
        distill and OLMoE families, fine-tunes them (LoRA, DoRA, (IA)³, prompt tuning, P-tuning, prefix tuning,
        bottleneck adapters, freeze or full; DPO, ORPO, SimPO, KTO; distillation), compares the methods, prunes,
        quantizes to GGUF, generates text, and serves the OpenAI API with many adapters on one base (and a web UI).
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

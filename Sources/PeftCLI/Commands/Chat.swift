import ArgumentParser
import Foundation
import Generation
import Tokenizer

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Talk with a model in the terminal (history kept; /reset clears it, /exit quits).")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var adapterOption: AdapterOption
    @OptionGroup var quantizeOption: QuantizeOption
    @OptionGroup var templateOptions: TemplateOptions
    @OptionGroup var sampling: SamplingFlags
    @Option(help: "Compute precision: bfloat16 (default) or float32.") var dtype: ComputeDType = .bfloat16
    @Option(help: "Tokens of history kept (older turns are dropped).") var context: Int = 4096

    func run() throws {
        let loaded = try LoadedModel.open(modelOptions.url, dtype: dtype.dtype,
                                          adapter: adapterOption.url, quantize: quantizeOption.quantize)
        let formatter = try templateOptions.formatter(for: loaded.tokenizer)
        let options = sampling.resolve(loaded.sampling, fallbackMaxNewTokens: 512)
        try options.validate()
        let capacity = min(context, loaded.model.config.maxPositionEmbeddings)
        let generator = Generator(model: loaded.model, capacity: capacity)
        let stops = loaded.stopIDs(formatter)
        var history: [ChatMessage] = []
        Terminal.note("Chatting with \(modelOptions.url.lastPathComponent) (\(formatter.template.rawValue) format). /reset clears the history, /exit quits.")
        var turn = 0
        while true {
            Terminal.out("> ", newline: false)
            guard let line = readLine(strippingNewline: true) else { Terminal.out(""); break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            if text == "/reset" {
                history.removeAll()
                generator.session.reset()
                Terminal.note("(history cleared)")
                continue
            }
            history.append(ChatMessage(role: .user, content: text))
            var ids = try formatter.promptIDs(history)
            // Keep the newest turns that fit, leaving room for the answer.
            while ids.count + min(options.maxNewTokens, capacity / 4) > capacity && history.count > 1 {
                history.removeFirst(min(2, history.count - 1))
                ids = try formatter.promptIDs(history)
            }
            guard ids.count < capacity else {
                Terminal.note("(that message is too long for a context of \(capacity) tokens)")
                history.removeLast()
                continue
            }
            var decoder = StreamingDecoder(tokenizer: loaded.tokenizer)
            var opts = options
            opts.seed = options.seed &+ UInt64(turn)
            turn += 1
            let result = try generator.generate(prompt: ids, options: opts, stopIDs: stops) { id in
                Terminal.out(decoder.append(id), newline: false)
                return true
            }
            Terminal.out(decoder.flush())
            history.append(ChatMessage(role: .assistant, content: loaded.tokenizer.decode(result.tokens, skipSpecialTokens: true)))
            if Terminal.stderrIsTTY {
                Terminal.note(String(format: "(%d tokens, %.1f tokens/s)", result.tokens.count, result.decodeTokensPerSecond))
            }
        }
    }
}

import ArgumentParser
import Foundation
import Tokenizer

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Token ids of raw text (no template; special tokens written in the text are recognised).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Text to tokenize.") var text: String?
    @Option(help: "JSON Lines file with one {\"text\": ...} per line; prints one {\"ids\": [...]} per line.") var file: String?
    @Flag(help: "Print {\"ids\": [...]} instead of space-separated ids.") var json = false

    func validate() throws {
        if (text == nil) == (file == nil) { throw ValidationError("give exactly one of --text or --file") }
    }

    func run() throws {
        let tokenizer = try Tokenizer.load(directory: modelOptions.url)
        if let text {
            let ids = tokenizer.encode(text).map(Int.init)
            if json { try Terminal.json(["ids": ids]) } else { Terminal.out(ids.map(String.init).joined(separator: " ")) }
            return
        }
        guard let file, let data = FileManager.default.contents(atPath: file) else {
            throw ValidationError("cannot read \(file ?? "")")
        }
        var record = 0
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            let s = line.trimmingCharacters(in: .whitespaces)
            if s.isEmpty { continue }
            record += 1
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any] else {
                throw ValidationError("\(file), record \(record): not a JSON object")
            }
            guard let t = obj["text"] as? String else {
                throw ValidationError("\(file), record \(record), field 'text': missing or not a string")
            }
            try Terminal.json(["ids": tokenizer.encode(t).map(Int.init)])
        }
    }
}

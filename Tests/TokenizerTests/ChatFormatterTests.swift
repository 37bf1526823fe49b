import Foundation
import Jinja
import XCTest
@testable import Tokenizer

/// Golden ids and masks in Fixtures/chat-expected.json were built by the fixture script from Hugging Face
/// encodings of each segment; the script also checks that the chatml text equals the Qwen1.5 Jinja template.
final class ChatFormatterTests: XCTestCase {
    func testGoldenConversations() throws {
        let cases = try Fixtures.decode([Fixtures.ChatCase].self, from: "chat-expected.json")
        XCTAssertEqual(Set(cases.map(\.template)), ["chatml", "llama3", "plain", "none"])
        for golden in cases {
            let tokenizer = try Fixtures.tokenizer(golden.fixture)
            let template = try XCTUnwrap(ChatTemplate(rawValue: golden.template))
            let formatter = try ChatFormatter(template: template, tokenizer: tokenizer)
            let example = try formatter.trainingExample(golden.messages)
            XCTAssertEqual(example.ids, golden.ids, golden.name)
            XCTAssertEqual(example.trainable, golden.trainable, golden.name)
            let prompt = try formatter.promptIDs(Array(golden.messages.dropLast()))
            XCTAssertEqual(prompt, golden.promptIDs, golden.name)
            XCTAssertEqual(Array(example.ids.prefix(prompt.count)), prompt, "\(golden.name): prompt is a prefix")
        }
    }

    /// Trainable tokens are exactly the answers and the end-of-turn after each, in every format.
    func testOnlyAnswersAndEndOfTurnAreTrained() throws {
        let messages = [ChatMessage(role: .system, content: "Be brief."), ChatMessage(role: .user, content: "Q1"),
                        ChatMessage(role: .assistant, content: "答一"), ChatMessage(role: .user, content: "Q2"),
                        ChatMessage(role: .assistant, content: "A2")]
        for (template, fixture) in [(ChatTemplate.chatml, "qwen2-style"), (.llama3, "llama3-style"),
                                    (.plain, "qwen2-style"), (.none, "qwen2-style")] {
            let tokenizer = try Fixtures.tokenizer(fixture)
            let formatter = try ChatFormatter(template: template, tokenizer: tokenizer)
            let example = try formatter.trainingExample(messages)
            let trained = zip(example.ids, example.trainable).filter(\.1).map(\.0)
            let expected = tokenizer.encode("答一", addSpecialTokens: false) + [formatter.endOfTurnID]
                + tokenizer.encode("A2", addSpecialTokens: false) + [formatter.endOfTurnID]
            XCTAssertEqual(trained, expected, template.rawValue)
            XCTAssertEqual(example.trainable.last, true, template.rawValue)
        }
    }

    func testChatMLDefaultSystemPrompt() throws {
        let tokenizer = try Fixtures.tokenizer("qwen2-style")
        let question = [ChatMessage(role: .user, content: "hi")]
        let derived = try ChatFormatter(template: .chatml, tokenizer: tokenizer)
        XCTAssertEqual(derived.defaultSystemPrompt, "You are a helpful assistant.")
        XCTAssertEqual(tokenizer.decode(try derived.promptIDs(question)),
                       "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        let none = try ChatFormatter(template: .chatml, tokenizer: tokenizer, defaultSystemPrompt: .some(nil))
        XCTAssertNil(none.defaultSystemPrompt)
        XCTAssertEqual(tokenizer.decode(try none.promptIDs(question)), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
        let custom = try ChatFormatter(template: .chatml, tokenizer: tokenizer, defaultSystemPrompt: "你是药师。")
        XCTAssertTrue(tokenizer.decode(try custom.promptIDs(question)).hasPrefix("<|im_start|>system\n你是药师。<|im_end|>\n"))
        let explicit = [ChatMessage(role: .system, content: "S")] + question
        XCTAssertTrue(tokenizer.decode(try derived.promptIDs(explicit)).hasPrefix("<|im_start|>system\nS<|im_end|>\n<|im_start|>user"))
    }

    func testDefaultSystemPromptExtraction() {
        // Qwen2.5 style: the first system block echoes the user's message, a later one is a literal.
        let qwen25 = """
        {%- if tools %}{{- '<|im_start|>system\\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}\
        {%- endif %}{%- else %}{%- if messages[0]['role'] == 'system' %}\
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}\
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\
        {%- endif %}{%- endif %}
        """
        XCTAssertEqual(ChatTemplate.defaultSystemPrompt(inTemplate: qwen25),
                       "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        let qwen3 = "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}{%- endif %}"
        XCTAssertNil(ChatTemplate.defaultSystemPrompt(inTemplate: qwen3))
        XCTAssertNil(ChatTemplate.defaultSystemPrompt(inTemplate: nil))
        XCTAssertEqual(ChatTemplate.defaultSystemPrompt(inTemplate: "'<|im_start|>system\\nIt\\'s me.<|im_end|>'"), "It's me.")
    }

    func testDetect() {
        XCTAssertEqual(ChatTemplate.detect(from: TokenizerConfig(chatTemplate: "{{ '<|im_start|>' }}")), .chatml)
        XCTAssertEqual(ChatTemplate.detect(from: TokenizerConfig(chatTemplate: "<|start_header_id|>")), .llama3)
        XCTAssertEqual(ChatTemplate.detect(from: TokenizerConfig(chatTemplate: "[INST]")), .plain)
        XCTAssertEqual(ChatTemplate.detect(from: TokenizerConfig()), .plain)
    }

    func testStopAndEndOfTurnIDs() throws {
        let qwen = try Fixtures.tokenizer("qwen2-style")
        let chatml = try ChatFormatter(template: .chatml, tokenizer: qwen)
        XCTAssertEqual(chatml.endOfTurnID, qwen.id(forToken: "<|im_end|>"))
        XCTAssertEqual(chatml.stopIDs, [qwen.id(forToken: "<|im_end|>"), qwen.id(forToken: "<|endoftext|>")].compactMap { $0 })
        let llama = try Fixtures.tokenizer("llama3-style")
        let llama3 = try ChatFormatter(template: .llama3, tokenizer: llama)
        XCTAssertEqual(llama3.endOfTurnID, llama.id(forToken: "<|eot_id|>"))
        XCTAssertEqual(llama3.stopIDs, [llama.id(forToken: "<|eot_id|>"), llama.id(forToken: "<|end_of_text|>")].compactMap { $0 })
        XCTAssertEqual(try llama3.promptIDs([]).first, llama.bosTokenID, "BOS once at the start")
        let plain = try ChatFormatter(template: .plain, tokenizer: llama)
        XCTAssertEqual(try plain.promptIDs([ChatMessage(role: .user, content: "x")]).first, llama.bosTokenID,
                       "BOS because the tokenizer's template adds it")
        XCTAssertNil(try ChatFormatter(template: .plain, tokenizer: qwen).beginID, "never BOS for Qwen")
    }

    /// Llama-2 style tokenizers ask for BOS (`add_bos_token` and the template); plain and none put it first once.
    func testPlainFormatWithBOSTokenizer() throws {
        let tokenizer = try Fixtures.tokenizer("llama2-style")
        let formatter = try ChatFormatter(template: .plain, tokenizer: tokenizer)
        let eos = try XCTUnwrap(tokenizer.id(forToken: "</s>"))
        XCTAssertEqual(formatter.endOfTurnID, eos)
        XCTAssertEqual(formatter.stopIDs, [eos])
        let example = try formatter.trainingExample([ChatMessage(role: .user, content: "Q"),
                                                     ChatMessage(role: .assistant, content: "A")])
        XCTAssertEqual(example.ids.first, tokenizer.bosTokenID)
        XCTAssertEqual(example.ids.filter { $0 == tokenizer.bosTokenID }.count, 1)
        XCTAssertEqual(example.trainable.first, false)
        XCTAssertEqual(example.ids.last, eos)
        XCTAssertEqual(tokenizer.decode(example.ids), "<s> Instruction: Q\nAnswer:  A</s>",
                       "each segment (here the answer) gets Llama-2's legacy \"▁\" prefix, as Hugging Face does")
    }

    func testPlainPrompt() throws {
        let formatter = try ChatFormatter(template: .plain, tokenizer: Fixtures.tokenizer("qwen2-style"))
        XCTAssertEqual(formatter.plainPrompt(instruction: "翻译", input: ""), "Instruction: 翻译\nAnswer: ")
        XCTAssertEqual(formatter.plainPrompt(instruction: "翻译", input: "板蓝根"), "Instruction: 翻译\nInput: 板蓝根\nAnswer: ")
        let tokenizer = formatter.tokenizer
        XCTAssertEqual(tokenizer.decode(try formatter.promptIDs([ChatMessage(role: .system, content: "S"),
                                                             ChatMessage(role: .user, content: "Q")])),
                       "S\nInstruction: Q\nAnswer: ")
    }

    func testInvalidConversationsAndMissingTokens() throws {
        let qwen = try Fixtures.tokenizer("qwen2-style")
        let formatter = try ChatFormatter(template: .chatml, tokenizer: qwen)
        XCTAssertThrowsError(try formatter.trainingExample([])) { XCTAssertTrue("\($0)".contains("no messages")) }
        XCTAssertThrowsError(try formatter.trainingExample([ChatMessage(role: .user, content: "q")])) {
            XCTAssertTrue("\($0)".contains("ends with a user message"), "\($0)")
        }
        XCTAssertThrowsError(try ChatFormatter(template: .llama3, tokenizer: qwen)) {
            XCTAssertEqual($0 as? TokenizerError, .missingSpecialToken(token: "<|start_header_id|>", format: "llama3"))
        }
        XCTAssertThrowsError(try ChatFormatter(template: .chatml, tokenizer: Fixtures.tokenizer("gpt2-style"))) {
            XCTAssertEqual($0 as? TokenizerError, .missingSpecialToken(token: "<|im_start|>", format: "chatml"))
        }
        let noEOS = try Tokenizer(tokenizerJSON: Data(contentsOf: Fixtures.url("qwen2-style/tokenizer.json")),
                                  config: TokenizerConfig())
        XCTAssertThrowsError(try ChatFormatter(template: .plain, tokenizer: noEOS)) {
            XCTAssertTrue("\($0)".contains("eos_token"), "\($0)")
        }
    }
}

/// The model's own template (`jinja` format): prompts are its rendering, and answer tokens are exactly what each
/// assistant turn adds after the generation prompt, under templates of several families.
final class JinjaChatFormatterTests: XCTestCase {
    func tokenizer(template: String) throws -> Tokenizer {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models/tiny-qwen2")
        let base = try Tokenizer.load(directory: dir)
        var config = base.config
        config.chatTemplate = template
        config.bosToken = "<|endoftext|>"
        return try Tokenizer(tokenizerJSON: Data(contentsOf: dir.appendingPathComponent("tokenizer.json")), config: config)
    }

    func testQwenTemplateGivesTheChatMLTokens() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models/tiny-qwen2")
        let tok = try Tokenizer.load(directory: dir)
        let jinja = try ChatFormatter(template: .jinja, tokenizer: tok), chatml = try ChatFormatter(template: .chatml, tokenizer: tok)
        let conversation = [ChatMessage(role: .user, content: "你好"), ChatMessage(role: .assistant, content: "您好！"),
                            ChatMessage(role: .user, content: "再见"), ChatMessage(role: .assistant, content: "再见。")]
        XCTAssertEqual(try jinja.promptIDs(Array(conversation.prefix(3))), try chatml.promptIDs(Array(conversation.prefix(3))))
        let a = try jinja.trainingExample(conversation), b = try chatml.trainingExample(conversation)
        // The same tokens and labels; the template also writes the newline after the last <|im_end|> (untrained).
        XCTAssertEqual(Array(a.ids.prefix(b.ids.count)), b.ids)
        XCTAssertEqual(Array(a.trainable.prefix(b.ids.count)), b.trainable)
        XCTAssertEqual(tok.decode(Array(a.ids.dropFirst(b.ids.count))), "\n")
        XCTAssertEqual(jinja.endOfTurnID, tok.id(forToken: "<|im_end|>"))
    }

    func testAnswerSpansUnderOtherFamilies() throws {
        let templates = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/templates")
        let conversation = [ChatMessage(role: .user, content: "Question one"), ChatMessage(role: .assistant, content: "Answer one"),
                            ChatMessage(role: .user, content: "Question two"), ChatMessage(role: .assistant, content: "Answer two")]
        for name in ["mistral-7b-v0.1", "llama-2", "gemma", "phi-3", "deepseek-v2.5", "yi-1.5", "internlm2", "llama-3"] {
            let source = try String(contentsOf: templates.appendingPathComponent(name + ".jinja"), encoding: .utf8)
            let tok = try tokenizer(template: source)
            let f = try ChatFormatter(template: .jinja, tokenizer: tok)
            let example: TokenizedConversation
            do { example = try f.trainingExample(conversation) } catch { XCTFail("\(name): \(error)"); continue }
            let trained = tok.decode(zip(example.ids, example.trainable).filter(\.1).map(\.0))
            let untrained = tok.decode(zip(example.ids, example.trainable).filter { !$0.1 }.map(\.0))
            // The answer as the template spaces it (" Answer one</s>" after [/INST] in Mistral's).
            XCTAssertTrue(trained.trimmingCharacters(in: .whitespaces).hasPrefix("Answer one"), "\(name): \(trained)")
            XCTAssertTrue(trained.contains("Answer two"), "\(name): \(trained)")
            XCTAssertFalse(trained.contains("Question"), "\(name): \(trained)")
            XCTAssertFalse(untrained.contains("Answer"), "\(name): \(untrained)")
            // The tokens spell the template's own rendering.
            XCTAssertEqual(tok.decode(example.ids), tok.decode(tok.encode(try Template(source).render([
                "messages": .array(conversation.map { .object([("role", .string($0.role.rawValue)), ("content", .string($0.content))]) }),
                "add_generation_prompt": .bool(false), "bos_token": .string("<|endoftext|>"), "eos_token": .string(tok.config.eosToken ?? ""),
                "tools": .none, "documents": .none]), addSpecialTokens: false)), name)
        }
    }
}

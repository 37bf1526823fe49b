import Foundation
import Jinja
import TestSupport
import XCTest

/// Published chat templates rendered by our interpreter exactly as transformers renders them
/// (scripts/make_chat_template_fixtures.py: conversations with and without a system message, multi-turn, generation
/// prompts, tools with tool calls and results, non-ASCII text; errors the templates raise included).
final class ChatTemplateGoldenTests: XCTestCase {
    /// The moment `strftime_now` renders (granite-3.3 writes "Today's Date: December 02, 2026"): 2026-12-02 12:00
    /// UTC, the date golden.json was rendered with (scripts/make_chat_template_fixtures.py fixes it), so the
    /// comparison holds on any day, in any time zone and locale.
    static let fixtureDate = RenderOptions(date: Date(timeIntervalSince1970: 1_796_212_800), timeZone: TimeZone(secondsFromGMT: 0)!)

    func testRealTemplatesRenderByteForByteAsTransformers() throws {
        let dir = fixtureURL("templates")
        guard case .array(let entries) = try Value.fromJSON(String(contentsOf: dir.appendingPathComponent("golden.json"), encoding: .utf8)) else {
            return XCTFail("golden.json is not a list")
        }
        var templates: [String: Template] = [:]
        var checked = 0, names = Set<String>()
        for case .object(let fields) in entries {
            func field(_ k: String) -> Value { fields.first { $0.0 == k }?.1 ?? .none }
            let name = field("template").text
            names.insert(name)
            if templates[name] == nil {
                let source = try String(contentsOf: dir.appendingPathComponent(name + ".jinja"), encoding: .utf8)
                templates[name] = try Template(source)
            }
            var variables: [String: Value] = [
                "messages": field("messages"), "add_generation_prompt": field("add_generation_prompt"),
                "bos_token": .string("<s>"), "eos_token": .string("</s>"), "date_string": .string("26 Jul 2024"),
            ]
            // transformers passes tools (and documents) as None when there are none.
            variables["tools"] = field("tools")
            variables["documents"] = Value.none
            let label = "\(name) \(field("case").text) tools=\(field("tools").isTruthy) gen=\(field("add_generation_prompt").isTruthy)"
            if case .string(let expected) = field("expected") {
                XCTAssertEqual(try templates[name]!.render(variables, options: Self.fixtureDate), expected, label)
            } else {
                XCTAssertThrowsError(try templates[name]!.render(variables, options: Self.fixtureDate), label) { error in
                    if case TemplateError.raised(let message) = error {
                        XCTAssertEqual(message, field("error").text, label)
                    }
                }
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(names.count, 15, "templates of at least 15 families")
        XCTAssertGreaterThan(checked, 0)
    }
}

/// One feature per snippet (whitespace control, trim/lstrip blocks, loops, scoping, macros, filters, tests, methods,
/// operators, printing, raise_exception), each rendered by transformers' environment (features.json).
final class JinjaFeatureTests: XCTestCase {
    func testFeaturesRenderAsJinja2() throws {
        let url = fixtureURL("templates/features.json")
        guard case .array(let entries) = try Value.fromJSON(String(contentsOf: url, encoding: .utf8)) else { return XCTFail("bad fixture") }
        XCTAssertGreaterThan(entries.count, 10)
        for case .object(let fields) in entries {
            func field(_ k: String) -> Value { fields.first { $0.0 == k }?.1 ?? .none }
            let name = field("name").text
            var variables: [String: Value] = [:]
            if case .object(let vars) = field("variables") { for (k, v) in vars { variables[k] = v } }
            let template = try Template(field("template").text)
            if case .string(let expected) = field("expected") {
                XCTAssertEqual(try template.render(variables), expected, name)
            } else {
                XCTAssertThrowsError(try template.render(variables), name) { error in
                    XCTAssertEqual(error as? TemplateError, .raised(field("error").text), name)
                }
            }
        }
    }

    func testHostileJSONIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        XCTAssertThrowsError(try Value.fromJSON(deep)) { XCTAssertTrue("\($0)".contains("nesting deeper than 512"), "\($0)") }
        XCTAssertThrowsError(try Value.fromJSON("{\"a\": }"))
    }

    func testSyntaxErrorsNameTheLine() {
        XCTAssertThrowsError(try Template("line one\n{% if x %}unclosed")) { XCTAssertTrue("\($0)".contains("endif"), "\($0)") }
        XCTAssertThrowsError(try Template("a\nb\n{{ 1 + }}")) { XCTAssertTrue("\($0)".contains("line 3"), "\($0)") }
        XCTAssertThrowsError(try Template("{% frobnicate %}")) { XCTAssertTrue("\($0)".contains("unknown statement 'frobnicate'"), "\($0)") }
    }
}

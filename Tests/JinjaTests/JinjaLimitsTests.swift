import Foundation
import Jinja
import XCTest

/// Chat templates arrive with downloaded models: hostile ones are template errors, never a crash, a hang or gigabytes
/// of output (the failures minja and llama.cpp's Jinja had: deep nesting, huge loops, recursion, division by zero).
final class JinjaLimitsTests: XCTestCase {
    func render(_ source: String) throws -> String {
        try Template(source).render(["messages": .array([]), "x": .int(3)])
    }

    func assertTemplateError(_ source: String, _ fragment: String, line: UInt = #line) {
        XCTAssertThrowsError(try render(source), line: line) { error in
            XCTAssertTrue("\(error)".contains(fragment), "\(source.prefix(60)): \(error)", line: line)
        }
    }

    func testDivisionAndModuloByZeroAreErrors() {
        assertTemplateError("{{ 1 / 0 }}", "division by zero")
        assertTemplateError("{{ 1 // 0 }}", "division by zero")
        assertTemplateError("{{ 5 % 0 }}", "division by zero")
        assertTemplateError("{{ 1.5 / 0.0 }}", "division by zero")
        assertTemplateError("{{ 1.5 % 0.0 }}", "division by zero")
    }

    /// Found by the fuzzer: a zero slice step trapped (Python raises); extreme bounds clamp as Python's do.
    func testSlicesAsPython() throws {
        assertTemplateError("{{ [1, 2, 3][::0] }}", "slice step cannot be zero")
        assertTemplateError("{{ 'abc'[1::0] }}", "slice step cannot be zero")
        XCTAssertEqual(try render("{{ [1, 2, 3][::-1] }}"), "[3, 2, 1]")
        XCTAssertEqual(try render("{{ [1, 2, 3][-100:100:2] }}"), "[1, 3]")
        XCTAssertEqual(try render("{{ [1, 2, 3][100:-100:-1] }}"), "[3, 2, 1]")
        XCTAssertEqual(try render("{{ [1, 2, 3][-4::-1] }}"), "[]")
        XCTAssertEqual(try render("{{ 'abcdef'[::9223372036854775807] }}"), "a")
        XCTAssertEqual(try render("{{ 'abcdef'[-9223372036854775807:] }}"), "abcdef")
        XCTAssertEqual(try render("{{ [][::5] }}"), "[]")
    }

    func testDeepNestingIsAnError() {
        assertTemplateError("{{ " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000) + " }}", "nest")
        assertTemplateError("{{ " + String(repeating: "[", count: 100_000) + " }}", "nest")
        assertTemplateError(String(repeating: "{% if true %}", count: 20_000) + String(repeating: "{% endif %}", count: 20_000), "nest")
        assertTemplateError("{{ " + String(repeating: "-", count: 100_000) + "1 }}", "nest")
        assertTemplateError("{{ x" + String(repeating: ".a", count: 100_000) + " }}", "nest")
    }

    func testHugeLoopsAndStringsAreErrors() {
        assertTemplateError("{% for i in range(10000000000) %}{% endfor %}", "range")
        assertTemplateError("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "steps")
        assertTemplateError("{{ 'a' * 10000000000 }}", "too long")
        assertTemplateError("{% set ns = namespace(s='abcdefgh') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}", "too long")
        assertTemplateError("{% for i in range(999999) %}{{ 'x' * 100 }}{% endfor %}", "too long")
        assertTemplateError("{{ 9223372036854775807 + 1 }}", "too large")
        assertTemplateError("{{ 10 ** 100 }}", "too large")
        XCTAssertEqual(try? render("{{ 1 ** 1000000000000000000 }}{{ -7 // 2 }}{{ -7 % 3 }}{{ 7 % -3 }}"), "1-42-2")
    }

    func testRecursionIsAnError() {
        assertTemplateError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion")
    }

    func testOrdinaryTemplatesStillRender() throws {
        XCTAssertEqual(try render("{% for i in range(3) %}{{ i }}{% endfor %}{{ 7 // 2 }}{{ 'ab' * 2 }}{{ (((1))) }}"), "0123abab1")
    }
}

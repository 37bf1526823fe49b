@testable import Serving
import XCTest

/// OpenAI `stop` strings over streamed pieces: text is released once it cannot begin a stop string, and a stop string
/// split across pieces is still found and never returned.
final class StopMatcherTests: XCTestCase {
    func testStopStringSplitAcrossPieces() {
        var m = StopMatcher(stops: ["ab", "END"])
        XCTAssertEqual(m.feed("x").text, "x")
        XCTAssertEqual(m.feed("a").text, "", "the whole piece may begin a stop string")
        let last = m.feed("b")
        XCTAssertEqual(last.text, "")
        XCTAssertTrue(last.stopped)

        var e = StopMatcher(stops: ["END"])
        XCTAssertEqual(e.feed("hello E").text, "hello ")
        XCTAssertEqual(e.feed("N").text, "")
        XCTAssertEqual(e.feed("x").text, "ENx", "not a stop after all: released")
        let end = e.feed("done EN")
        XCTAssertEqual(end.text, "done ")
        XCTAssertFalse(end.stopped)
        XCTAssertEqual(e.feed("D and more").stopped, true)
    }

    func testEarliestStopWinsAndFlush() {
        var m = StopMatcher(stops: ["zz", "b"])
        let r = m.feed("a b c zz")
        XCTAssertEqual(r.text, "a ")
        XCTAssertTrue(r.stopped)
        var f = StopMatcher(stops: ["xyz"])
        XCTAssertEqual(f.feed("abcxy").text, "abc")
        XCTAssertEqual(f.flush(), "xy", "held text comes out when generation ends otherwise")
        var none = StopMatcher(stops: [])
        XCTAssertEqual(none.feed("<anything").text, "<anything")
    }
}

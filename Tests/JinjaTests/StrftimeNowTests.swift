import Foundation
import Jinja
import XCTest

/// `strftime_now` renders the moment and time zone of the rendering's options, as Python's
/// `datetime.strftime` writes a naive datetime under the C locale (expected texts from CPython 3 on glibc), whatever
/// the machine's clock, time zone or locale.
final class StrftimeNowTests: XCTestCase {
    static let everything = "%a|%A|%b|%h|%B|%c|%C|%d|%D|%e|%f|%F|%g|%G|%H|%I|%j|%k|%l|%m|%M|%p|%P|%r|%R|%S|%T|%u|%U|%V|%w|%W|%x|%X|%y|%Y|%z|%Z|%%|%-d|%_m|%^a|%Ey|%Q"

    func render(_ format: String, at seconds: Double, offset: Int = 0) throws -> String {
        let options = RenderOptions(date: Date(timeIntervalSince1970: seconds), timeZone: TimeZone(secondsFromGMT: offset)!)
        return try Template("{{ strftime_now('\(format)') }}").render([:], options: options)
    }

    func testEveryDirectiveAsPython() throws {
        let cases: [(Double, Int, String)] = [
            (1_796_212_800.25, 0, "Wed|Wednesday|Dec|Dec|December|Wed Dec  2 12:00:00 2026|20|02|12/02/26| 2|250000|2026-12-02|26|2026|12|12|336|12|12|12|00|PM|pm|12:00:00 PM|12:00|00|12:00:00|3|48|49|3|48|12/02/26|12:00:00|26|2026|||%|2|12|WED|26|%Q"),
            (1_796_212_800, -36000, "Wed|Wednesday|Dec|Dec|December|Wed Dec  2 02:00:00 2026|20|02|12/02/26| 2|000000|2026-12-02|26|2026|02|02|336| 2| 2|12|00|AM|am|02:00:00 AM|02:00|00|02:00:00|3|48|49|3|48|12/02/26|02:00:00|26|2026|||%|2|12|WED|26|%Q"),
            (1_798_761_599, 0, "Thu|Thursday|Dec|Dec|December|Thu Dec 31 23:59:59 2026|20|31|12/31/26|31|000000|2026-12-31|26|2026|23|11|365|23|11|12|59|PM|pm|11:59:59 PM|23:59|59|23:59:59|4|52|53|4|52|12/31/26|23:59:59|26|2026|||%|31|12|THU|26|%Q"),
            (1_798_761_600, 50400, "Fri|Friday|Jan|Jan|January|Fri Jan  1 14:00:00 2027|20|01|01/01/27| 1|000000|2027-01-01|26|2026|14|02|001|14| 2|01|00|PM|pm|02:00:00 PM|14:00|00|14:00:00|5|00|53|5|00|01/01/27|14:00:00|27|2027|||%|1| 1|FRI|27|%Q"),
            (951_782_400, 0, "Tue|Tuesday|Feb|Feb|February|Tue Feb 29 00:00:00 2000|20|29|02/29/00|29|000000|2000-02-29|00|2000|00|12|060| 0|12|02|00|AM|am|12:00:00 AM|00:00|00|00:00:00|2|09|09|2|09|02/29/00|00:00:00|00|2000|||%|29| 2|TUE|00|%Q"),
            (1_609_459_200, 0, "Fri|Friday|Jan|Jan|January|Fri Jan  1 00:00:00 2021|20|01|01/01/21| 1|000000|2021-01-01|20|2020|00|12|001| 0|12|01|00|AM|am|12:00:00 AM|00:00|00|00:00:00|5|00|53|5|00|01/01/21|00:00:00|21|2021|||%|1| 1|FRI|21|%Q"),
            (0, 0, "Thu|Thursday|Jan|Jan|January|Thu Jan  1 00:00:00 1970|19|01|01/01/70| 1|000000|1970-01-01|70|1970|00|12|001| 0|12|01|00|AM|am|12:00:00 AM|00:00|00|00:00:00|4|00|01|4|00|01/01/70|00:00:00|70|1970|||%|1| 1|THU|70|%Q"),
            (1_104_537_599, 0, "Fri|Friday|Dec|Dec|December|Fri Dec 31 23:59:59 2004|20|31|12/31/04|31|000000|2004-12-31|04|2004|23|11|366|23|11|12|59|PM|pm|11:59:59 PM|23:59|59|23:59:59|5|52|53|5|52|12/31/04|23:59:59|04|2004|||%|31|12|FRI|04|%Q"),
        ]
        for (seconds, offset, expected) in cases {
            XCTAssertEqual(try render(Self.everything, at: seconds, offset: offset), expected, "\(seconds) \(offset)")
        }
    }

    func testTheTemplatesDatesAreWrittenInTheGivenTimeZone() throws {
        // 2026-12-02 23:30 UTC is already December 3 at UTC+14 and still December 2 at UTC-10.
        let late = 1_796_212_800.0 + 11.5 * 3600
        XCTAssertEqual(try render("%B %d, %Y", at: late), "December 02, 2026")             // granite-3.3
        XCTAssertEqual(try render("%d %b %Y", at: late, offset: 14 * 3600), "03 Dec 2026")  // llama-3.x
        XCTAssertEqual(try render("%d %B %Y", at: late, offset: -10 * 3600), "02 December 2026")
    }

    func testTheClockIsAskedAtEachCall() throws {
        let ticks = Ticks()
        let options = RenderOptions(now: { ticks.next() }, timeZone: TimeZone(secondsFromGMT: 0)!)
        XCTAssertEqual(try Template("{{ strftime_now('%H:%M:%S') }} {{ strftime_now('%H:%M:%S') }}").render([:], options: options),
                       "00:00:01 00:00:02")
    }

    func testTheDefaultIsTheCurrentTime() throws {
        let before = Date()
        let rendered = try Template("{{ strftime_now('%s') }}").render([:])
        let after = Date()
        let seconds = try XCTUnwrap(Double(rendered))
        XCTAssertTrue(before.timeIntervalSince1970.rounded(.down) <= seconds && seconds <= after.timeIntervalSince1970, rendered)
    }
}

private final class Ticks: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func next() -> Date {
        lock.lock()
        defer { lock.unlock() }
        count += 1
        return Date(timeIntervalSince1970: Double(count))
    }
}

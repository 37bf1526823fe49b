import Foundation

/// What a rendering reads from outside its variables: the moment and time zone `strftime_now` formats.
///
/// The default is what transformers does, `datetime.now()`: the current time, in the machine's local time zone.
/// Tests and anything that must render the same text on any day fix both:
///
/// ```swift
/// let fixed = RenderOptions(date: Date(timeIntervalSince1970: 1_796_212_800), timeZone: TimeZone(secondsFromGMT: 0)!)
/// try template.render(variables, options: fixed)   // strftime_now('%B %d, %Y') == "December 02, 2026"
/// ```
public struct RenderOptions: Sendable {
    /// The moment `strftime_now` formats, asked once per call.
    public var now: @Sendable () -> Date
    /// The time zone the moment is written in (`datetime.now()` is local time).
    public var timeZone: TimeZone

    public init(now: @escaping @Sendable () -> Date = { Date() }, timeZone: TimeZone = .current) {
        self.now = now
        self.timeZone = timeZone
    }

    /// A fixed moment, written in the given time zone.
    public init(date: Date, timeZone: TimeZone) {
        self.init(now: { date }, timeZone: timeZone)
    }
}

/// Python's `datetime.strftime` of a naive local datetime (what transformers' `strftime_now` returns) under the C
/// locale, as glibc writes it: English names, the POSIX `%c`/`%x`/`%X`, glibc's `-` `_` `0` `^` flags and the `E`/`O`
/// modifiers; `%z` and `%Z` are empty (a naive datetime has no zone) and `%f` is microseconds, as in Python. Unknown
/// directives are written as they are. The calendar arithmetic is done here (proleptic Gregorian, from the offset of
/// the given time zone), so nothing depends on the machine's locale or calendar settings.
enum Strftime {
    static let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                         "October", "November", "December"]

    /// A moment's wall-clock fields in one time zone.
    struct Fields {
        var year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0, microsecond = 0
        var weekday = 4       // 0 = Sunday
        var yearDay = 1       // 1 ... 366
        var epochSeconds = 0
    }

    static func isLeap(_ y: Int) -> Bool { y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) }

    static func fields(_ date: Date, in timeZone: TimeZone) -> Fields {
        let utc = date.timeIntervalSince1970
        let local = utc + Double(timeZone.secondsFromGMT(for: date))
        let whole = local.rounded(.down)
        var f = Fields()
        f.epochSeconds = Int(utc.rounded(.down))
        f.microsecond = min(999_999, max(0, Int(((local - whole) * 1_000_000).rounded(.down))))
        let seconds = Int(whole)
        var days = seconds / 86_400, rest = seconds % 86_400
        if rest < 0 { rest += 86_400; days -= 1 }
        f.hour = rest / 3600
        f.minute = rest % 3600 / 60
        f.second = rest % 60
        f.weekday = ((days + 4) % 7 + 7) % 7
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        f.day = doy - (153 * mp + 2) / 5 + 1
        f.month = mp < 10 ? mp + 3 : mp - 9
        f.year = yoe + era * 400 + (f.month <= 2 ? 1 : 0)
        let before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334]
        f.yearDay = before[f.month - 1] + f.day + (f.month > 2 && isLeap(f.year) ? 1 : 0)
        return f
    }

    /// The ISO 8601 week-based year and week number.
    static func isoWeek(_ f: Fields) -> (year: Int, week: Int) {
        func weeks(_ y: Int) -> Int {
            func p(_ y: Int) -> Int { (y + y / 4 - y / 100 + y / 400) % 7 }
            return p(y) == 4 || p(y - 1) == 3 ? 53 : 52
        }
        let monday0 = (f.weekday + 6) % 7
        let week = (f.yearDay - monday0 + 9) / 7
        if week < 1 { return (f.year - 1, weeks(f.year - 1)) }
        if week > weeks(f.year) { return (f.year + 1, 1) }
        return (f.year, week)
    }

    static func format(_ pattern: String, _ date: Date, in timeZone: TimeZone) -> String {
        format(pattern, fields(date, in: timeZone))
    }

    static func format(_ pattern: String, _ f: Fields) -> String {
        let chars = Array(pattern)
        var out = "", i = 0
        while i < chars.count {
            guard chars[i] == "%" else { out.append(chars[i]); i += 1; continue }
            var j = i + 1
            var flag: Character?
            if j < chars.count, "-_0^#".contains(chars[j]) { flag = chars[j]; j += 1 }
            if j + 1 < chars.count, chars[j] == "E" || chars[j] == "O" { j += 1 }
            if j < chars.count, let text = directive(chars[j], flag, f) {
                out += text
                i = j + 1
            } else {
                out.append("%")
                i += 1
            }
        }
        return out
    }

    static func directive(_ c: Character, _ flag: Character?, _ f: Fields) -> String? {
        func number(_ n: Int, _ width: Int, pad: Character = "0") -> String {
            let digits = String(n)
            let padding: Character? = flag == "-" ? nil : flag == "_" ? " " : flag == "0" ? "0" : pad
            guard let padding, digits.count < width else { return digits }
            return String(repeating: padding, count: width - digits.count) + digits
        }
        func text(_ s: String) -> String { flag == "^" ? s.uppercased() : s }
        let hour12 = f.hour % 12 == 0 ? 12 : f.hour % 12
        switch c {
        case "a": return text(String(weekdays[f.weekday].prefix(3)))
        case "A": return text(weekdays[f.weekday])
        case "b", "h": return text(String(months[f.month - 1].prefix(3)))
        case "B": return text(months[f.month - 1])
        case "c": return text(format("%a %b %e %H:%M:%S %Y", f))
        case "C": return number(f.year / 100, 2)
        case "d": return number(f.day, 2)
        case "D", "x": return format("%m/%d/%y", f)
        case "e": return number(f.day, 2, pad: " ")
        case "f": return number(f.microsecond, 6)
        case "F": return format("%Y-%m-%d", f)
        case "g": return number(isoWeek(f).year % 100, 2)
        case "G": return number(isoWeek(f).year, 1)
        case "H": return number(f.hour, 2)
        case "I": return number(hour12, 2)
        case "j": return number(f.yearDay, 3)
        case "k": return number(f.hour, 2, pad: " ")
        case "l": return number(hour12, 2, pad: " ")
        case "m": return number(f.month, 2)
        case "M": return number(f.minute, 2)
        case "n": return "\n"
        case "p": return f.hour < 12 ? "AM" : "PM"
        case "P": return f.hour < 12 ? "am" : "pm"
        case "r": return format("%I:%M:%S %p", f)
        case "R": return format("%H:%M", f)
        case "s": return String(f.epochSeconds)
        case "S": return number(f.second, 2)
        case "t": return "\t"
        case "T", "X": return format("%H:%M:%S", f)
        case "u": return number(f.weekday == 0 ? 7 : f.weekday, 1)
        case "U": return number((f.yearDay - 1 + 7 - f.weekday) / 7, 2)
        case "V": return number(isoWeek(f).week, 2)
        case "w": return number(f.weekday, 1)
        case "W": return number((f.yearDay - 1 + 7 - (f.weekday + 6) % 7) / 7, 2)
        case "y": return number(f.year % 100, 2)
        case "Y": return number(f.year, 1)
        case "z", "Z": return ""
        case "%": return "%"
        default: return nil
        }
    }
}

import Foundation

/// Where human-readable output goes. Progress and notes go to stderr so stdout stays clean for results.
enum Terminal {
    static let stderrIsTTY = isatty(2) != 0

    static func note(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func out(_ text: String, newline: Bool = true) {
        FileHandle.standardOutput.write(Data((newline ? text + "\n" : text).utf8))
    }

    /// Prints one JSON object (sorted keys) on stdout.
    /// Prints one JSON object; a value JSON cannot hold (NaN, infinity) is an error naming its field, never silence.
    static func json(_ object: [String: Any]) throws {
        if let field = nonFinite(object, path: "") {
            throw NonFiniteResult(what: field)
        }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        out(String(decoding: data, as: UTF8.self))
    }

    /// The path and value of the first non-finite number in a JSON-like value, or nil.
    private static func nonFinite(_ value: Any, path: String) -> String? {
        switch value {
        case let d as Double: return d.isFinite ? nil : "\(path) = \(d)"
        case let f as Float: return f.isFinite ? nil : "\(path) = \(f)"
        case let o as [String: Any]:
            for key in o.keys.sorted() { if let hit = nonFinite(o[key]!, path: path.isEmpty ? key : "\(path).\(key)") { return hit } }
            return nil
        case let a as [Any]:
            for (i, v) in a.enumerated() { if let hit = nonFinite(v, path: "\(path)[\(i)]") { return hit } }
            return nil
        default: return nil
        }
    }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }

    static func bytes(_ n: Int) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var v = Double(n), i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.2f %@", v, units[i])
    }
}

/// A one-line progress bar on a terminal (redrawn in place), or a plain line every ~10% otherwise.
final class ProgressBar {
    let total: Int
    let label: String
    private var lastPrinted = -1
    private let start = Date()

    init(total: Int, label: String) {
        self.total = max(1, total)
        self.label = label
    }

    func update(_ done: Int, detail: String = "") {
        let elapsed = Date().timeIntervalSince(start)
        let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : .nan
        if Terminal.stderrIsTTY {
            let width = 24
            let filled = min(width, width * done / total)
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
            let line = "\r\(label) \(bar) \(done)/\(total) \(detail) ETA \(Terminal.duration(eta))\u{1B}[K"
            FileHandle.standardError.write(Data(line.utf8))
            if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
        } else {
            let decile = done * 10 / total
            if decile != lastPrinted || done == total {
                lastPrinted = decile
                Terminal.note("\(label) \(done)/\(total) \(detail) elapsed \(Terminal.duration(elapsed)) ETA \(Terminal.duration(eta))")
            }
        }
    }

    /// Ends a bar that stops early (Ctrl-C) so the next output starts on a fresh line.
    func finishLine() {
        if Terminal.stderrIsTTY { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

/// Ctrl-C: the first press asks long jobs to stop at the next safe point; the second exits at once.
enum Interrupt {
    nonisolated(unsafe) static var requested = false

    static func install() {
        signal(SIGINT) { _ in
            if Interrupt.requested { _exit(130) }
            Interrupt.requested = true
            let msg = "\n^C: stopping at the next safe point (press Ctrl-C again to quit now)\n"
            _ = msg.withCString { write(2, $0, strlen($0)) }
        }
    }
}

/// A result that came out NaN or infinite: an error with a non-zero exit, never a silent or misleading output.
struct NonFiniteResult: Error, CustomStringConvertible {
    let what: String
    var description: String {
        "\(what) is not a finite number: the model, the adapter or the data produce non-finite values (check the adapter's weights and the model's dtype)"
    }
}

/// OpenAI's `stop` strings over streamed text: text is released as soon as it can no longer be the start of a stop
/// string; when one appears, the text before it is the last released and generation ends (the stop string itself
/// is never returned, as in OpenAI and vLLM).
struct StopMatcher {
    let stops: [String]
    /// Generated text not yet released.
    private var held = ""

    init(stops: [String]) { self.stops = stops.filter { !$0.isEmpty } }

    /// Adds `piece`; returns the text that may be released and whether a stop string was reached.
    mutating func feed(_ piece: String) -> (text: String, stopped: Bool) {
        held += piece
        guard !stops.isEmpty else { defer { held = "" }; return (held, false) }
        // The earliest stop string wins.
        var first: String.Index?
        for s in stops {
            if let r = held.range(of: s), first.map({ r.lowerBound < $0 }) ?? true { first = r.lowerBound }
        }
        if let first {
            let text = String(held[..<first])
            held = ""
            return (text, true)
        }
        return (Self.release(&held, keepingStartsOf: stops), false)
    }

    /// Takes from `text` and returns all of it but its longest tail that could begin one of `markers` (a marker
    /// split across pieces); the tail stays in `text`.
    static func release(_ text: inout String, keepingStartsOf markers: [String]) -> String {
        var keep = 0
        for marker in markers {
            var n = min(marker.count, text.count + 1) - 1
            while n > keep {
                if text.hasSuffix(marker.prefix(n)) { keep = n; break }
                n -= 1
            }
        }
        let cut = text.index(text.endIndex, offsetBy: -keep)
        defer { text = String(text[cut...]) }
        return String(text[..<cut])
    }

    /// Whatever is held back (generation ended for another reason).
    mutating func flush() -> String {
        defer { held = "" }
        return held
    }
}

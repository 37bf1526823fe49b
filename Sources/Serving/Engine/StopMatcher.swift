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
        // Keep the longest tail that is the beginning of some stop string.
        var keep = 0
        for s in stops {
            var n = min(s.count, held.count) - 1
            while n > keep {
                if held.hasSuffix(s.prefix(n)) { keep = n; break }
                n -= 1
            }
        }
        let cut = held.index(held.endIndex, offsetBy: -keep)
        let text = String(held[..<cut])
        held = String(held[cut...])
        return (text, false)
    }

    /// Whatever is held back (generation ended for another reason).
    mutating func flush() -> String {
        defer { held = "" }
        return held
    }
}

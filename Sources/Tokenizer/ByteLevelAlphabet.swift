/// GPT-2's reversible mapping between the 256 byte values and printable Unicode characters, used by every
/// byte-level BPE vocabulary (GPT-2, Qwen, Llama-3): printable Latin-1 bytes map to themselves, the other
/// 68 bytes to U+0100...U+0143 in order (so the space 0x20 is "Ġ" and the newline 0x0A is "Ċ").
/// ```swift
/// ByteLevelAlphabet.token(fromBytes: Array(" hi".utf8))   // "Ġhi"
/// ByteLevelAlphabet.bytes(fromToken: "Ġhi")               // [0x20, 0x68, 0x69]
/// ```
enum ByteLevelAlphabet {
    /// `scalars[b]` is the character standing for byte `b`.
    static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
            if printable {
                table[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                table[byte] = Unicode.Scalar(next) ?? "\0"
                next += 1
            }
        }
        return table
    }()

    /// `bytesByScalar[u]` is the byte that scalar `u` stands for, or -1; covers U+0000...U+0143.
    private static let bytesByScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, scalar) in scalars.enumerated() { table[Int(scalar.value)] = Int16(byte) }
        return table
    }()

    /// The byte-level spelling of raw bytes.
    static func token(fromBytes bytes: some Sequence<UInt8>) -> String {
        var text = String.UnicodeScalarView()
        for byte in bytes { text.append(scalars[Int(byte)]) }
        return String(text)
    }

    /// The raw bytes of a byte-level token, or nil when a character is outside the alphabet.
    static func bytes(fromToken token: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        return appendBytes(fromToken: token, to: &bytes) ? bytes : nil
    }

    /// Appends the raw bytes of a byte-level token; false (with `bytes` partly extended) when a character is
    /// outside the alphabet. Reads UTF-8 directly (the alphabet is U+0021...U+0143: one or two bytes each),
    /// so hot loops over 300k merges stay cheap.
    static func appendBytes(fromToken token: some StringProtocol, to bytes: inout [UInt8]) -> Bool {
        var utf8 = token.utf8.makeIterator()
        while let lead = utf8.next() {
            let scalar: Int
            if lead < 0x80 {
                scalar = Int(lead)
            } else if (0xC2...0xC5).contains(lead), let trail = utf8.next(), trail & 0xC0 == 0x80 {
                scalar = Int(lead & 0x1F) << 6 | Int(trail & 0x3F)
            } else {
                return false
            }
            guard scalar < 0x144, bytesByScalar[scalar] >= 0 else { return false }
            bytes.append(UInt8(bytesByScalar[scalar]))
        }
        return true
    }
}

/// Raw bytes as a dictionary key.
///
/// Token strings and words are compared byte for byte, as Rust does: Swift's `String` equality would treat
/// canonically equivalent spellings ("é" and "e\u{301}") as the same token, and hashes non-ASCII text slowly.
/// ```swift
/// let ids: [ByteKey: TokenID] = [ByteKey("hi"): 5]
/// ```
struct ByteKey: Hashable, Sendable {
    let bytes: [UInt8]

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = Array(bytes)
    }

    init(_ text: String) {
        self.bytes = Array(text.utf8)
    }

    func hash(into hasher: inout Hasher) {
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    static func == (lhs: ByteKey, rhs: ByteKey) -> Bool {
        lhs.bytes == rhs.bytes
    }
}

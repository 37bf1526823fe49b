/// The merge rules of a BPE vocabulary: for an adjacent pair of ids, its rank (lower merges first) and the
/// id of the merged token. Keys and values are packed into `UInt64`s to keep 300k rules compact and fast.
/// ```swift
/// var table = BPEMergeTable()
/// table.insert(left: 5, right: 9, rank: 0, result: 300)
/// table.lookup(left: 5, right: 9)   // (rank: 0, result: 300)
/// ```
struct BPEMergeTable: Sendable {
    private var rules: [UInt64: UInt64] = [:]

    init(capacity: Int = 0) {
        rules.reserveCapacity(capacity)
    }

    var count: Int { rules.count }

    /// Adds a rule; a later rule for the same pair replaces the earlier one (as Hugging Face's map does).
    mutating func insert(left: TokenID, right: TokenID, rank: Int, result: TokenID) {
        rules[Self.key(left, right)] = UInt64(UInt32(truncatingIfNeeded: rank)) << 32 | UInt64(UInt32(bitPattern: result))
    }

    @inline(__always)
    func lookup(left: TokenID, right: TokenID) -> (rank: UInt32, result: TokenID)? {
        guard let packed = rules[Self.key(left, right)] else { return nil }
        return (UInt32(truncatingIfNeeded: packed >> 32), TokenID(bitPattern: UInt32(truncatingIfNeeded: packed)))
    }

    @inline(__always)
    private static func key(_ left: TokenID, _ right: TokenID) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }
}

/// Several sequences packed back to back into one set of rows (no padding). Attention never crosses a
/// sequence boundary, so this computes exactly what a right-padded batch with a causal + padding mask does,
/// without spending work on padding.
///
/// ```swift
/// let batch = PackedBatch(sequences: [[1, 2, 3], [4, 5]])   // 5 rows, positions [0,1,2,0,1]
/// ```
public struct PackedBatch: Sendable {
    /// Token ids of all rows [N].
    public var tokens: [Int32]
    /// Position id of every row [N] (0-based within its sequence).
    public var positions: [Int32]
    /// First row of each sequence.
    public var starts: [Int]
    /// Row count of each sequence.
    public var lengths: [Int]

    /// - Parameter firstPosition: position of every sequence's first row (rows in front of it live in the cache).
    public init(sequences: [[Int32]], firstPosition: Int = 0) {
        tokens = []
        positions = []
        starts = []
        lengths = []
        for s in sequences {
            starts.append(tokens.count)
            lengths.append(s.count)
            tokens.append(contentsOf: s)
            positions.append(contentsOf: (0..<s.count).map { Int32(firstPosition + $0) })
        }
    }

    public var rowCount: Int { tokens.count }
    public var longest: Int { lengths.max() ?? 0 }
}

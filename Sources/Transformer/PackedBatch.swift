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
    /// Per sequence: nil, or the earlier sequence whose first rows it continues (tree packing: the rejected answer of
    /// a preference pair shares its chosen twin's prompt). Such a sequence holds only its own rows, at positions
    /// `rows`..., and its keys are that sequence's first `rows` rows followed by its own.
    public var sharedPrefix: [SharedPrefix?]

    public struct SharedPrefix: Sendable, Equatable {
        public var sequence: Int
        public var rows: Int
        public init(sequence: Int, rows: Int) { (self.sequence, self.rows) = (sequence, rows) }
    }

    /// - Parameter firstPosition: position of every sequence's first row (rows in front of it live in the cache).
    public init(sequences: [[Int32]], firstPosition: Int = 0) {
        tokens = []
        positions = []
        starts = []
        lengths = []
        sharedPrefix = Array(repeating: nil, count: sequences.count)
        for s in sequences {
            starts.append(tokens.count)
            lengths.append(s.count)
            tokens.append(contentsOf: s)
            positions.append(contentsOf: (0..<s.count).map { Int32(firstPosition + $0) })
        }
    }

    /// Whole sequences, some of which continue an earlier one: `sharing[i]` names an earlier sequence whose first
    /// `rows` tokens sequence i repeats; those rows are packed once (sequence i keeps the rest, at positions `rows`...).
    public init(sequences: [[Int32]], sharing: [SharedPrefix?]) {
        precondition(sharing.count == sequences.count, "one sharing entry per sequence")
        self.init(sequences: [])
        sharedPrefix = sharing
        for (i, s) in sequences.enumerated() {
            let skip = sharing[i]?.rows ?? 0
            if let p = sharing[i] {
                precondition(p.sequence < i && sharing[p.sequence] == nil && p.rows > 0 && p.rows < s.count
                             && p.rows <= sequences[p.sequence].count && s[..<p.rows] == sequences[p.sequence][..<p.rows],
                             "a shared prefix repeats the first rows of an earlier sequence that shares none itself")
            }
            starts.append(tokens.count)
            lengths.append(s.count - skip)
            tokens.append(contentsOf: s[skip...])
            positions.append(contentsOf: (skip..<s.count).map { Int32($0) })
        }
    }

    /// Whether some sequence continues another's rows.
    public var isTree: Bool { sharedPrefix.contains { $0 != nil } }

    /// Every sequence's whole length, the rows it shares included (what activation buffers are planned for).
    public var fullLengths: [Int] { zip(lengths, sharedPrefix).map { $0 + ($1?.rows ?? 0) } }

    public var rowCount: Int { tokens.count }
    /// The longest sequence, counting the rows a tree-packed sequence shares (its keys and positions reach that far).
    public var longest: Int { fullLengths.max() ?? 0 }
}

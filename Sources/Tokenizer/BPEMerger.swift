/// Applies BPE merges to one word: repeatedly merge the adjacent pair with the lowest rank, the leftmost
/// one on ties, until no pair has a rule. This is Hugging Face's `Word::merge_all` and tiktoken's
/// `byte_pair_merge`. Symbols live in a linked list and candidate pairs in a binary min-heap, so a word of
/// n symbols costs O(n log n) (long Chinese pre-tokens stay fast).
/// ```swift
/// BPEMerger.merge([h, e, l, l, o], using: table)   // e.g. [hel, lo]
/// ```
enum BPEMerger {
    /// A candidate merge of the symbol at `left` with the one at `right` (list positions).
    private struct Candidate {
        /// rank << 32 | left: the heap order (lowest rank, then leftmost).
        let order: UInt64
        let right: Int32
        let leftID: TokenID
        let rightID: TokenID
        let result: TokenID

        var left: Int { Int(order & 0xFFFF_FFFF) }
    }

    static func merge(_ symbols: [TokenID], using table: BPEMergeTable) -> [TokenID] {
        let count = symbols.count
        guard count > 1 else { return symbols }
        var ids = symbols  // ids[i] == -1 once symbol i has been merged into its left neighbour
        var next = [Int32](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = Int32(i + 1) }
            buffer[count - 1] = -1
            initialized = count
        }
        var previous = [Int32](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = Int32(i - 1) }
            initialized = count
        }
        var heap: [Candidate] = []
        heap.reserveCapacity(count)

        func consider(_ left: Int, _ right: Int) {
            guard let rule = table.lookup(left: ids[left], right: ids[right]) else { return }
            push(Candidate(order: UInt64(rule.rank) << 32 | UInt64(left), right: Int32(right),
                           leftID: ids[left], rightID: ids[right], result: rule.result), onto: &heap)
        }

        for i in 0..<(count - 1) { consider(i, i + 1) }
        while let candidate = pop(&heap) {
            let left = candidate.left
            let right = Int(candidate.right)
            // Skip candidates made stale by an earlier merge.
            guard ids[left] == candidate.leftID, next[left] == candidate.right, ids[right] == candidate.rightID else {
                continue
            }
            ids[left] = candidate.result
            ids[right] = -1
            let after = next[right]
            next[left] = after
            if after >= 0 { previous[Int(after)] = Int32(left) }
            let before = previous[left]
            if before >= 0 { consider(Int(before), left) }
            if after >= 0 { consider(left, Int(after)) }
        }

        var merged: [TokenID] = []
        var position: Int32 = 0
        while position >= 0 {
            merged.append(ids[Int(position)])
            position = next[Int(position)]
        }
        return merged
    }

    private static func push(_ candidate: Candidate, onto heap: inout [Candidate]) {
        heap.append(candidate)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].order < heap[parent].order else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private static func pop(_ heap: inout [Candidate]) -> Candidate? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        guard !heap.isEmpty else { return top }
        heap[0] = last
        var parent = 0
        while true {
            let leftChild = 2 * parent + 1
            guard leftChild < heap.count else { break }
            let rightChild = leftChild + 1
            let smaller = rightChild < heap.count && heap[rightChild].order < heap[leftChild].order ? rightChild : leftChild
            guard heap[smaller].order < heap[parent].order else { break }
            heap.swapAt(smaller, parent)
            parent = smaller
        }
        return top
    }
}

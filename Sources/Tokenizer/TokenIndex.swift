/// Token spellings (byte strings) stored end to end, with an open-addressing hash index from spelling to id.
///
/// Lookups hash the bytes where they lie, so neither loading 300k merges nor encoding a word allocates.
/// ```swift
/// var index = TokenIndex(expectedCount: 2)
/// index.insert(Array("hi".utf8)[...], id: 7)
/// index.id(of: Array("hi".utf8)[...])   // 7
/// ```
struct TokenIndex: Sendable {
    private var storage: [UInt8] = []
    /// `bounds[2 * id]` and `bounds[2 * id + 1]`: the spelling of `id` in `storage` (-1 when unused).
    private var bounds: [Int32] = []
    /// By hash slot: the upper 32 bits of the spelling's hash, then id + 1 (0 for an empty slot).
    /// The stored hash bits reject most non-matching slots without touching the spellings.
    /// The table is kept at most half full.
    private var slots: [UInt64]
    private(set) var count = 0

    init(expectedCount: Int) {
        var capacity = 16
        while capacity < expectedCount * 2 { capacity *= 2 }
        slots = [UInt64](repeating: 0, count: capacity)
        storage.reserveCapacity(expectedCount * 6)
        bounds.reserveCapacity(expectedCount * 2)
    }

    /// Adds a spelling; returns false (and changes nothing) when the spelling is already present.
    @discardableResult
    mutating func insert(_ bytes: ArraySlice<UInt8>, id: TokenID) -> Bool {
        guard self.id(of: bytes) == nil else { return false }
        if (count + 1) * 2 > slots.count { grow() }
        let needed = 2 * (Int(id) + 1)
        if bounds.count < needed { bounds += repeatElement(-1, count: needed - bounds.count) }
        bounds[2 * Int(id)] = Int32(storage.count)
        storage += bytes
        bounds[2 * Int(id) + 1] = Int32(storage.count)
        place(id)
        count += 1
        return true
    }

    /// The id spelled by `bytes`, or nil.
    @inline(__always)
    func id(of bytes: ArraySlice<UInt8>) -> TokenID? {
        bytes.withUnsafeBufferPointer { id(of: $0) }
    }

    func id(of bytes: UnsafeBufferPointer<UInt8>) -> TokenID? {
        let hash = Self.hash(bytes)
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        return slots.withUnsafeBufferPointer { slots in
            bounds.withUnsafeBufferPointer { bounds in
                storage.withUnsafeBufferPointer { storage in
                    while true {
                        let entry = slots[slot]
                        if entry == 0 { return nil }
                        if entry >> 32 == hash >> 32 {
                            let candidate = TokenID(truncatingIfNeeded: entry & 0xFFFF_FFFF) - 1
                            let start = Int(bounds[2 * Int(candidate)])
                            if Int(bounds[2 * Int(candidate) + 1]) - start == bytes.count,
                               Self.equal(storage, from: start, bytes) { return candidate }
                        }
                        slot = (slot + 1) & mask
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func equal(_ storage: UnsafeBufferPointer<UInt8>, from start: Int,
                              _ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        for offset in 0..<bytes.count where storage[start + offset] != bytes[offset] { return false }
        return true
    }

    /// The spelling of `id` (empty when unused).
    func spelling(of id: TokenID) -> ArraySlice<UInt8> {
        let index = 2 * Int(id)
        guard id >= 0, index + 1 < bounds.count, bounds[index] >= 0 else { return [] }
        return storage[Int(bounds[index])..<Int(bounds[index + 1])]
    }

    private mutating func place(_ id: TokenID) {
        let hash = spelling(of: id).withUnsafeBufferPointer { Self.hash($0) }
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] != 0 { slot = (slot + 1) & mask }
        slots[slot] = hash & 0xFFFF_FFFF_0000_0000 | UInt64(UInt32(id) + 1)
    }

    private mutating func grow() {
        let ids = slots.compactMap { $0 == 0 ? nil : TokenID(truncatingIfNeeded: $0 & 0xFFFF_FFFF) - 1 }
        slots = [UInt64](repeating: 0, count: slots.count * 2)
        for id in ids { place(id) }
    }

    /// FNV-1a with a final avalanche; spellings are short, so this beats SipHash here.
    @inline(__always)
    private static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        hash ^= hash >> 33
        hash = hash &* 0xFF51_AFD7_ED55_8CCD
        return hash ^ (hash >> 33)
    }
}

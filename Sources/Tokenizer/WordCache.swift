import Foundation

/// A bounded, thread-safe memo of word -> ids, so repeated words skip BPE. When full it is simply cleared
/// (cheap and good enough: frequent words come back at once).
/// ```swift
/// let cache = WordCache(capacity: 50_000)
/// cache.insert(ids, for: key); cache.ids(for: key)
/// ```
final class WordCache: @unchecked Sendable {  // all state is behind `lock`
    /// Words longer than this are not cached (they rarely repeat).
    static let maximumWordLength = 256

    private let lock = NSLock()
    private var entries: [ByteKey: [TokenID]] = [:]
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    func ids(for word: ByteKey) -> [TokenID]? {
        lock.lock()
        defer { lock.unlock() }
        return entries[word]
    }

    func insert(_ ids: [TokenID], for word: ByteKey) {
        lock.lock()
        defer { lock.unlock() }
        if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
        entries[word] = ids
    }
}

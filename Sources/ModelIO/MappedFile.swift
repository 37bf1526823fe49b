import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory mapping of a whole file. Weights are used straight from the mapping when their
/// stored dtype is the compute dtype, so a bf16 checkpoint costs no extra memory.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let base: UnsafeRawPointer
    public let size: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw ModelIOError.notFound(path: path, what: "file") }
            throw ModelIOError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ModelIOError.unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ModelIOError.unreadable(path: path, reason: "not a regular file")
        }
        size = Int(st.st_size)
        if size == 0 {
            base = UnsafeRawPointer(UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 64))
            isMapped = false
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw ModelIOError.unreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(p)
        isMapped = true
    }

    private let isMapped: Bool

    /// Reads the whole mapping once (one byte per page, two threads) so later passes never stall on page faults;
    /// weights used straight from the mapping are touched at load time instead of during the first forward.
    public func prefault() {
        guard isMapped else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), size, MADV_WILLNEED)
        let page = 4096, pages = (size + page - 1) / page
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let half = pages / 2
        DispatchQueue.concurrentPerform(iterations: 2) { part in
            var sum: UInt8 = 0
            for p in (part == 0 ? 0..<half : half..<pages) { sum &+= bytes[p * page] }
            if sum == 0xFF { prefaultSink = sum }
        }
    }

    /// Drops the pages of [pointer, pointer + count) from memory (they are read again from the file if touched):
    /// used after a tensor has been converted into another format, so the source no longer counts in RSS.
    public func release(_ pointer: UnsafeRawPointer, count: Int) {
        guard isMapped, count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: pointer) + page - 1) / page * page
        let end = (Int(bitPattern: pointer) + count) / page * page
        guard end > start, let p = UnsafeMutableRawPointer(bitPattern: start) else { return }
        _ = madvise(p, end - start, MADV_DONTNEED)
    }

    deinit {
        if isMapped { munmap(UnsafeMutableRawPointer(mutating: base), size) } else { base.deallocate() }
    }
}

/// Keeps the prefault loop from being optimised away.
nonisolated(unsafe) var prefaultSink: UInt8 = 0

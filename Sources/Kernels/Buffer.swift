import Foundation

/// An owned, 64-byte aligned, zero-initialised block of elements: the one allocation type of the engine.
/// Parameters, activations and gradients live in `FloatBuffer`s; bf16 / f16 bit patterns in `HalfBuffer`s.
///
/// ```swift
/// let x = FloatBuffer(count: rows * cols)   // [rows, cols]
/// x[0] = 1
/// ```
public final class AlignedBuffer<Element: Numeric & Sendable>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Element>
    public let count: Int
    /// Set for a view into another allocation (which it keeps alive); a view frees nothing.
    private let owner: AnyObject?

    public init(count: Int) {
        self.count = count
        owner = nil
        let bytes = max(count, 1) * MemoryLayout<Element>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        pointer = raw.bindMemory(to: Element.self, capacity: max(count, 1))
    }

    public convenience init(_ values: [Element]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    /// A view of `count` elements at `pointer` inside memory that `owner` keeps alive (for example a slice of a
    /// flat parameter buffer that a model tensor aliases).
    public init(viewing pointer: UnsafeMutablePointer<Element>, count: Int, owner: AnyObject) {
        self.pointer = pointer
        self.count = count
        self.owner = owner
    }

    deinit { if owner == nil { UnsafeMutableRawPointer(pointer).deallocate() } }

    @inlinable
    public subscript(index: Int) -> Element {
        get { pointer[index] }
        set { pointer[index] = newValue }
    }

    public var array: [Element] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from other: UnsafePointer<Element>, count n: Int) { pointer.update(from: other, count: n) }
}

public typealias FloatBuffer = AlignedBuffer<Float>

/// bf16 or f16 bit patterns.
public typealias HalfBuffer = AlignedBuffer<UInt16>

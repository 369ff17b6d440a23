import Glibc

/// An owned, 64-byte aligned, zero-initialised array of floats.
///
/// Aligned so that SIMD loads never straddle cache lines; a class so that layers can hold
/// workspaces by reference without copy-on-write checks in the hot loop.
public final class Buffer {
    public let count: Int
    public let ptr: UnsafeMutablePointer<Float>

    public init(_ count: Int) throws(SDLSTMError) {
        precondition(count >= 0)
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else {
            throw .outOfMemory("could not allocate \(bytes) bytes")
        }
        memset(raw, 0, bytes)
        self.count = count
        self.ptr = raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    public convenience init(_ values: [Float]) throws(SDLSTMError) {
        try self.init(values.count)
        for i in 0..<values.count { ptr[i] = values[i] }
    }

    deinit { free(ptr) }

    public subscript(i: Int) -> Float {
        get { ptr[i] }
        set { ptr[i] = newValue }
    }

    public func zero() { memset(ptr, 0, count * MemoryLayout<Float>.stride) }

    public func copy(from other: Buffer) {
        precondition(other.count == count)
        memcpy(ptr, other.ptr, count * MemoryLayout<Float>.stride)
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: ptr, count: count)) }
}

/// An owned array of Int32 indices (token ids, kept-unit lists).
public final class IndexBuffer {
    public let count: Int
    public let ptr: UnsafeMutablePointer<Int32>

    public init(_ count: Int) throws(SDLSTMError) {
        guard let p = calloc(max(count, 1), MemoryLayout<Int32>.stride) else {
            throw .outOfMemory("could not allocate \(count) indices")
        }
        self.count = count
        self.ptr = p.bindMemory(to: Int32.self, capacity: max(count, 1))
    }

    deinit { free(ptr) }
}


/// a ← count copies of value, in a's storage once it is large enough (no allocation per step).
func refill<T>(_ a: inout [T], _ value: T, count: Int) {
    a.removeAll(keepingCapacity: true)
    a.append(contentsOf: repeatElement(value, count: count))
}

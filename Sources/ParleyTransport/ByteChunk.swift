/// An immutable, reference-counted run of bytes with a stable address, so that one
/// encoded frame can sit in many connections' outbound queues and go out through
/// `writev` without a copy per recipient.
public final class ByteChunk {
    public let base: UnsafeMutableRawPointer
    public let count: Int

    public init(copying bytes: UnsafeRawBufferPointer) {
        count = bytes.count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 8)
        if count > 0, let src = bytes.baseAddress { base.copyMemory(from: src, byteCount: count) }
    }

    public convenience init(_ bytes: [UInt8]) {
        self.init(count: bytes.count) { dst in
            bytes.withUnsafeBytes { src in if src.count > 0 { dst.copyMemory(from: src) } }
        }
    }

    /// Builds a chunk of `count` bytes filled by `body`.
    public init(count: Int, _ body: (UnsafeMutableRawBufferPointer) -> Void) {
        self.count = count
        base = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 8)
        body(UnsafeMutableRawBufferPointer(start: base, count: count))
    }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    deinit { base.deallocate() }
}

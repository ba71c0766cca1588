import CZlib

// Raw-deflate streams for permessage-deflate (RFC 7692 §7.2). Depends on zlib only, so the inflate
// path is fuzzed on its own (scripts/fuzz.sh).

/// The 4 bytes a sync flush ends with: removed by the sender, put back by the receiver (§7.2.1-2).
let deflateTail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

/// A z_stream at a stable address (zlib keeps a back-pointer to it), set up by `start`; nil, and
/// nothing left allocated, if zlib refuses the parameters.
private func makeStream(_ start: (z_streamp) -> Int32) -> z_streamp? {
    let s = z_streamp.allocate(capacity: 1)
    s.initialize(to: z_stream())
    guard start(s) == Z_OK else {
        s.deinitialize(count: 1)
        s.deallocate()
        return nil
    }
    return s
}

private func freeStream(_ s: z_streamp, _ end: (z_streamp) -> Int32) {
    _ = end(s)
    s.deinitialize(count: 1)
    s.deallocate()
}

/// One raw deflate stream. Each message is compressed whole and the stream reset after it
/// (no context takeover), so the output depends on the message alone and can be shared.
public final class Deflater {
    private let stream: z_streamp
    public let windowBits: Int

    /// Nil if zlib refuses the parameters (notably windowBits 8 for raw deflate).
    public init?(windowBits: Int, level: Int = 1, memLevel: Int = 8) {
        guard let s = makeStream({ parley_deflateInit2($0, Int32(level), -Int32(windowBits), Int32(memLevel)) }) else { return nil }
        stream = s
        self.windowBits = windowBits
    }

    deinit { freeStream(stream, deflateEnd) }

    /// Room `compress` needs for `n` input bytes.
    public func bound(_ n: Int) -> Int { Int(deflateBound(stream, uLong(n))) + 16 }

    /// Compresses one whole message into `out` (at least `bound(input.count)` bytes) and returns the
    /// length without the sync-flush tail.
    public func compress(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer, capacity: Int) -> Int {
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(input.count)
        stream.pointee.next_out = out.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(capacity)
        let r = deflate(stream, Z_SYNC_FLUSH)
        precondition((r == Z_OK || r == Z_BUF_ERROR) && stream.pointee.avail_in == 0 && stream.pointee.avail_out > 0,
                     "deflate output larger than its bound")
        var n = capacity - Int(stream.pointee.avail_out)
        if n >= 4, out.loadUnaligned(fromByteOffset: n - 4, as: UInt32.self) == UInt32(bigEndian: 0x0000_FFFF) { n -= 4 }
        deflateReset(stream)
        return n
    }
}

/// One raw inflate stream with a hard cap on the output of a message.
public final class Inflater {
    private let stream: z_streamp
    public let windowBits: Int

    public enum Outcome: Equatable {
        case ok(Int)
        /// More than `cap` bytes would come out: a decompression bomb or just too big (1009).
        case tooBig
        /// Not valid deflate data (1007).
        case corrupt
    }

    public init?(windowBits: Int) {
        guard let s = makeStream({ parley_inflateInit2($0, -Int32(windowBits)) }) else { return nil }
        stream = s
        self.windowBits = windowBits
    }

    deinit { freeStream(stream, inflateEnd) }

    /// Inflates one whole message (its frames' payloads joined) into `out`, which must have room
    /// for `cap + 1` bytes: output past `cap` is how a bomb is seen, and it stops there.
    /// `keepContext`: the peer may refer back to earlier messages (context takeover).
    public func inflate(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer, cap: Int, keepContext: Bool) -> Outcome {
        let room = cap + 1
        stream.pointee.next_out = out.assumingMemoryBound(to: Bytef.self)
        stream.pointee.avail_out = uInt(room)
        var outcome = Outcome.ok(0)
        var ended = false
        deflateTail.withUnsafeBytes { tail in
            for part in [input, tail] where !ended {
                stream.pointee.next_in = UnsafeMutablePointer(mutating: part.baseAddress?.assumingMemoryBound(to: Bytef.self))
                stream.pointee.avail_in = uInt(part.count)
                while stream.pointee.avail_in > 0 {
                    let r = CZlib.inflate(stream, Z_SYNC_FLUSH)
                    if r == Z_STREAM_END { ended = true; break }  // a final block: whatever follows is ignored
                    if stream.pointee.avail_out == 0 { outcome = .tooBig; return }
                    if r == Z_BUF_ERROR { break }  // needs more input than there is
                    if r != Z_OK { outcome = .corrupt; return }
                }
            }
            let produced = room - Int(stream.pointee.avail_out)
            outcome = produced > cap ? .tooBig : .ok(produced)
        }
        stream.pointee.next_in = nil
        stream.pointee.next_out = nil
        let failed: Bool
        if case .ok = outcome { failed = false } else { failed = true }
        if !keepContext || ended || failed { inflateReset(stream) }
        return outcome
    }
}

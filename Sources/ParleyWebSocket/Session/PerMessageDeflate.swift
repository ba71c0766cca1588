import Atomics
import ParleyTransport
import ParleyUTF8

/// A loop's compression state: one compressor per window size (almost always just one, ~268 KB at
/// 15 bits), inflaters shared by the connections whose peer resets its context after each message,
/// and the output scratch. Loop-confined; lives as long as the loop.
final class DeflateLoopState {
    private var deflaters: [Int: Deflater] = [:]
    private var failedDeflaters: Set<Int> = []
    private var inflaters: [Int: Inflater] = [:]
    private(set) var out: UnsafeMutableRawPointer
    private var outCapacity = 16 * 1024
    private(set) var inflated: UnsafeMutableRawPointer
    private var inflatedCapacity = 0

    init() {
        out = .allocate(byteCount: outCapacity, alignment: 16)
        inflated = .allocate(byteCount: 1, alignment: 16)
    }

    static func on(_ loop: Loop) -> DeflateLoopState { loop.local(DeflateLoopState.self) { DeflateLoopState() } }

    /// Nil when zlib cannot compress with that window (8 bits): such a peer gets plain messages.
    func deflater(bits: Int, level: Int) -> Deflater? {
        let key = bits << 4 | level
        if let d = deflaters[key] { return d }
        if failedDeflaters.contains(key) { return nil }
        guard let d = Deflater(windowBits: bits, level: level) else { failedDeflaters.insert(key); return nil }
        deflaters[key] = d
        return d
    }

    func sharedInflater(bits: Int) -> Inflater? {
        if let i = inflaters[bits] { return i }
        let i = Inflater(windowBits: bits)
        inflaters[bits] = i
        return i
    }

    func outBuffer(_ n: Int) -> UnsafeMutableRawPointer {
        if n > outCapacity {
            out.deallocate()
            outCapacity = max(n, outCapacity * 2)
            out = .allocate(byteCount: outCapacity, alignment: 16)
        } else if outCapacity > 1 << 20, n <= 16 * 1024 {
            out.deallocate()  // one huge message must not pin memory
            outCapacity = 16 * 1024
            out = .allocate(byteCount: outCapacity, alignment: 16)
        }
        return out
    }

    func inflateBuffer(_ n: Int) -> UnsafeMutableRawPointer {
        if n > inflatedCapacity {
            inflated.deallocate()
            inflatedCapacity = n
            inflated = .allocate(byteCount: n, alignment: 16)
        }
        return inflated
    }
}

/// permessage-deflate for one connection, either side: compress what this end sends (with the
/// loop's shared compressor, reset after each message) and inflate what the peer sends (with the
/// loop's shared inflater when the peer resets its context, else with one of its own, made on the
/// first compressed message).
public struct PerMessageDeflate {
    public let parameters: DeflateParameters
    let sendBits: Int
    let receiveBits: Int
    let peerResets: Bool
    let minCompressBytes: Int
    let level: Int
    unowned(unsafe) let state: DeflateLoopState
    private var own: Inflater?

    public init(_ p: DeflateParameters, isServer: Bool, loop: Loop, policy: DeflatePolicy) {
        parameters = p
        sendBits = isServer ? p.serverMaxWindowBits : p.clientMaxWindowBits
        // A larger inflate window than the peer's always decodes it; 9 covers peers whose zlib
        // quietly turns a window of 8 into 9.
        receiveBits = max(9, isServer ? p.clientMaxWindowBits : p.serverMaxWindowBits)
        peerResets = isServer ? p.clientNoContextTakeover : p.serverNoContextTakeover
        minCompressBytes = policy.minCompressBytes
        level = policy.level
        state = DeflateLoopState.on(loop)
    }

    /// Compresses `payload` into loop scratch (valid until the next compression on this loop).
    /// Nil: too small to be worth it, no gain, or no compressor for the window.
    public func compress(_ payload: UnsafeRawBufferPointer, counters: inout LoopCounters) -> UnsafeRawBufferPointer? {
        guard payload.count >= minCompressBytes, let d = state.deflater(bits: sendBits, level: level) else { return nil }
        let cap = d.bound(payload.count)
        let buf = state.outBuffer(cap)
        let n = d.compress(payload, into: buf, capacity: cap)
        counters.deflateRuns &+= 1
        guard n < payload.count else { return nil }
        return UnsafeRawBufferPointer(start: buf, count: n)
    }

    public enum Inflated {
        /// In loop scratch: valid until the next inflate on this loop. Text is valid UTF-8.
        case message(UnsafeRawBufferPointer)
        /// `1009` past the cap, `1007` for bad deflate data or text that is not UTF-8.
        case failed(CloseReason)
    }

    /// Inflates a whole compressed message (`op` text or binary) into loop scratch, at most `cap`
    /// bytes, and checks that text is UTF-8: the one receive path of both sides.
    public mutating func inflate(_ op: Opcode, _ data: UnsafeRawBufferPointer, cap: Int, counters: inout LoopCounters) -> Inflated {
        let inflater: Inflater?
        if peerResets {
            inflater = state.sharedInflater(bits: receiveBits)
        } else {
            if own == nil { own = Inflater(windowBits: receiveBits) }
            inflater = own
        }
        guard let inflater else { return .failed(.noInflater) }
        counters.inflateRuns &+= 1
        let out = state.inflateBuffer(cap + 1)
        switch inflater.inflate(data, into: out, cap: cap, keepContext: !peerResets) {
        case .ok(let n):
            let m = UnsafeRawBufferPointer(start: out, count: n)
            if op == .text, !UTF8Validator.isValid(m) { return .failed(.invalidUTF8) }
            return .message(m)
        case .tooBig: return .failed(.messageTooBig)
        case .corrupt: return .failed(.invalidCompressed)
        }
    }
}

/// An outgoing message built once for many recipients: its plain frame, and its compressed frame
/// made by the first recipient that negotiated compression and shared by all the others (the
/// server resets its compressor per message, so the bytes do not depend on the connection).
///
/// Lock-free: the compressed frame is published once through an atomic reference. Loops that
/// reach the message at the same moment may each compress it (the same bytes); the first to
/// publish wins and the others use its frame, so a message is compressed at most once per loop
/// and usually once, and no loop ever waits for another.
public final class OutboundMessage: @unchecked Sendable {
    public let frame: ByteChunk
    private let headerBytes: Int
    /// The compressed frame (or nil: compression did not make it smaller) for one window size.
    private final class Deflated {
        let bits: Int
        let frame: ByteChunk?
        init(bits: Int, frame: ByteChunk?) { self.bits = bits; self.frame = frame }
    }
    private let deflated = ManagedAtomicLazyReference<Deflated>()

    public init(_ opcode: Opcode, _ payload: [UInt8]) {
        frame = FrameEncoder.shared(opcode, payload)
        headerBytes = frame.count - payload.count
    }

    public var payload: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: frame.base + headerBytes, count: frame.count - headerBytes) }
    var opcode: Opcode { Opcode(rawValue: frame.base.load(as: UInt8.self) & 0x0F) ?? .text }

    /// The compressed frame for a connection, compressing on first need. Nil: send `frame`.
    func compressedFrame(_ pmd: PerMessageDeflate, counters: inout LoopCounters) -> ByteChunk? {
        let bits = pmd.sendBits
        guard payload.count >= pmd.minCompressBytes else { return nil }
        if let d = deflated.load() {
            // Almost always the one window every client asks for; another window is compressed
            // for this connection alone.
            return d.bits == bits ? d.frame : compress(pmd, counters: &counters)
        }
        let made = compress(pmd, counters: &counters)
        let d = deflated.storeIfNilThenLoad(Deflated(bits: bits, frame: made))
        return d.bits == bits ? d.frame : made
    }

    private func compress(_ pmd: PerMessageDeflate, counters: inout LoopCounters) -> ByteChunk? {
        guard let z = pmd.compress(payload, counters: &counters) else { return nil }
        var header: (UInt64, UInt64) = (0, 0)
        let n = withUnsafeMutableBytes(of: &header) { FrameEncoder.writeHeader(into: $0.baseAddress!, opcode: opcode, length: z.count, rsv1: true) }
        return ByteChunk(count: n + z.count) { dst in
            withUnsafeBytes(of: &header) { dst.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
            (dst.baseAddress! + n).copyMemory(from: z.baseAddress!, byteCount: z.count)
        }
    }
}

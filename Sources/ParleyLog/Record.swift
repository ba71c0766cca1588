import ParleyUTF8

/// Record types. The log itself knows `tombstone` (erasure) and `noop`; the chat layer defines the rest
/// in the range it owns. Unknown types are kept and skipped by readers that do not know them.
public struct RecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public init(_ v: UInt8) { rawValue = v }

    public static let noop = RecordType(0)
    /// Erases content: the payload names what (a user or a conversation); the cleaner rewrites sealed
    /// segments dropping the erased payloads while keeping offsets and sequences.
    public static let tombstone = RecordType(1)
    // Chat records (ParleyChat decides their payloads).
    public static let message = RecordType(16)
    public static let conversationCreated = RecordType(17)
    public static let conversationAssigned = RecordType(18)
    public static let conversationTransferred = RecordType(19)
    public static let conversationResolved = RecordType(20)
    public static let orderAttached = RecordType(21)
    public static let csat = RecordType(22)
    public static let readMarker = RecordType(23)
    public static let order = RecordType(24)
    public static let agentStatus = RecordType(25)

    public var description: String {
        switch self {
        case .noop: return "noop"
        case .tombstone: return "tombstone"
        case .message: return "message"
        case .conversationCreated: return "conversation.created"
        case .conversationAssigned: return "conversation.assigned"
        case .conversationTransferred: return "conversation.transferred"
        case .conversationResolved: return "conversation.resolved"
        case .orderAttached: return "order.attached"
        case .csat: return "csat"
        case .readMarker: return "read"
        case .order: return "order"
        case .agentStatus: return "agent.status"
        default: return "type\(rawValue)"
        }
    }
}

/// A 16-byte conversation id (a UUID); all zero for records outside any conversation.
public struct ConversationID: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }
    public static let none = ConversationID(high: 0, low: 0)
    public var isNone: Bool { high == 0 && low == 0 }

    /// From 32 hex digits, dashes anywhere ignored (UUID text, any case).
    public init?(_ s: String) {
        var s = s
        guard let id = s.withUTF8({ ConversationID(utf8: $0) }) else { return nil }
        self = id
    }

    /// The same from UTF-8 bytes, byte by byte: every client request names a conversation.
    public init?(utf8: UnsafeBufferPointer<UInt8>) {
        if utf8.count == 36, let id = Self.canonical(utf8) { self = id; return }
        var h: UInt64 = 0, l: UInt64 = 0, n = 0
        for c in utf8 where c != UInt8(ascii: "-") {
            guard let d = ASCII.hexValue(c) else { return nil }
            guard n < 32 else { return nil }
            if n < 16 { h = h << 4 | UInt64(d) } else { l = l << 4 | UInt64(d) }
            n += 1
        }
        guard n == 32 else { return nil }
        high = h; low = l
    }

    /// 8-4-4-4-12 hex digits (what every client sends back), eight digits at a time: four word
    /// loads, no branch per digit.
    private static func canonical(_ u: UnsafeBufferPointer<UInt8>) -> ConversationID? {
        let p = UnsafeRawPointer(u.baseAddress!)
        guard u[8] == UInt8(ascii: "-"), u[13] == UInt8(ascii: "-"), u[18] == UInt8(ascii: "-"), u[23] == UInt8(ascii: "-") else { return nil }
        func word(_ at: Int) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func half(_ at: Int) -> UInt64 { UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        guard let a = hex8(word(0)), let b = hex8(half(9) | half(14) << 32),
              let c = hex8(half(19) | half(24) << 32), let d = hex8(word(28)) else { return nil }
        return ConversationID(high: a << 32 | b, low: c << 32 | d)
    }

    /// Eight ASCII hex digits (any case) in a little-endian word, first digit in the low byte, to
    /// their 32-bit value; nil when any byte is not a hex digit.
    @inline(__always)
    static func hex8(_ w: UInt64) -> UInt64? {
        let ones: UInt64 = 0x0101_0101_0101_0101, high: UInt64 = 0x8080_8080_8080_8080
        guard w & high == 0 else { return nil }
        let v = w | 0x2020_2020_2020_2020  // letters lowercase (0x41-0x46 and 0x61-0x66 only land in 0x61-0x66)
        // Bytewise x >= k is bit 7 of x + (0x80 - k): no byte carries, since every byte is < 0x80.
        func atLeast(_ x: UInt64, _ k: UInt64) -> UInt64 { (x &+ ones &* (0x80 &- k)) & high }
        let digit = atLeast(w, 0x30) & ~atLeast(w, 0x3A), letter = atLeast(v, 0x61) & ~atLeast(v, 0x67)
        guard digit | letter == high else { return nil }
        let n = (v & (ones &* 0x0F)) &+ (letter >> 7) &* 9  // each byte its nibble
        let pairs = ((n << 4) | (n >> 8)) & 0x00FF_00FF_00FF_00FF  // bytes 0, 2, 4, 6: two digits each
        let quads = ((pairs << 8) | (pairs >> 16)) & 0x0000_FFFF_0000_FFFF
        return ((quads << 16) | (quads >> 32)) & 0xFFFF_FFFF
    }

    /// Lowercase UUID text (8-4-4-4-12), written straight into one string: it is in every event
    /// the server encodes and every cluster reply, so it is on the hot path.
    public var description: String {
        String(unsafeUninitializedCapacity: 36) { out in
            let digits: StaticString = "0123456789abcdef"
            var i = 0
            func put(_ v: UInt64, _ from: Int, _ to: Int) {  // nibbles from..<to of v, most significant first
                for n in from..<to {
                    if i == 8 || i == 13 || i == 18 || i == 23 { out[i] = UInt8(ascii: "-"); i += 1 }
                    out[i] = digits.utf8Start[Int((v >> UInt64(60 - 4 * n)) & 0xF)]
                    i += 1
                }
            }
            put(high, 0, 16)
            put(low, 0, 16)
            return 36
        }
    }
}

/// One log record. `offset` and `term` are assigned by the log on append.
public struct Record: Equatable, Sendable {
    public var type: RecordType
    public var flags: UInt16
    public var term: UInt32
    public var offset: UInt64
    public var timestampMs: Int64
    public var conversation: ConversationID
    /// Dense per conversation from 1; 0 for records outside a conversation's sequence.
    public var sequence: UInt64
    /// The client's idempotency key (clientMsgId), at most 64 bytes; empty if none.
    public var key: [UInt8]
    public var payload: [UInt8]

    public init(type: RecordType, flags: UInt16 = 0, term: UInt32 = 1, offset: UInt64 = 0, timestampMs: Int64 = 0,
                conversation: ConversationID = .none, sequence: UInt64 = 0, key: [UInt8] = [], payload: [UInt8] = []) {
        self.type = type; self.flags = flags; self.term = term; self.offset = offset; self.timestampMs = timestampMs
        self.conversation = conversation; self.sequence = sequence; self.key = key; self.payload = payload
    }
}

public enum LogError: Error, Equatable, CustomStringConvertible {
    case keyTooLong(Int)
    case payloadTooLarge(Int)
    /// Disk full: nothing of the batch was kept; appending works again once space returns.
    case noSpace
    case io(String, errno: Int32)
    /// Corruption that is not a torn tail: where, and why. The log refuses to open.
    case corrupt(file: String, position: Int64, reason: String)
    case badSegmentHeader(file: String, reason: String)
    case closed
    /// The record's sequence is not the conversation's next one (last durable + 1): refused, so a
    /// conversation's sequences stay gapless whatever fails around it.
    case sequenceConflict(expected: UInt64, got: UInt64)
    /// A replicated store could not take the append now (not the writer, the quorum unreachable):
    /// nothing was stored; retry.
    case unavailable(String)

    public var description: String {
        switch self {
        case .keyTooLong(let n): return "idempotency key of \(n) bytes (at most \(RecordCodec.maxKeyBytes))"
        case .payloadTooLarge(let n): return "payload of \(n) bytes (at most \(RecordCodec.maxPayloadBytes))"
        case .noSpace: return "no space left on device"
        case .io(let what, let e): return "\(what): errno \(e)"
        case .corrupt(let f, let p, let r): return "corrupt record in \(f) at byte \(p): \(r)"
        case .badSegmentHeader(let f, let r): return "bad segment header in \(f): \(r)"
        case .closed: return "log is closed"
        case .sequenceConflict(let e, let g): return "sequence \(g) where \(e) was next"
        case .unavailable(let why): return "not stored: \(why); retry"
        }
    }
}

/// The on-disk frame, little-endian, 8-byte aligned:
///
/// | off | size | field |
/// |---|---|---|
/// | 0 | 4 | frameLen: bytes after this field through the end of the payload (60 + keyLen + payloadLen) |
/// | 4 | 4 | CRC-32C over bytes [0,4) and [8, 4+frameLen): it covers the length and every header field |
/// | 8 | 1 | version (1) |
/// | 9 | 1 | type |
/// | 10 | 2 | flags |
/// | 12 | 4 | term |
/// | 16 | 8 | offset |
/// | 24 | 8 | timestamp, Unix ms |
/// | 32 | 16 | conversation id |
/// | 48 | 8 | sequence in the conversation |
/// | 56 | 1 | keyLen (≤ 64) |
/// | 57 | 3 | zero |
/// | 60 | 4 | payloadLen |
/// | 64 | keyLen | idempotency key |
/// | 64+keyLen | payloadLen | payload |
/// | … | 0–7 | zero padding to the next multiple of 8 |
public enum RecordCodec {
    public static let version: UInt8 = 1
    public static let headerBytes = 64
    public static let maxKeyBytes = 64
    public static let maxPayloadBytes = 1 << 20

    @inline(__always) public static func paddedSize(keyBytes: Int, payloadBytes: Int) -> Int {
        (headerBytes + keyBytes + payloadBytes + 7) & ~7
    }

    public static func encodedSize(_ r: Record) -> Int { paddedSize(keyBytes: r.key.count, payloadBytes: r.payload.count) }

    public static func validate(_ r: Record) throws(LogError) {
        if r.key.count > maxKeyBytes { throw .keyTooLong(r.key.count) }
        if r.payload.count > maxPayloadBytes { throw .payloadTooLarge(r.payload.count) }
    }

    /// Writes the frame at `out` (room for `encodedSize(r)` bytes) and returns its size.
    @discardableResult
    public static func encode(_ r: Record, into out: UnsafeMutableRawPointer) -> Int {
        let size = encodedSize(r)
        let frameLen = UInt32(60 + r.key.count + r.payload.count)
        // Only the reserved bytes and the padding need zeroing: every other byte is written below.
        out.storeBytes(of: UInt32(0), toByteOffset: 56, as: UInt32.self)
        let end = 64 + r.key.count + r.payload.count
        if size > end { (out + end).initializeMemory(as: UInt8.self, repeating: 0, count: size - end) }
        out.storeBytes(of: frameLen.littleEndian, toByteOffset: 0, as: UInt32.self)
        out.storeBytes(of: version, toByteOffset: 8, as: UInt8.self)
        out.storeBytes(of: r.type.rawValue, toByteOffset: 9, as: UInt8.self)
        out.storeBytes(of: r.flags.littleEndian, toByteOffset: 10, as: UInt16.self)
        out.storeBytes(of: r.term.littleEndian, toByteOffset: 12, as: UInt32.self)
        out.storeBytes(of: r.offset.littleEndian, toByteOffset: 16, as: UInt64.self)
        out.storeBytes(of: r.timestampMs.littleEndian, toByteOffset: 24, as: Int64.self)
        out.storeBytes(of: r.conversation.high.bigEndian, toByteOffset: 32, as: UInt64.self)
        out.storeBytes(of: r.conversation.low.bigEndian, toByteOffset: 40, as: UInt64.self)
        out.storeBytes(of: r.sequence.littleEndian, toByteOffset: 48, as: UInt64.self)
        out.storeBytes(of: UInt8(r.key.count), toByteOffset: 56, as: UInt8.self)
        out.storeBytes(of: UInt32(r.payload.count).littleEndian, toByteOffset: 60, as: UInt32.self)
        r.key.withUnsafeBytes { if $0.count > 0 { (out + 64).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        r.payload.withUnsafeBytes { if $0.count > 0 { (out + 64 + r.key.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        out.storeBytes(of: crc(UnsafeRawBufferPointer(start: out, count: 4 + Int(frameLen))).littleEndian, toByteOffset: 4, as: UInt32.self)
        return size
    }

    public static func encode(_ r: Record) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: encodedSize(r))
        out.withUnsafeMutableBytes { _ = encode(r, into: $0.baseAddress!) }
        return out
    }

    /// CRC of a frame (without padding): bytes [0,4) and [8, end).
    @inline(__always)
    static func crc(_ frame: UnsafeRawBufferPointer) -> UInt32 {
        let c = CRC32C.update(0, UnsafeRawBufferPointer(rebasing: frame[0..<4]))
        return CRC32C.update(c, UnsafeRawBufferPointer(rebasing: frame[8...]))
    }

    public enum Decoded: Equatable {
        /// A valid record and the bytes it took (padded).
        case record(Record, size: Int)
        /// Not enough bytes for the frame its length announces (or for a header).
        case truncated
        /// Bytes that are not a valid frame, and why.
        case invalid(String)
    }

    /// Reads the frame's header fields without copying key or payload (for scans).
    public struct Header: Equatable {
        public var type: RecordType, flags: UInt16, term: UInt32, offset: UInt64, timestampMs: Int64
        public var conversation: ConversationID, sequence: UInt64
        public var keyRange: Range<Int>, payloadRange: Range<Int>
        public var size: Int
    }

    public enum HeaderResult { case header(Header), truncated, invalid(String) }

    /// Validates the frame at the start of `b` (CRC included) and returns its header.
    public static func decodeHeader(_ b: UnsafeRawBufferPointer) -> HeaderResult {
        guard b.count >= 8 else { return .truncated }
        let frameLen = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
        if frameLen == 0 { return .invalid("zero length") }
        guard frameLen >= 60, frameLen <= 60 + maxKeyBytes + maxPayloadBytes else { return .invalid("length \(frameLen) out of range") }
        guard b.count >= 4 + frameLen else { return .truncated }
        let stored = UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        guard crc(UnsafeRawBufferPointer(rebasing: b[0..<(4 + frameLen)])) == stored else { return .invalid("checksum mismatch") }
        guard b[8] == version else { return .invalid("unknown version \(b[8])") }
        let keyLen = Int(b[56])
        let payloadLen = Int(UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 60, as: UInt32.self)))
        guard keyLen <= maxKeyBytes, b[57] == 0, b[58] == 0, b[59] == 0, 60 + keyLen + payloadLen == frameLen else {
            return .invalid("inconsistent lengths")
        }
        let size = paddedSize(keyBytes: keyLen, payloadBytes: payloadLen)
        let h = Header(
            type: RecordType(b[9]),
            flags: UInt16(littleEndian: b.loadUnaligned(fromByteOffset: 10, as: UInt16.self)),
            term: UInt32(littleEndian: b.loadUnaligned(fromByteOffset: 12, as: UInt32.self)),
            offset: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
            timestampMs: Int64(littleEndian: b.loadUnaligned(fromByteOffset: 24, as: Int64.self)),
            conversation: ConversationID(high: UInt64(bigEndian: b.loadUnaligned(fromByteOffset: 32, as: UInt64.self)),
                                         low: UInt64(bigEndian: b.loadUnaligned(fromByteOffset: 40, as: UInt64.self))),
            sequence: UInt64(littleEndian: b.loadUnaligned(fromByteOffset: 48, as: UInt64.self)),
            keyRange: 64..<(64 + keyLen), payloadRange: (64 + keyLen)..<(64 + keyLen + payloadLen), size: size)
        return .header(h)
    }

    public static func decode(_ b: UnsafeRawBufferPointer) -> Decoded {
        switch decodeHeader(b) {
        case .truncated: return .truncated
        case .invalid(let why): return .invalid(why)
        case .header(let h):
            let r = Record(type: h.type, flags: h.flags, term: h.term, offset: h.offset, timestampMs: h.timestampMs,
                           conversation: h.conversation, sequence: h.sequence,
                           key: Array(b[h.keyRange]), payload: Array(b[h.payloadRange]))
            return .record(r, size: h.size)
        }
    }

    public static func decode(_ bytes: [UInt8]) -> Decoded { bytes.withUnsafeBytes { decode($0) } }
}

import ParleyUTF8

/// What the reader hands up. Buffers are borrowed: valid only during the callback.
public enum FrameEvent {
    case text(UnsafeRawBufferPointer)
    case binary(UnsafeRawBufferPointer)
    case ping(UnsafeRawBufferPointer)
    case pong(UnsafeRawBufferPointer)
    /// A valid close frame: its code (nil if the frame was empty) and UTF-8 reason.
    case close(code: UInt16?, reason: UnsafeRawBufferPointer)
    /// A whole message whose first frame had RSV1 (permessage-deflate): still compressed, all
    /// fragments joined, not yet UTF-8-checked. Only when `allowRSV1` is set.
    case compressed(Opcode, UnsafeRawBufferPointer)
}

public struct FrameReaderLimits: Sendable {
    /// Largest message (all fragments together). Checked against each declared frame length
    /// before any of its payload is buffered; past it the connection closes with 1009.
    public var maxMessageBytes: Int
    /// RSV1 is legal only when an extension (permessage-deflate) was negotiated.
    public var allowRSV1: Bool
    /// Servers read masked frames (clients must mask); clients read unmasked ones.
    public var expectMasked: Bool
    public init(maxMessageBytes: Int = 64 * 1024, allowRSV1: Bool = false, expectMasked: Bool = true) {
        self.maxMessageBytes = maxMessageBytes
        self.allowRSV1 = allowRSV1
        self.expectMasked = expectMasked
    }
}

/// Client-to-server frame parsing and message assembly (RFC 6455 §5), as a pure state machine.
///
/// A frame that is complete in the buffer is unmasked in place and handed up with no copy and no
/// allocation. Only a frame split across reads, or a fragmented message, is assembled in `assembly`,
/// bounded by `maxMessageBytes`. Text is UTF-8-validated as it arrives, across fragments.
public struct FrameReader: Sendable {
    public var limits: FrameReaderLimits

    // The frame whose payload is being streamed (header already consumed).
    private var inFrame = false
    private var frameFin = false
    private var frameRemaining: UInt64 = 0
    private var frameKey: UInt32 = 0
    private var frameOffset = 0
    // The data message being assembled (text or binary), if any.
    private var messageOpcode: Opcode? = nil
    private var messageCompressed = false
    private var assembly: [UInt8] = []
    private var utf8 = UTF8Validator()

    public init(limits: FrameReaderLimits = .init()) { self.limits = limits }

    public enum Outcome: Equatable {
        /// Consumed this many bytes; the rest (an incomplete header or control frame) waits for more.
        case consumed(Int)
        /// The peer broke the protocol: close with this code.
        case fail(CloseCode)
    }

    /// Parses as much of `buf` as possible, calling `deliver` for each complete message and control
    /// frame. `deliver` returns false to stop (e.g. after a close frame). `buf` is modified in place.
    public mutating func read(_ buf: UnsafeMutableRawBufferPointer, _ deliver: (FrameEvent) -> Bool) -> Outcome {
        guard let base = buf.baseAddress else { return .consumed(0) }
        let count = buf.count
        var off = 0
        while off < count {
            if inFrame {
                let available = count - off
                let take = frameRemaining < UInt64(available) ? Int(frameRemaining) : available
                let chunk = UnsafeMutableRawBufferPointer(start: base + off, count: take)
                unmask(chunk, key: frameKey, offset: frameOffset)
                if messageOpcode == .text, !messageCompressed, !utf8.validate(UnsafeRawBufferPointer(chunk)) { return .fail(.invalidPayload) }
                assembly.append(contentsOf: UnsafeRawBufferPointer(chunk))
                off += take
                frameOffset &+= take
                frameRemaining -= UInt64(take)
                if frameRemaining > 0 { return .consumed(off) }
                inFrame = false
                if frameFin {
                    if let r = finishMessage(deliver) { return r == .consumed(0) ? .consumed(off) : r }
                }
                continue
            }

            // Header. Check what 2 bytes can tell before waiting for the rest (fail fast).
            let available = count - off
            guard available >= 2 else { return .consumed(off) }
            let b0 = base.load(fromByteOffset: off, as: UInt8.self)
            let b1 = base.load(fromByteOffset: off + 1, as: UInt8.self)
            let fin = b0 & 0x80 != 0
            let rsv = b0 & 0x70
            guard let opcode = Opcode(rawValue: b0 & 0x0F) else { return .fail(.protocolError) }
            if rsv != 0, !(rsv == 0x40 && limits.allowRSV1 && !opcode.isControl && opcode != .continuation) {
                return .fail(.protocolError)
            }
            guard (b1 & 0x80 != 0) == limits.expectMasked else { return .fail(.protocolError) }  // clients mask, servers don't
            let len7 = b1 & 0x7F
            if opcode.isControl {
                guard fin, len7 <= 125 else { return .fail(.protocolError) }
            } else if opcode == .continuation {
                guard messageOpcode != nil else { return .fail(.protocolError) }
            } else {
                guard messageOpcode == nil else { return .fail(.protocolError) }
            }
            let lengthBytes = len7 == 126 ? 2 : (len7 == 127 ? 8 : 0)
            let maskBytes = limits.expectMasked ? 4 : 0
            let headerLen = 2 + lengthBytes + maskBytes
            guard available >= headerLen else { return .consumed(off) }
            var length = UInt64(len7)
            if lengthBytes == 2 {
                length = UInt64(UInt16(bigEndian: (base + off + 2).loadUnaligned(as: UInt16.self)))
            } else if lengthBytes == 8 {
                length = UInt64(bigEndian: (base + off + 2).loadUnaligned(as: UInt64.self))
                guard length & (1 << 63) == 0 else { return .fail(.protocolError) }
            }
            let key = maskBytes == 0 ? 0 : loadMaskKey(base + off + 2 + lengthBytes)

            if opcode.isControl {
                let total = headerLen + Int(length)  // length <= 125
                guard available >= total else { return .consumed(off) }
                let payload = UnsafeMutableRawBufferPointer(start: base + off + headerLen, count: Int(length))
                unmask(payload, key: key, offset: 0)
                off += total
                switch control(opcode, UnsafeRawBufferPointer(payload), deliver) {
                case .some(.fail(let code)): return .fail(code)
                case .some(.consumed): return .consumed(off)  // stopped by deliver
                case .none: continue
                }
            }

            // Data frame: the declared length is checked against the limit before anything is buffered.
            // A compressed message may be larger than its content: incompressible data costs block
            // headers (measured: 65,536 random bytes from Python's websockets come to 67,028, +2.3%),
            // so 1/8 more is allowed; what it inflates to is capped at the limit by the inflater.
            let compressed = opcode == .continuation ? messageCompressed : rsv != 0
            let limit = UInt64(compressed ? limits.maxMessageBytes + limits.maxMessageBytes / 8 + 64 : limits.maxMessageBytes)
            let already = UInt64(assembly.count)
            guard length <= limit, already + length <= limit else {
                return .fail(.messageTooBig)
            }
            let len = Int(length)
            if fin, opcode != .continuation, available - headerLen >= len {
                // Whole single-frame message in the buffer: unmask in place, hand up a view. No copy.
                let payload = UnsafeMutableRawBufferPointer(start: base + off + headerLen, count: len)
                unmask(payload, key: key, offset: 0)
                off += headerLen + len
                let view = UnsafeRawBufferPointer(payload)
                if rsv != 0 {
                    if !deliver(.compressed(opcode, view)) { return .consumed(off) }
                } else if opcode == .text {
                    guard UTF8Validator.isValid(view) else { return .fail(.invalidPayload) }
                    if !deliver(.text(view)) { return .consumed(off) }
                } else {
                    if !deliver(.binary(view)) { return .consumed(off) }
                }
                continue
            }
            // Stream the payload into the assembly buffer as it arrives.
            if opcode != .continuation {
                messageOpcode = opcode
                messageCompressed = rsv != 0
                utf8 = UTF8Validator()
            }
            inFrame = true
            frameFin = fin
            frameRemaining = length
            frameKey = key
            frameOffset = 0
            off += headerLen
            if length == 0 {
                inFrame = false
                if fin, let r = finishMessage(deliver) { return r == .consumed(0) ? .consumed(off) : r }
            }
        }
        return .consumed(off)
    }

    /// Ends the assembled message. Returns nil to continue, `.consumed(0)` when deliver asked to stop.
    private mutating func finishMessage(_ deliver: (FrameEvent) -> Bool) -> Outcome? {
        guard let op = messageOpcode else { return nil }
        messageOpcode = nil
        let compressed = messageCompressed
        messageCompressed = false
        if op == .text, !compressed, !utf8.isComplete { return .fail(.invalidPayload) }
        let message = assembly
        assembly = []  // release: idle connections keep no assembly memory
        let go = message.withUnsafeBytes {
            compressed ? deliver(.compressed(op, $0)) : (op == .text ? deliver(.text($0)) : deliver(.binary($0)))
        }
        return go ? nil : .consumed(0)
    }

    private func control(_ op: Opcode, _ payload: UnsafeRawBufferPointer, _ deliver: (FrameEvent) -> Bool) -> Outcome? {
        let go: Bool
        switch op {
        case .ping: go = deliver(.ping(payload))
        case .pong: go = deliver(.pong(payload))
        default:  // close
            if payload.count == 0 {
                go = deliver(.close(code: nil, reason: payload))
            } else {
                guard payload.count >= 2 else { return .fail(.protocolError) }
                let code = UInt16(payload[0]) << 8 | UInt16(payload[1])
                guard CloseCode.isValidReceived(code) else { return .fail(.protocolError) }
                let reason = UnsafeRawBufferPointer(rebasing: payload[2...])
                guard UTF8Validator.isValid(reason) else { return .fail(.invalidPayload) }
                go = deliver(.close(code: code, reason: reason))
            }
        }
        return go ? nil : .consumed(0)
    }
}

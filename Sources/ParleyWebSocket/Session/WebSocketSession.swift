import ParleyTransport

/// Receives a session's messages; called on the session's loop. Buffers are borrowed for the call.
public protocol WebSocketDelegate: AnyObject {
    func webSocket(_ ws: WebSocketSession, text: UnsafeRawBufferPointer)
    func webSocket(_ ws: WebSocketSession, binary: UnsafeRawBufferPointer)
    func webSocketClosed(_ ws: WebSocketSession)
}

/// Settings shared by every session of a server (one instance, not one per connection).
public final class WebSocketConfig: @unchecked Sendable {
    public var reader: FrameReaderLimits
    /// Idle time before the server pings (any inbound byte counts as activity).
    public var pingIntervalMs: UInt64
    /// How long a ping may go unanswered (no inbound byte at all) before the connection is dropped.
    public var pongTimeoutMs: UInt64
    /// After the server sends close, how long it waits for the peer's close.
    public var closeTimeoutMs: UInt64
    /// permessage-deflate: whether offers are accepted, and how.
    public var deflate: DeflatePolicy

    public init(maxMessageBytes: Int = 64 * 1024, pingIntervalMs: UInt64 = 30_000, pongTimeoutMs: UInt64 = 10_000, closeTimeoutMs: UInt64 = 5_000,
                deflate: DeflatePolicy = DeflatePolicy()) {
        self.deflate = deflate
        self.reader = FrameReaderLimits(maxMessageBytes: maxMessageBytes)
        self.pingIntervalMs = pingIntervalMs
        self.pongTimeoutMs = pongTimeoutMs
        self.closeTimeoutMs = closeTimeoutMs
    }
}

/// One WebSocket connection, server side: the frame reader, the close handshake, keep-alive pings.
public final class WebSocketSession: ConnectionHandler {
    private enum Timer: UInt8 { case idle, awaitingPong, closing }

    /// Strong: the cycle with `connection.handler` is broken when the connection closes.
    public let connection: Connection
    public var delegate: WebSocketDelegate?
    public let subprotocol: String?
    private let config: WebSocketConfig
    @exclusivity(unchecked) private var reader: FrameReader
    private var timer: Timer = .idle
    private var pingSentMs: UInt64 = 0
    @exclusivity(unchecked) public private(set) var closeSent = false
    private var overflowing = false
    /// Set when permessage-deflate was negotiated.
    @exclusivity(unchecked) public private(set) var deflate: PerMessageDeflate?

    public init(connection: Connection, config: WebSocketConfig, subprotocol: String? = nil, deflate: DeflateParameters? = nil, delegate: WebSocketDelegate?) {
        self.connection = connection
        self.config = config
        self.subprotocol = subprotocol
        self.delegate = delegate
        var limits = config.reader
        if let d = deflate {
            limits.allowRSV1 = true
            self.deflate = PerMessageDeflate(d, isServer: true, loop: connection.loop, policy: config.deflate)
        }
        self.reader = FrameReader(limits: limits)
        connection.deadlineMs = connection.loop.nowMs + config.pingIntervalMs
    }

    public var isOpen: Bool { connection.isOpen && !closeSent }

    // MARK: sending

    public func sendText(_ payload: UnsafeRawBufferPointer) { connection.loop.counters.messagesOut &+= 1; sendFrame(.text, payload) }
    public func sendBinary(_ payload: UnsafeRawBufferPointer) { connection.loop.counters.messagesOut &+= 1; sendFrame(.binary, payload) }
    public func sendText(_ s: String) {
        var s = s
        s.withUTF8 { sendFrame(.text, UnsafeRawBufferPointer($0)) }
    }

    /// Sends a message encoded once for many recipients (compressed once, too, when negotiated).
    public func send(_ message: OutboundMessage) {
        guard !closeSent else { return }
        let loop = connection.loop
        loop.counters.messagesOut &+= 1
        if let d = deflate, let z = message.compressedFrame(d, counters: &loop.counters) {
            loop.counters.compressedSent &+= 1
            connection.send(z)
        } else {
            connection.send(message.frame)
        }
    }

    @inline(__always)
    func sendFrame(_ op: Opcode, _ payload: UnsafeRawBufferPointer) {
        guard !closeSent else { return }
        if !op.isControl, deflate != nil, let z = deflate!.compress(payload, counters: &connection.loop.counters) {
            connection.loop.counters.compressedSent &+= 1
            sendRaw(op, z, rsv1: true)
            return
        }
        sendRaw(op, payload, rsv1: false)
    }

    @inline(__always)
    private func sendRaw(_ op: Opcode, _ payload: UnsafeRawBufferPointer, rsv1: Bool) {
        var header: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &header) { h in
            let n = FrameEncoder.writeHeader(into: h.baseAddress!, opcode: op, length: payload.count, rsv1: rsv1)
            connection.send(header: UnsafeRawBufferPointer(rebasing: h[0..<n]), payload: payload)
        }
    }

    /// Starts the closing handshake: send close, wait (bounded) for the peer's close, then close TCP.
    public func close(_ code: CloseCode, reason: String = "") {
        guard !closeSent, connection.isOpen else { return }
        sendClose(code, reason: reason)
        timer = .closing
        connection.deadlineMs = connection.loop.nowMs + config.closeTimeoutMs
    }

    /// Sends close and drops the connection after flushing, without waiting for the peer:
    /// for protocol violations, where nothing more from the peer can be trusted.
    public func fail(_ code: CloseCode, reason: String = "") {
        if !closeSent { sendClose(code, reason: reason) }
        connection.closeAfterFlush()
    }

    private func sendClose(_ code: CloseCode?, reason: String = "") {
        let payload = code.map { FrameEncoder.closePayload($0, reason: reason) } ?? []
        let frame = FrameEncoder.frame(.close, payload)
        frame.withUnsafeBytes { connection.send($0) }
        closeSent = true
    }

    // MARK: ConnectionHandler

    public func connectionRead(_ c: Connection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        let outcome = reader.read(bytes) { event in
            switch event {
            case .text(let t):
                c.loop.counters.messagesIn &+= 1
                if !closeSent { delegate?.webSocket(self, text: t) }
            case .binary(let b):
                c.loop.counters.messagesIn &+= 1
                if !closeSent { delegate?.webSocket(self, binary: b) }
            case .ping(let p):
                if !closeSent { sendFrame(.pong, p) }
            case .pong:
                break  // any inbound byte already counts as liveness
            case .compressed(let op, let data):
                c.loop.counters.messagesIn &+= 1
                guard !closeSent, deflate != nil else { return connection.isOpen }
                switch deflate!.inflate(op, data, cap: config.reader.maxMessageBytes, counters: &c.loop.counters) {
                case .message(let m):
                    if op == .text { delegate?.webSocket(self, text: m) } else { delegate?.webSocket(self, binary: m) }
                case .failed(let code, let reason):
                    fail(code, reason: reason)
                    return false
                }
            case .close(let code, _):
                // Echo the peer's code (RFC 6455 §5.5.1), unless we already sent ours; then close TCP.
                if !closeSent { sendClose(code.map(CloseCode.init(rawValue:))) }
                connection.closeAfterFlush()
                return false
            }
            return connection.isOpen
        }
        switch outcome {
        case .consumed(let n):
            return n
        case .fail(let code):
            fail(code, reason: FrameReaderFailure.reason(code))
            return bytes.count
        }
    }

    public func connectionDeadline(_ c: Connection, nowMs now: UInt64) {
        switch timer {
        case .closing:
            c.close(.timeout)
        case .idle, .awaitingPong:
            if timer == .awaitingPong, c.lastReadMs < pingSentMs {
                c.close(.timeout)  // no byte at all since our ping: the peer is gone
                return
            }
            if c.lastReadMs + config.pingIntervalMs > now {
                timer = .idle
                c.deadlineMs = c.lastReadMs + config.pingIntervalMs
            } else {
                sendFrame(.ping, UnsafeRawBufferPointer(start: nil, count: 0))
                timer = .awaitingPong
                pingSentMs = now
                c.deadlineMs = now + config.pongTimeoutMs
            }
        }
    }

    public func connectionOverflow(_ c: Connection) {
        // The peer does not read: drop what has not started to go out and tell it why, once.
        if overflowing { c.close(.overflow); return }
        overflowing = true
        c.discardQueuedOutput()
        closeSent = false
        fail(.policyViolation, reason: "slow consumer")
    }

    public func connectionClosed(_ c: Connection) {
        delegate?.webSocketClosed(self)
        delegate = nil
    }
}

enum FrameReaderFailure {
    static func reason(_ code: CloseCode) -> String {
        switch code {
        case .messageTooBig: return "message too big"
        case .invalidPayload: return "invalid UTF-8"
        default: return "protocol error"
        }
    }
}

// Kept out of Codec/: the codec depends on the standard library only (it is fuzzed on its own).
extension FrameEncoder {
    /// A whole frame in one reference-counted chunk, built once and queued for many recipients.
    public static func shared(_ opcode: Opcode, _ payload: [UInt8]) -> ByteChunk {
        var header: (UInt64, UInt64) = (0, 0)
        let n = withUnsafeMutableBytes(of: &header) { writeHeader(into: $0.baseAddress!, opcode: opcode, length: payload.count) }
        return ByteChunk(count: n + payload.count) { dst in
            withUnsafeBytes(of: &header) { dst.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
            payload.withUnsafeBytes { if $0.count > 0 { (dst.baseAddress! + n).copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        }
    }
}

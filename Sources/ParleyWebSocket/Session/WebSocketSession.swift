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
    public var keepAlive: KeepAlive
    /// permessage-deflate: whether offers are accepted, and how.
    public var deflate: DeflatePolicy

    public init(maxMessageBytes: Int = 64 * 1024, pingIntervalMs: UInt64 = 30_000, pongTimeoutMs: UInt64 = 10_000, closeTimeoutMs: UInt64 = 5_000,
                deflate: DeflatePolicy = DeflatePolicy()) {
        self.deflate = deflate
        self.reader = FrameReaderLimits(maxMessageBytes: maxMessageBytes)
        self.keepAlive = KeepAlive(pingIntervalMs: pingIntervalMs, pongTimeoutMs: pongTimeoutMs, closeTimeoutMs: closeTimeoutMs)
    }
}

/// One WebSocket connection, server side: a thin shell that carries a `WebSocketEndpoint`'s
/// actions out on its connection (unmasked frames, written with the payload in place).
public final class WebSocketSession: ConnectionHandler {
    /// Strong: the cycle with `connection.handler` is broken when the connection closes.
    public let connection: Connection
    public var delegate: WebSocketDelegate?
    public let subprotocol: String?
    public let endpoint: WebSocketEndpoint

    public init(connection: Connection, config: WebSocketConfig, subprotocol: String? = nil, deflate: DeflateParameters? = nil, delegate: WebSocketDelegate?) {
        self.connection = connection
        self.subprotocol = subprotocol
        self.delegate = delegate
        endpoint = WebSocketEndpoint(limits: config.reader, keepAlive: config.keepAlive, loop: connection.loop)
        if let d = deflate { endpoint.enableDeflate(d, isServer: true, policy: config.deflate) }
        connection.deadlineMs = endpoint.firstDeadline(nowMs: connection.loop.nowMs) ?? 0
    }

    public var isOpen: Bool { connection.isOpen && endpoint.isOpen }
    public var closeSent: Bool { endpoint.closeSent }
    public var deflate: PerMessageDeflate? { endpoint.deflate }

    // MARK: sending

    public func sendText(_ payload: UnsafeRawBufferPointer) { connection.loop.counters.messagesOut &+= 1; sendFrame(.text, payload) }
    public func sendBinary(_ payload: UnsafeRawBufferPointer) { connection.loop.counters.messagesOut &+= 1; sendFrame(.binary, payload) }
    public func sendText(_ s: String) {
        var s = s
        s.withUTF8 { sendFrame(.text, UnsafeRawBufferPointer($0)) }
    }

    /// Sends a message encoded once for many recipients (compressed once, too, when negotiated).
    public func send(_ message: OutboundMessage) {
        guard endpoint.isOpen else { return }
        let loop = connection.loop
        loop.counters.messagesOut &+= 1
        if let d = endpoint.deflate, let z = message.compressedFrame(d, counters: &loop.counters) {
            loop.counters.compressedSent &+= 1
            connection.send(z)
        } else {
            connection.send(message.frame)
        }
    }

    @inline(__always)
    func sendFrame(_ op: Opcode, _ payload: UnsafeRawBufferPointer) {
        guard endpoint.isOpen else { return }
        let (bytes, rsv1) = endpoint.outgoing(op, payload)
        sendRaw(op, bytes, rsv1: rsv1)
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
    public func close(_ why: CloseReason) {
        guard connection.isOpen, let until = endpoint.close(why, nowMs: connection.loop.nowMs, perform) else { return }
        connection.deadlineMs = until
    }

    /// Sends close and drops the connection after flushing, without waiting for the peer:
    /// for protocol violations, where nothing more from the peer can be trusted.
    public func fail(_ why: CloseReason) { endpoint.fail(why, perform) }

    private func perform(_ action: WebSocketEndpoint.Action) {
        switch action {
        case .text(let t): delegate?.webSocket(self, text: t)
        case .binary(let b): delegate?.webSocket(self, binary: b)
        case .send(let op, let p): sendRaw(op, p, rsv1: false)
        case .closeTransport: connection.closeAfterFlush()
        }
    }

    // MARK: ConnectionHandler

    public func connectionRead(_ c: Connection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        endpoint.read(bytes, perform)
    }

    public func connectionDeadline(_ c: Connection, nowMs now: UInt64) {
        switch endpoint.tick(nowMs: now, lastReadMs: c.lastReadMs, perform) {
        case .drop: c.close(.timeout)
        case .wait(let until): c.deadlineMs = until
        }
    }

    public func connectionOverflow(_ c: Connection) {
        // The peer does not read: drop what has not started to go out and tell it why, once.
        c.discardQueuedOutput()
        if endpoint.overflow(perform) { c.close(.overflow) }
    }

    public func connectionClosed(_ c: Connection) {
        delegate?.webSocketClosed(self)
        delegate = nil
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

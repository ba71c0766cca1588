import ParleyTransport

/// Keep-alive and closing times of an endpoint.
public struct KeepAlive: Sendable {
    /// Idle time before this end pings (any inbound byte counts as activity). 0: never ping.
    public var pingIntervalMs: UInt64
    /// How long a ping may go unanswered (no inbound byte at all) before the connection is dropped.
    public var pongTimeoutMs: UInt64
    /// After this end sends close, how long it waits for the peer's close.
    public var closeTimeoutMs: UInt64

    public init(pingIntervalMs: UInt64 = 30_000, pongTimeoutMs: UInt64 = 10_000, closeTimeoutMs: UInt64 = 5_000) {
        self.pingIntervalMs = pingIntervalMs
        self.pongTimeoutMs = pongTimeoutMs
        self.closeTimeoutMs = closeTimeoutMs
    }
}

/// One end of a WebSocket connection, server or client, as a pure state machine: bytes and timer
/// ticks in, actions out. It owns the frame reader (fragmentation, control frames, UTF-8), the
/// close handshake, keep-alive pings and the permessage-deflate state; the server session and the
/// client are thin shells that carry its actions out on a connection (each frames what it sends
/// in its own role: the client masks).
///
/// A class, not a struct: the application may close from inside a message callback (the chat
/// session does, on abuse), and that nested call must see and change the same state the read in
/// progress goes on with. Loop-confined, like its connection.
public final class WebSocketEndpoint {
    public enum Action {
        /// A whole message for the application. Borrowed: valid during the callback.
        case text(UnsafeRawBufferPointer)
        case binary(UnsafeRawBufferPointer)
        /// A control frame to write now (pong, ping, close). Borrowed.
        case send(Opcode, UnsafeRawBufferPointer)
        /// Close the transport once what was written has been flushed.
        case closeTransport
    }

    /// What the timer asks for.
    public enum Tick: Equatable {
        /// Call `tick` again at this time.
        case wait(untilMs: UInt64)
        /// The peer is gone (no answer to a ping, or to our close): drop the transport now.
        case drop
    }

    private enum Timer: UInt8 { case idle, awaitingPong, closing }

    public let keepAlive: KeepAlive
    /// The connection's loop: its counters, its shared compressor. Outlives the endpoint.
    private unowned(unsafe) let loop: Loop
    @exclusivity(unchecked) private var reader: FrameReader
    private let maxMessageBytes: Int
    /// Set when permessage-deflate was negotiated.
    @exclusivity(unchecked) public private(set) var deflate: PerMessageDeflate?
    /// This end has sent its close frame: nothing but the peer's close matters any more.
    @exclusivity(unchecked) public private(set) var closeSent = false
    /// The peer's close code, once its close frame arrived (nil: none yet, or it sent none).
    public private(set) var peerCloseCode: UInt16?
    @exclusivity(unchecked) public private(set) var peerClosed = false
    /// Why this end failed the connection (the peer broke the protocol, or sent bad data).
    public private(set) var failure: CloseReason?
    private var timer: Timer = .idle
    private var pingSentMs: UInt64 = 0
    private var overflowed = false

    /// `limits.expectMasked`: true on the server (clients mask), false on the client.
    public init(limits: FrameReaderLimits, keepAlive: KeepAlive, loop: Loop) {
        self.loop = loop
        reader = FrameReader(limits: limits)
        maxMessageBytes = limits.maxMessageBytes
        self.keepAlive = keepAlive
    }

    /// permessage-deflate was negotiated: RSV1 becomes legal, messages are compressed and inflated.
    public func enableDeflate(_ p: DeflateParameters, isServer: Bool, policy: DeflatePolicy) {
        deflate = PerMessageDeflate(p, isServer: isServer, loop: loop, policy: policy)
        reader.limits.allowRSV1 = true
    }

    /// Whether this end may still send messages.
    public var isOpen: Bool { !closeSent }

    // MARK: reading

    /// Reads what arrived; returns how many bytes were consumed (the rest waits for more). After a
    /// close or a failure everything is consumed and `closeTransport` has been acted on.
    public func read(_ bytes: UnsafeMutableRawBufferPointer, _ act: (Action) -> Void) -> Int {
        guard !peerClosed else { return bytes.count }
        var failure: CloseReason?
        let outcome = reader.read(bytes) { event in
            switch event {
            case .text(let t):
                loop.counters.messagesIn &+= 1
                if !closeSent { act(.text(t)) }
            case .binary(let b):
                loop.counters.messagesIn &+= 1
                if !closeSent { act(.binary(b)) }
            case .ping(let p):
                if !closeSent { act(.send(.pong, p)) }
            case .pong:
                break  // any inbound byte already counts as liveness
            case .compressed(let op, let data):
                loop.counters.messagesIn &+= 1
                guard !closeSent, deflate != nil else { return true }
                switch deflate!.inflate(op, data, cap: maxMessageBytes, counters: &loop.counters) {
                case .message(let m): act(op == .text ? .text(m) : .binary(m))
                case .failed(let why):
                    failure = why
                    return false
                }
            case .close(let code, _):
                // Echo the peer's code (RFC 6455 §5.5.1), unless ours went first; then close TCP.
                peerClosed = true
                peerCloseCode = code
                if !closeSent {
                    closeSent = true
                    let payload = code.map { FrameEncoder.closePayload(CloseCode($0)) } ?? []
                    payload.withUnsafeBytes { act(.send(.close, $0)) }
                }
                act(.closeTransport)
                return false
            }
            return !peerClosed
        }
        if let failure {
            fail(failure, act)
            return bytes.count
        }
        switch outcome {
        case .consumed(let n):
            return peerClosed ? bytes.count : n
        case .fail(let code):
            fail(.reading(code), act)
            return bytes.count
        }
    }

    // MARK: closing

    /// Starts the closing handshake: sends close, then waits (until `tick` says drop) for the
    /// peer's close. Returns the time by which the peer must answer, or nil if already closing.
    public func close(_ why: CloseReason, nowMs: UInt64, _ act: (Action) -> Void) -> UInt64? {
        guard !closeSent else { return nil }
        sendClose(why, act)
        timer = .closing
        return nowMs + keepAlive.closeTimeoutMs
    }

    /// Sends close (unless sent) and closes the transport after flushing, without waiting for the
    /// peer: for protocol violations, where nothing more from the peer can be trusted.
    public func fail(_ why: CloseReason, _ act: (Action) -> Void) {
        if failure == nil { failure = why }
        if !closeSent { sendClose(why, act) }
        peerClosed = true
        act(.closeTransport)
    }

    /// The peer does not read and its output queue passed the cap. The first time the shell drops
    /// what has not started to go out and this end tells the peer why; the second time, true: drop
    /// the transport at once.
    public func overflow(_ act: (Action) -> Void) -> Bool {
        if overflowed { return true }
        overflowed = true
        closeSent = false
        fail(.slowConsumer, act)
        return false
    }

    private func sendClose(_ why: CloseReason, _ act: (Action) -> Void) {
        closeSent = true
        FrameEncoder.closePayload(why.code, reason: why.text).withUnsafeBytes { act(.send(.close, $0)) }
    }

    // MARK: keep-alive

    /// The first deadline, from when the connection opened; nil when this end never pings.
    public func firstDeadline(nowMs: UInt64) -> UInt64? {
        keepAlive.pingIntervalMs == 0 ? nil : nowMs + keepAlive.pingIntervalMs
    }

    /// The deadline passed: ping an idle peer, drop a silent one, or give up on a close handshake.
    /// `lastReadMs` is when the transport last read any byte.
    public func tick(nowMs now: UInt64, lastReadMs: UInt64, _ act: (Action) -> Void) -> Tick {
        switch timer {
        case .closing:
            return .drop
        case .idle, .awaitingPong:
            if timer == .awaitingPong, lastReadMs < pingSentMs { return .drop }  // no byte since our ping
            guard keepAlive.pingIntervalMs > 0 else { return .wait(untilMs: 0) }
            if lastReadMs + keepAlive.pingIntervalMs > now {
                timer = .idle
                return .wait(untilMs: lastReadMs + keepAlive.pingIntervalMs)
            }
            if !closeSent { act(.send(.ping, UnsafeRawBufferPointer(start: nil, count: 0))) }
            timer = .awaitingPong
            pingSentMs = now
            return .wait(untilMs: now + keepAlive.pongTimeoutMs)
        }
    }

    // MARK: sending

    /// The bytes to frame for an outgoing message: compressed (RSV1) when negotiated and worth it.
    /// A compressed view lives in loop scratch until the next compression on the loop.
    @inline(__always)
    public func outgoing(_ op: Opcode, _ payload: UnsafeRawBufferPointer) -> (bytes: UnsafeRawBufferPointer, rsv1: Bool) {
        if !op.isControl, let d = deflate, let z = d.compress(payload, counters: &loop.counters) {
            loop.counters.compressedSent &+= 1
            return (z, true)
        }
        return (payload, false)
    }
}

import ParleyTransport
import ParleyWebSocket
#if canImport(Glibc)
import Glibc
#endif

public protocol WebSocketClientDelegate: AnyObject {
    func clientOpened(_ client: WebSocketClient)
    func client(_ client: WebSocketClient, text: UnsafeRawBufferPointer)
    func client(_ client: WebSocketClient, binary: UnsafeRawBufferPointer)
    /// `code` is the server's close code if it sent one; `error` says why otherwise.
    func clientClosed(_ client: WebSocketClient, code: UInt16?, error: String?)
}

public enum ClientError: Error, CustomStringConvertible {
    case connect(String)
    case badAddress(String)
    case tls(String)
    public var description: String {
        switch self {
        case .connect(let m): return "connect: \(m)"
        case .badAddress(let a): return "bad address: \(a)"
        case .tls(let m): return "TLS: \(m)"
        }
    }
}

/// A WebSocket client on the project's own transport: non-blocking connect, handshake, masked
/// frames out, unmasked frames in. Lives on one loop; call everything on `loop.queue`.
public final class WebSocketClient: ConnectionHandler {
    public enum State { case connecting, open, closed }

    public private(set) var connection: Connection!
    public private(set) var state: State = .connecting
    public weak var delegate: WebSocketClientDelegate?
    public private(set) var subprotocol: String?
    /// Made when the handshake completes (it needs the connection's loop and the negotiated deflate).
    public private(set) var endpoint: WebSocketEndpoint!
    /// Nil if OpenSSL cannot compute SHA-1: the handshake then fails with a message, not a trap.
    private let expectedAccept: String?
    @exclusivity(unchecked) private var rng: UInt64
    private let offeredCompression: Bool
    private let limits: FrameReaderLimits
    private let keepAlive: KeepAlive
    private var closeError: String?

    /// permessage-deflate, when the server accepted the offer.
    public var deflate: PerMessageDeflate? { endpoint?.deflate }

    private init(maxMessageBytes: Int, key: String, seed: UInt64, compression: Bool, keepAlive: KeepAlive) {
        limits = FrameReaderLimits(maxMessageBytes: maxMessageBytes, expectMasked: false)
        offeredCompression = compression
        expectedAccept = Handshake.acceptKey(for: key)
        rng = seed | 1
        self.keepAlive = keepAlive
    }

    /// Starts connecting. Call on `loop.queue`. `sourceAddress` binds the local side (for spreading
    /// many connections over 127.0.0.0/8). A `wss://` URL uses `tls` (one context for many clients),
    /// or a fresh context that verifies against the system's trust store. `compression` offers
    /// permessage-deflate (no context takeover either way, so a loop shares one compressor).
    /// `keepAlive` pings an idle server (default: never; the server pings).
    public static func connect(_ url: WebSocketURL, on loop: Loop, sourceAddress: String? = nil, subprotocols: [String] = [],
                               maxMessageBytes: Int = 16 << 20, tls: TLSContext? = nil, compression: Bool = false,
                               keepAlive: KeepAlive = KeepAlive(pingIntervalMs: 0),
                               delegate: WebSocketClientDelegate?) throws -> WebSocketClient {
        var context: TLSContext? = nil
        if url.secure {
            do { context = try tls ?? TLSContext.client() } catch { throw ClientError.tls("\(error)") }
        }
        let fd: Int32
        do {
            fd = try Dial.tcp(host: url.host, port: url.port, sourceAddress: sourceAddress)
        } catch {
            switch error {
            case .badAddress(let a): throw ClientError.badAddress(a)
            case .connect(let m): throw ClientError.connect(m)
            }
        }

        var seed = UInt64(truncatingIfNeeded: monotonicNs()) ^ UInt64(UInt32(bitPattern: fd)) &* 0x9E37_79B9_7F4A_7C15
        var keyBytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { seed = seed &* 6364136223846793005 &+ 1442695040888963407; keyBytes[i] = UInt8(truncatingIfNeeded: seed >> 33) }
        let key = base64(keyBytes)
        let client = WebSocketClient(maxMessageBytes: maxMessageBytes, key: key, seed: seed, compression: compression, keepAlive: keepAlive)
        client.delegate = delegate
        let c: Connection
        do { c = try loop.adopt(fd: fd, handler: client, tls: context, serverName: url.host) } catch {
            throw error == .tls ? ClientError.tls("\(error)") : ClientError.connect("\(error)")
        }
        client.connection = c
        var req = "GET \(url.path) HTTP/1.1\r\nHost: \(url.host):\(url.port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        req += "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        if !subprotocols.isEmpty { req += "Sec-WebSocket-Protocol: \(subprotocols.joined(separator: ", "))\r\n" }
        if compression { req += "Sec-WebSocket-Extensions: \(DeflateNegotiation.clientOffer)\r\n" }
        req += "\r\n"
        // On a socket still connecting, the write waits in the outbound queue for writability.
        Array(req.utf8).withUnsafeBytes { client.connection.send($0) }
        return client
    }

    // MARK: sending

    public func sendText(_ payload: UnsafeRawBufferPointer) { send(.text, payload) }
    public func sendBinary(_ payload: UnsafeRawBufferPointer) { send(.binary, payload) }
    public func sendText(_ s: String) {
        var s = s
        s.withUTF8 { send(.text, UnsafeRawBufferPointer($0)) }
    }

    private func nextKey() -> UInt32 {
        // xorshift: masking keys need not be cryptographic for a test client, only varied.
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17
        let k = UInt32(truncatingIfNeeded: rng)
        return k == 0 ? 0x5A5A_5A5A : k
    }

    func send(_ op: Opcode, _ payload: UnsafeRawBufferPointer) {
        guard state == .open, endpoint.isOpen else { return }
        let (bytes, rsv1) = endpoint.outgoing(op, payload)
        sendMasked(op, bytes, rsv1: rsv1)
    }

    private func sendMasked(_ op: Opcode, _ payload: UnsafeRawBufferPointer, rsv1: Bool) {
        let key = nextKey()
        let total = FrameEncoder.maxHeaderBytes + 4 + payload.count
        withUnsafeTemporaryAllocation(byteCount: total, alignment: 8) { buf in
            let n = FrameEncoder.writeMaskedFrame(into: buf.baseAddress!, op, payload, key: key, rsv1: rsv1)
            connection.send(UnsafeRawBufferPointer(start: buf.baseAddress, count: n))
        }
    }

    /// Sends close and waits (bounded) for the server's close; the server closes TCP.
    public func close(_ why: CloseReason = .normal) {
        guard state == .open else { if state == .connecting { connection.close() }; return }
        if let until = endpoint.close(why, nowMs: connection.loop.nowMs, perform) { connection.deadlineMs = until }
    }

    private func perform(_ action: WebSocketEndpoint.Action) {
        switch action {
        case .text(let t): delegate?.client(self, text: t)
        case .binary(let b): delegate?.client(self, binary: b)
        case .send(let op, let p): sendMasked(op, p, rsv1: false)
        case .closeTransport: connection.closeAfterFlush()
        }
    }

    // MARK: ConnectionHandler

    public func connectionRead(_ c: Connection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        var offset = 0
        if state == .connecting {
            guard let end = headEnd(bytes) else {
                if bytes.count > 16 * 1024 { fail("handshake response too large") }
                return 0
            }
            guard let deflate = handshake(UnsafeRawBufferPointer(rebasing: bytes[0..<end])) else { return bytes.count }
            endpoint = WebSocketEndpoint(limits: limits, keepAlive: keepAlive, loop: c.loop)
            if let params = deflate { endpoint.enableDeflate(params, isServer: false, policy: DeflatePolicy()) }
            c.deadlineMs = endpoint.firstDeadline(nowMs: c.loop.nowMs) ?? 0
            state = .open
            offset = end + 4
            delegate?.clientOpened(self)
            guard state == .open else { return bytes.count }
        }
        return offset + endpoint.read(UnsafeMutableRawBufferPointer(rebasing: bytes[offset...]), perform)
    }

    /// Checks the server's answer. Nil: refused (the connection is failing); else the negotiated
    /// permessage-deflate parameters, if any.
    private func handshake(_ headBytes: UnsafeRawBufferPointer) -> DeflateParameters?? {
        let head = String(decoding: headBytes, as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 101") else {
            fail("handshake refused: " + String(head.prefix(while: { $0 != "\r" })))
            return nil
        }
        var accept: String?
        var extensions: [String] = []
        for line in head.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: " \t")
            if name == "sec-websocket-accept" { accept = value }
            if name == "sec-websocket-protocol" { subprotocol = value }
            if name == "sec-websocket-extensions" { extensions.append(value) }
        }
        guard let expectedAccept else { fail("SHA-1 unavailable in this OpenSSL: cannot check the handshake"); return nil }
        guard accept == expectedAccept else { fail("bad Sec-WebSocket-Accept"); return nil }
        guard !extensions.isEmpty else { return .some(nil) }
        guard offeredCompression else { fail("server answered an extension that was not offered"); return nil }
        switch DeflateNegotiation.clientAccept(extensions) {
        case .failure(let why):
            fail("bad permessage-deflate answer: \(why)")
            return nil
        case .success(let params):
            return .some(params)
        }
    }

    private func fail(_ why: String) {
        closeError = why
        connection.close(.reset)
    }

    private func headEnd(_ b: UnsafeMutableRawBufferPointer) -> Int? {
        guard b.count >= 4 else { return nil }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return i }
        return nil
    }

    public func connectionDeadline(_ c: Connection, nowMs: UInt64) {
        guard state == .open else { return c.close(.timeout) }
        switch endpoint.tick(nowMs: nowMs, lastReadMs: c.lastReadMs, perform) {
        case .drop: closeError = closeError ?? "the server stopped answering"; c.close(.timeout)
        case .wait(let until): c.deadlineMs = until
        }
    }

    public func connectionOverflow(_ c: Connection) { fail("send queue overflow") }

    public func connectionClosed(_ c: Connection) {
        let wasOpen = state
        state = .closed
        var err = closeError
        if err == nil, let f = endpoint?.failure { err = "server broke the protocol (\(f))" }
        if err == nil, c.closeReason == .tls { err = "TLS: " + (c.tlsFailure ?? "handshake failed") }
        if err == nil, endpoint?.peerClosed != true, endpoint?.closeSent != true {
            err = wasOpen == .connecting ? "connection failed" : "connection lost (\(c.closeReason))"
        }
        delegate?.clientClosed(self, code: endpoint?.peerCloseCode, error: err)
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}

private let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

func base64(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    var i = 0
    while i + 3 <= bytes.count {
        let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
        out += [alphabet[Int(v >> 18)], alphabet[Int((v >> 12) & 63)], alphabet[Int((v >> 6) & 63)], alphabet[Int(v & 63)]]
        i += 3
    }
    let rem = bytes.count - i
    if rem == 1 {
        let v = UInt32(bytes[i]) << 16
        out += [alphabet[Int(v >> 18)], alphabet[Int((v >> 12) & 63)], 61, 61]
    } else if rem == 2 {
        let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
        out += [alphabet[Int(v >> 18)], alphabet[Int((v >> 12) & 63)], alphabet[Int((v >> 6) & 63)], 61]
    }
    return String(decoding: out, as: UTF8.self)
}

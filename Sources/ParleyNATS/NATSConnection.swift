import Foundation
import ParleyTransport

/// What can go wrong for a caller of `NATSConnection`.
public enum NATSError: Error, Equatable, Sendable {
    /// The handshake (INFO → CONNECT → PING → PONG) has not finished, or the connection is gone.
    case notConnected
    case closed(String)
    /// A request got no reply within its time.
    case timeout
    /// A request's subject has no subscriber (the server's 503 status).
    case noResponders
    case encode(ClientOps.EncodeError)
    /// A message larger than the server's `max_payload`.
    case tooLarge(bytes: Int, limit: Int)
}

/// One client connection to a NATS server on a Parley loop (non-blocking socket, Dispatch sources):
/// the handshake, PING/PONG, subscriptions, publish, and request/reply through one wildcard inbox.
/// Loop-confined: every method runs on `loop.queue`, and so does every callback.
public final class NATSConnection: ConnectionHandler {
    public let loop: Loop
    public let name: String
    public private(set) var connection: Connection!
    /// The server's INFO, once received.
    public private(set) var serverInfo: [String: Any] = [:]
    public private(set) var isReady = false
    public var maxPayload: Int { (serverInfo["max_payload"] as? Int) ?? 1 << 20 }

    private var parser: ServerParser
    private var onReady: ((NATSConnection) -> Void)?
    private var onClose: ((NATSConnection, String) -> Void)?
    private var subs: [String: (NATSMessage) -> Void] = [:]
    private var nextSid = 1
    private let inboxPrefix: String
    private var inboxSid: String?
    private var requests: [String: (deadlineMs: UInt64, reply: (Result<NATSMessage, NATSError>) -> Void)] = [:]
    private var nextRequest = 1
    private var closeReason = "closed"

    private init(loop: Loop, name: String, limits: NATSLimits) {
        self.loop = loop
        self.name = name
        parser = ServerParser(limits: limits)
        var g = SystemRandomNumberGenerator()
        inboxPrefix = "_INBOX.\(String(g.next() as UInt64, radix: 36))\(String(g.next() as UInt64, radix: 36))"
    }

    /// Starts connecting to `host:port`. Call on `loop.queue`. `onReady` runs once the server has
    /// answered the handshake's PING; `onClose` once, when the connection ends (with why).
    public static func connect(host: String, port: Int, on loop: Loop, name: String = "parley", limits: NATSLimits = NATSLimits(),
                               onReady: @escaping (NATSConnection) -> Void, onClose: @escaping (NATSConnection, String) -> Void) throws -> NATSConnection {
        let fd: Int32
        do { fd = try Dial.tcp(host: host, port: port) } catch { throw NATSError.closed("\(error)") }
        let n = NATSConnection(loop: loop, name: name, limits: limits)
        n.onReady = onReady
        n.onClose = onClose
        do { n.connection = try loop.adopt(fd: fd, handler: n) } catch { throw NATSError.closed("\(error)") }
        // A server that takes the connection but never finishes the handshake is given up on.
        // Once connected, the connection's deadline is the earliest request's.
        n.connection.deadlineMs = loop.nowMs + NATSConnection.handshakeTimeoutMs
        return n
    }

    // MARK: use

    /// Subscribes; `handler` gets every message on `subject` (wildcards allowed). Returns the sid.
    @discardableResult
    public func subscribe(_ subject: String, queue: String? = nil, handler: @escaping (NATSMessage) -> Void) throws(NATSError) -> String {
        guard isReady else { throw .notConnected }
        let sid = String(nextSid)
        nextSid += 1
        do { send(try ClientOps.sub(subject: subject, queue: queue, sid: sid)) } catch { throw .encode(error) }
        subs[sid] = handler
        return sid
    }

    public func unsubscribe(_ sid: String) {
        guard subs.removeValue(forKey: sid) != nil, isReady else { return }
        if let bytes = try? ClientOps.unsub(sid: sid) { send(bytes) }
    }

    public func publish(_ subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: [UInt8]) throws(NATSError) {
        guard isReady else { throw .notConnected }
        guard payload.count <= maxPayload else { throw .tooLarge(bytes: payload.count, limit: maxPayload) }
        do { send(try ClientOps.pub(subject: subject, replyTo: replyTo, headers: headers, payload: payload)) } catch { throw .encode(error) }
    }

    /// Publishes with a fresh reply subject and hands `reply` the first answer, or `.timeout`,
    /// `.noResponders`, `.closed`. Exactly one call of `reply` per request.
    public func request(_ subject: String, headers: NATSHeaders? = nil, payload: [UInt8], timeoutMs: UInt64 = 5000,
                        reply: @escaping (Result<NATSMessage, NATSError>) -> Void) {
        do throws(NATSError) {
            if inboxSid == nil {
                inboxSid = try subscribe(inboxPrefix + ".*") { [unowned self] m in answered(m) }
            }
            let token = String(nextRequest)
            nextRequest += 1
            try publish(subject, replyTo: inboxPrefix + "." + token, headers: headers, payload: payload)
            // Loop-confined: the answer cannot be read before this returns, so registering after
            // the publish is safe.
            requests[token] = (loop.nowMs + timeoutMs, reply)
            armDeadline()
        } catch {
            reply(.failure(error))
        }
    }

    public func close() { connection?.close() }

    // MARK: ConnectionHandler

    public func connectionRead(_ c: Connection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        switch parser.parse(UnsafeRawBufferPointer(bytes)) {
        case .failure(let e):
            closeReason = "protocol error: \(e)"
            c.close()
        case .success(let ops):
            for op in ops { handle(op) }
        }
        return bytes.count
    }

    static let handshakeTimeoutMs: UInt64 = 5000

    public func connectionDeadline(_ c: Connection, nowMs: UInt64) {
        guard isReady else {
            closeReason = "no handshake within \(NATSConnection.handshakeTimeoutMs) ms"
            c.close(.timeout)
            return
        }
        expireRequests(nowMs: nowMs)
        armDeadline()
    }

    public func connectionOverflow(_ c: Connection) {
        closeReason = "output queue overflow (the server does not read)"
        c.close()
    }

    public func connectionClosed(_ c: Connection) {
        isReady = false
        let pending = requests
        requests = [:]
        for (_, r) in pending { r.reply(.failure(.closed(closeReason))) }
        subs = [:]
        onReady = nil
        let done = onClose
        onClose = nil
        done?(self, closeReason)
    }

    // MARK: internals

    private func handle(_ op: ServerOp) {
        switch op {
        case .info(let json):
            let first = serverInfo.isEmpty
            serverInfo = ((try? JSONSerialization.jsonObject(with: Data(json))) as? [String: Any]) ?? ["invalid": true]
            guard first else { return }  // a later INFO updates the cluster's URLs only
            let options: [String: Any] = ["verbose": false, "pedantic": false, "headers": true, "no_responders": true,
                                          "protocol": 1, "name": name, "lang": "swift", "version": "parley"]
            let body = (try? JSONSerialization.data(withJSONObject: options, options: [.sortedKeys])) ?? Data("{}".utf8)
            send(ClientOps.connect(json: Array(body)) + ClientOps.ping)
        case .pong:
            if !isReady, !serverInfo.isEmpty {
                isReady = true
                connection.deadlineMs = 0
                onReady?(self)
                onReady = nil
            }
        case .ping:
            send(ClientOps.pong)
        case .ok:
            break
        case .err(let text):
            closeReason = "server error: \(text)"
            if !isReady { connection.close() }  // the server closes after most errors; a refused handshake always
        case .msg(let m):
            subs[m.sid]?(m)
        }
    }

    private func answered(_ m: NATSMessage) {
        guard let token = m.subject.split(separator: ".").last.map(String.init), let r = requests.removeValue(forKey: token) else { return }
        armDeadline()
        if m.headers?.status == 503 { r.reply(.failure(.noResponders)) } else { r.reply(.success(m)) }
    }

    /// The connection's deadline follows the earliest request still waiting (0: none).
    private func armDeadline() {
        guard isReady else { return }
        connection.deadlineMs = requests.values.map(\.deadlineMs).min() ?? 0
    }

    private func expireRequests(nowMs: UInt64) {
        for (token, r) in requests where r.deadlineMs <= nowMs {
            requests[token] = nil
            r.reply(.failure(.timeout))
        }
    }

    private func send(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { connection.send($0) }
    }
}

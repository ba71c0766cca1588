import Dispatch
import ParleyTransport

/// A NATS client that stays connected: it dials the servers of a cluster in turn, with jittered
/// exponential backoff between failed attempts, and after every (re)connect subscribes again to
/// everything it was subscribed to. Publishes and requests made while it is down fail with
/// `.notConnected` at once: the caller decides what to retry (JetStream appends are retried
/// with the same `Nats-Msg-Id`). Loop-confined, like `NATSConnection`.
/// Loop-confined (`@unchecked Sendable`: its state is touched only on its loop's queue, which its
/// timers and callbacks hop onto first).
public final class NATSClient: @unchecked Sendable {
    public struct Server: Equatable, Sendable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) { self.host = host; self.port = port }
        public var description: String { "nats://\(host):\(port)" }

        /// `nats://host:port` (the port defaults to 4222).
        public init?(url: String) {
            guard url.hasPrefix("nats://") else { return nil }
            let rest = url.dropFirst("nats://".count)
            let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
            guard !parts.isEmpty, !parts[0].isEmpty, parts.count <= 2 else { return nil }
            host = String(parts[0])
            if parts.count == 2 {
                guard let p = Int(parts[1]), (1...65535).contains(p) else { return nil }
                port = p
            } else {
                port = 4222
            }
        }
    }

    public enum Event: Equatable, Sendable {
        case connected(Server)
        case disconnected(Server, reason: String)
    }

    public let loop: Loop
    public let servers: [Server]
    public let name: String
    public private(set) var current: NATSConnection?
    public var isConnected: Bool { current?.isReady ?? false }
    /// Connections made, the first included.
    public private(set) var connects = 0

    /// Told of every connect and disconnect (on the loop).
    public var onEvent: (Event) -> Void
    private var subscriptions: [Int: (subject: String, queue: String?, handler: (NATSMessage) -> Void)] = [:]
    private var sids: [Int: String] = [:]  // subscription → sid on the current connection
    private var nextSubscription = 1
    private var nextServer = 0
    private var failures = 0
    private var stopped = false
    private var up = false
    private var rng = SystemRandomNumberGenerator()

    /// Backoff after consecutive failed attempts: 50 ms doubling to at most 2 s, ± 50 %.
    static func backoffMs(failures: Int, unit: Double) -> Int {
        let base = min(2000.0, 50.0 * Double(1 << min(failures, 6)))
        return Int(base * (0.5 + unit))
    }

    public init(servers: [Server], on loop: Loop, name: String = "parley", onEvent: @escaping (Event) -> Void = { _ in }) {
        precondition(!servers.isEmpty, "a NATS client needs at least one server")
        self.servers = servers
        self.loop = loop
        self.name = name
        self.onEvent = onEvent
    }

    /// Starts connecting. Call on `loop.queue`.
    public func start() { dial() }

    /// Closes the connection and stops reconnecting.
    public func stop() {
        stopped = true
        current?.close()
    }

    /// Subscribes now if connected, and again after every reconnect. Returns a handle for `unsubscribe`.
    @discardableResult
    public func subscribe(_ subject: String, queue: String? = nil, handler: @escaping (NATSMessage) -> Void) throws(NATSError) -> Int {
        // A bad subject is refused now, not at some later reconnect.
        do {
            try ClientOps.check(subject)
            if let queue { try ClientOps.check(queue) }
        } catch { throw .encode(error) }
        let id = nextSubscription
        nextSubscription += 1
        subscriptions[id] = (subject, queue, handler)
        if let c = current, c.isReady { sids[id] = try c.subscribe(subject, queue: queue, handler: handler) }
        return id
    }

    public func unsubscribe(_ id: Int) {
        subscriptions[id] = nil
        if let sid = sids.removeValue(forKey: id) { current?.unsubscribe(sid) }
    }

    /// Runs `body` with the publishes it makes written together (one syscall for the batch).
    public func batch(_ body: () -> Void) {
        if let c = current, c.isReady { c.connection.writingTogether(body) } else { body() }
    }

    public func publish(_ subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: [UInt8]) throws(NATSError) {
        guard let c = current, c.isReady else { throw .notConnected }
        try c.publish(subject, replyTo: replyTo, headers: headers, payload: payload)
    }

    public func request(_ subject: String, headers: NATSHeaders? = nil, payload: [UInt8], timeoutMs: UInt64 = 5000,
                        reply: @escaping (Result<NATSMessage, NATSError>) -> Void) {
        guard let c = current, c.isReady else { return reply(.failure(.notConnected)) }
        c.request(subject, headers: headers, payload: payload, timeoutMs: timeoutMs, reply: reply)
    }

    // MARK: internals

    private func dial() {
        guard !stopped else { return }
        let server = servers[nextServer % servers.count]
        nextServer += 1
        do {
            current = try NATSConnection.connect(host: server.host, port: server.port, on: loop, name: name,
                onReady: { [weak self] c in self?.ready(c, server) },
                onClose: { [weak self] c, why in self?.closed(c, server, why) })
        } catch {
            retry()
        }
    }

    private func ready(_ c: NATSConnection, _ server: Server) {
        guard c === current else { return }
        failures = 0
        connects += 1
        up = true
        sids = [:]
        for (id, s) in subscriptions.sorted(by: { $0.key < $1.key }) {
            sids[id] = try? c.subscribe(s.subject, queue: s.queue, handler: s.handler)
        }
        onEvent(.connected(server))
    }

    private func closed(_ c: NATSConnection, _ server: Server, _ why: String) {
        guard c === current else { return }
        current = nil
        sids = [:]
        if up { up = false; onEvent(.disconnected(server, reason: why)) }
        retry()
    }

    private func retry() {
        guard !stopped else { return }
        failures += 1
        // Try the next server at once after a drop; back off once a whole round has failed.
        let delay = failures < servers.count ? 0 : Self.backoffMs(failures: failures - servers.count, unit: Double(rng.next() >> 11) / Double(1 << 53))
        loop.queue.asyncAfter(deadline: .now() + .milliseconds(delay)) { [weak self] in self?.dial() }
    }
}

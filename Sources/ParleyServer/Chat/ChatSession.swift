import Dispatch
import Foundation
import ParleyChat
import ParleyLog
import ParleyProtocol
import ParleyTransport
import ParleyWebSocket

/// One `/v1/ws` connection speaking protocol v1: hello and token check, then requests handed to
/// the switchboard or the conversation's partition. Lives on its connection's loop.
/// Loop-confined like its WebSocket (`@unchecked Sendable`: timers and answers from the chat
/// service hop onto the loop's queue before touching it).
final class ChatSession: WebSocketDelegate, @unchecked Sendable {
    enum State { case awaitingHello, verifying, joining, ready, closed }

    static let helloTimeoutMs = 10_000
    /// Requests a client may send before its welcome arrives (pipelined after hello).
    static let maxEarlyFrames = 256
    /// Token bucket per session: sustained rate and burst.
    static let ratePerSecond = 100.0
    static let burst = 200.0
    /// Consecutive refusals after which the session is closed (1008).
    static let abuseLimit = 200

    private let service: ChatService
    private let tokens: TokenService
    private let orders: OrderStore
    private(set) var state = State.awaitingHello
    private var early: [(ClientFrame, [UInt8])] = []
    private var ref: SessionRef?
    private var unknownResume: [String] = []
    private weak var ws: WebSocketSession?
    private var allowance = ChatSession.burst
    private var lastRefillMs: UInt64 = 0
    private var refusedInARow = 0

    init(service: ChatService, tokens: TokenService, orders: OrderStore) {
        self.service = service
        self.tokens = tokens
        self.orders = orders
    }

    /// Called once the WebSocket exists: starts the hello deadline.
    func attach(_ ws: WebSocketSession) {
        self.ws = ws
        lastRefillMs = ws.connection.loop.nowMs
        ws.connection.loop.queue.asyncAfter(deadline: .now() + .milliseconds(ChatSession.helloTimeoutMs)) { [weak self] in
            guard let self, self.state == .awaitingHello || self.state == .verifying else { return }
            self.unauthorized("no hello within \(ChatSession.helloTimeoutMs / 1000) s")
        }
    }

    // MARK: WebSocketDelegate

    func webSocket(_ ws: WebSocketSession, text: UnsafeRawBufferPointer) {
        guard state != .closed else { return }
        let parsed = ClientFrames.parse(text)
        switch state {
        case .awaitingHello:
            switch parsed {
            case .success(let f):
                guard case .hello(let token, let resume, let unknown) = f.request else {
                    return unauthorized("the first frame must be hello")
                }
                state = .verifying
                unknownResume = unknown
                let loop = ws.connection.loop
                let weakSelf = WeakRef(self)
                tokens.verify(token) { result in
                    loop.queue.async { weakSelf.value?.verified(result, resume: resume) }
                }
            case .failure(let e) where e.code == .unauthorized:
                unauthorized(e.message)
            case .failure(let e):
                reply(ServerFrames.error(ref: e.ref, e.code, e.message))
            }
        case .verifying, .joining:
            guard case .success(let f) = parsed else { return refuse(parsed) }
            guard early.count < ChatSession.maxEarlyFrames else { return ws.fail(.tooManyEarlyRequests) }
            early.append((f, service.cluster == nil ? [] : Array(text)))
        case .ready:
            guard case .success(let f) = parsed else { return refuse(parsed) }
            // Cluster mode forwards some requests to the writer as the client sent them.
            dispatch(f, raw: service.cluster == nil ? [] : Array(text))
        case .closed:
            break
        }
    }

    func webSocket(_ ws: WebSocketSession, binary: UnsafeRawBufferPointer) {
        ws.close(.binaryNotSupported)
    }

    func webSocketClosed(_ ws: WebSocketSession) {
        let wasIn = ref != nil && state != .closed
        state = .closed
        early = []
        if wasIn, let r = ref { service.toSwitchboard(.sessionClosed(r)) }
        ref = nil
    }

    // MARK: session start

    private func verified(_ result: Result<ClientClaims, Error>, resume: [ConversationID: UInt64]) {
        guard state == .verifying, let ws, ws.isOpen else { return }
        switch result {
        case .failure(let e):
            unauthorized(ChatSession.describe(e))
        case .success(let claims):
            let name = claims.name.flatMap { $0.isEmpty ? nil : $0 } ?? claims.sub.value
            let user = Person(id: claims.sub.value, role: claims.role == .agent ? .agent : .customer, name: name)
            let r = SessionRef(id: ChatSession.sessionID(), user: user, loop: ws.connection.loop, ws: ws, chat: self)
            ref = r
            state = .joining
            service.toSwitchboard(.sessionOpened(r, user, capacity: claims.capacity ?? TokenService.defaultCapacity, resume: resume))
        }
    }

    /// The welcome went out (on this loop): requests sent meanwhile run now, in order.
    func welcomed() {
        guard state == .joining else { return }
        state = .ready
        for c in unknownResume { reply(ServerFrames.resumeFailed(c, reason: "not_found")) }
        unknownResume = []
        let pending = early
        early = []
        for (f, raw) in pending where state == .ready { dispatch(f, raw: raw) }
    }

    // MARK: requests

    private func dispatch(_ f: ClientFrame, raw: [UInt8]) {
        guard let me = ref else { return }
        guard admit() else {
            return reply(ServerFrames.error(ref: f.ref, .rateLimited, "slow down: at most \(Int(ChatSession.ratePerSecond)) requests/s"))
        }
        let user = me.user
        if f.request.isAgentOnly, user.role != .agent {
            return reply(ServerFrames.error(ref: f.ref, .forbidden, "that request is for agents"))
        }
        if case .hello = f.request { return reply(ServerFrames.error(ref: f.ref, .invalidRequest, "this session already said hello")) }
        if let cluster = service.cluster, cluster.forwards(f.request) {
            return cluster.forward(raw, f, from: me)
        }
        if case .typing(let c, let active) = f.request { service.cluster?.typing(c, user, active: active) }
        let weakSelf = WeakRef(self)
        service.run(f, from: me, orders: orders) { payload in me.loop.queue.async { weakSelf.value?.reply(payload) } }
    }

    private func refuse(_ parsed: Result<ClientFrame, FrameError>) {
        guard case .failure(let e) = parsed else { return }
        reply(ServerFrames.error(ref: e.ref, e.code, e.message))
        countRefusal()
    }

    /// Token bucket; persistent abuse closes the session with 1008.
    private func admit() -> Bool {
        guard let ws else { return false }
        let now = ws.connection.loop.nowMs
        allowance = min(ChatSession.burst, allowance + Double(now &- lastRefillMs) * ChatSession.ratePerSecond / 1000)
        lastRefillMs = now
        if allowance >= 1 {
            allowance -= 1
            refusedInARow = 0
            return true
        }
        countRefusal()
        return false
    }

    private func countRefusal() {
        refusedInARow += 1
        if refusedInARow >= ChatSession.abuseLimit { ws?.close(.tooManyRefused) }
    }

    private func reply(_ payload: [UInt8]) {
        payload.withUnsafeBytes { ws?.sendText($0) }
    }

    private func unauthorized(_ why: String) {
        reply(ServerFrames.error(ref: nil, .unauthorized, why))
        state = .closed
        ws?.close(.unauthorized)
    }

    static func describe(_ e: Error) -> String {
        let s = "\(e)".lowercased()
        if s.contains("exp") { return "token expired" }
        if s.contains("signature") { return "token signature does not verify" }
        return "invalid token"
    }

    static func sessionID() -> String {
        var g = SystemRandomNumberGenerator()
        let a = g.next() as UInt64, b = g.next() as UInt64
        return String(a, radix: 16).leftPadded(16) + String(b, radix: 16).leftPadded(16)
    }
}

/// A weak reference that may cross queues; dereferenced only on the owner's loop.
struct WeakRef<T: AnyObject>: @unchecked Sendable {
    weak var value: T?
    init(_ v: T) { value = v }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

import Atomics
import Foundation
import Logging
import ParleyChat
import ParleyLog
import ParleyNATS
import ParleyProtocol
import ParleyTransport

/// A request another node forwarded to this writer: its one reply goes back to that node's
/// request inbox (none for requests without `ref`).
final class RemoteRequest: @unchecked Sendable {
    let node: String
    let session: String
    let replyTo: String?
    let loop: Loop
    private let out: NATSBatcher
    private let answered = ManagedAtomic<Bool>(false)

    init(node: String, session: String, replyTo: String?, out: NATSBatcher) {
        self.node = node; self.session = session; self.replyTo = replyTo; self.out = out; self.loop = out.client.loop
    }

    func answer(_ r: ChatReply) {
        var seq: UInt64 = 0
        var conversation: ConversationID? = nil
        switch r {
        case .ack(_, let c, let s, _, _): conversation = c; seq = s ?? 0
        case .opened(_, let v): conversation = v.id; seq = v.lastSeq
        case .error: break
        }
        answer(ServerFrames.reply(r), conversation: conversation, seq: seq)
    }

    /// Sends the reply frame once; the asking node holds it until it has applied `seq`.
    func answer(_ frame: [UInt8], conversation: ConversationID? = nil, seq: UInt64 = 0) {
        guard let replyTo, answered.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        var h = NATSHeaders()
        if let conversation, seq > 0 { h.fields = [("Parley-Conversation", conversation.description), ("Parley-Seq", String(seq))] }
        let headers = h.fields.isEmpty ? nil : h
        out.run { [out] in try? out.client.publish(replyTo, headers: headers, payload: frame) }
    }
}

/// A request forwarded to the writer: who sent it (node, session, user) and the client's own frame.
/// Length-prefixed fields (u16 little-endian) then the frame: no JSON on either side of the hop
/// (a profile had building and reading a JSON envelope at a fifth of a follower's CPU).
struct ForwardEnvelope: Equatable {
    var node: String
    var session: String
    var user: Person
    var frame: [UInt8]

    var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(frame.count + 96)
        for field in [node, session, user.id, user.role.rawValue, user.name] {
            let b = Array(field.utf8.prefix(Int(UInt16.max)))
            out.append(UInt8(b.count & 0xFF)); out.append(UInt8(b.count >> 8))
            out += b
        }
        return out + frame
    }

    init(node: String, session: String, user: Person, frame: [UInt8]) {
        self.node = node; self.session = session; self.user = user; self.frame = frame
    }

    /// Nil for anything that is not one (cut short, an unknown role).
    init?(_ bytes: [UInt8]) {
        var i = 0
        var fields: [String] = []
        for _ in 0..<5 {
            guard i + 2 <= bytes.count else { return nil }
            let n = Int(bytes[i]) | Int(bytes[i + 1]) << 8
            i += 2
            guard i + n <= bytes.count else { return nil }
            fields.append(String(decoding: bytes[i..<(i + n)], as: UTF8.self))
            i += n
        }
        guard let role = ChatRole(rawValue: fields[3]) else { return nil }
        self.init(node: fields[0], session: fields[1], user: Person(id: fields[2], role: role, name: fields[4]), frame: Array(bytes[i...]))
    }
}

/// Cluster mode's chat plumbing on NATS: requests forwarded to the writer and its replies; events
/// other nodes appended, handed to the partitions; typing and each node's users (presence,
/// agents' room), which are never stored. Subjects: `<prefix>.rpc.requests` and
/// `<prefix>.rpc.orders` (the writer only), `<prefix>.typing`, `<prefix>.users` (everyone).
final class ClusterBridge: @unchecked Sendable {
    let log: ClusterLog
    let node: String
    private let service: ChatService
    private let orders: OrderStore
    private let logger: Logger
    private let client: NATSClient
    private let out: NATSBatcher
    private var loop: Loop { client.loop }
    private let prefix: String
    /// Forwarded requests give up after this (the writer's append timeout and a failover's worth).
    let forwardTimeoutMs: UInt64
    private let roleBox = ManagedAtomic<Int>(0)  // 1: follower (forwards)
    private var writerSubs: [Int] = []
    private let registry = NSLock()
    private var welcomedByUser: [String: [SessionRef]] = [:]
    private var usersDirty = false

    init(log: ClusterLog, service: ChatService, orders: OrderStore, loop: Loop, logger: Logger) {
        self.log = log
        self.node = log.config.node
        self.service = service
        self.orders = orders
        self.logger = logger
        prefix = String(log.config.subject.split(separator: ".").first ?? "parley")
        forwardTimeoutMs = log.config.appendTimeoutMs + 3000
        client = NATSClient(servers: log.config.servers, on: loop, name: "parley-\(log.config.node)-chat")
        out = NATSBatcher(client: client)
        roleBox.store(1, ordering: .relaxed)
    }

    /// Wires everything; call before the log's `resume()`.
    func start() {
        service.toSwitchboard(.decides(false))
        log.onApplied = { [weak self] r in self?.applied(r) }
        log.onRole = { [weak self] role in self?.roleChanged(role) }
        orders.forward = { [weak self] rec, done in self?.forwardOrder(rec, done) }
        loop.queue.async { [self] in
            _ = try? client.subscribe("\(prefix).typing") { [weak self] m in self?.remoteTyping(m) }
            _ = try? client.subscribe("\(prefix).users") { [weak self] m in self?.remoteUsers(m) }
            client.start()
            heartbeat()
        }
    }

    func stop() { loop.queue.sync { client.stop() } }

    // MARK: this node's sessions

    var isFollower: Bool { roleBox.load(ordering: .relaxed) == 1 }

    /// Requests only the writer can carry out (they append, or route).
    func forwards(_ r: ClientRequest) -> Bool {
        guard isFollower else { return false }
        switch r {
        case .open, .send, .read, .claim, .transfer, .resolve, .csat: return true
        case .hello, .typing, .history, .agentStatus: return false
        }
    }

    func welcomed(_ s: SessionRef) {
        registry.lock(); welcomedByUser[s.user.id, default: []].append(s); registry.unlock()
        usersChanged()
    }

    func closed(_ s: SessionRef) {
        registry.lock()
        welcomedByUser[s.user.id]?.removeAll { $0 === s }
        if welcomedByUser[s.user.id]?.isEmpty == true { welcomedByUser[s.user.id] = nil }
        registry.unlock()
        usersChanged()
    }

    private func sessions(of user: String) -> [SessionRef] {
        registry.lock(); defer { registry.unlock() }
        return welcomedByUser[user] ?? []
    }

    /// Sends `raw` (the client's frame) to the writer; its reply comes back to `me` once this node
    /// has the event it acknowledges.
    func forward(_ raw: [UInt8], _ f: ClientFrame, from me: SessionRef) {
        let payload = ForwardEnvelope(node: node, session: me.id, user: me.user, frame: raw).encoded
        let subject = "\(prefix).rpc.requests"
        let service = self.service, timeout = forwardTimeoutMs
        out.run { [client] in
            guard let ref = f.ref else { try? client.publish(subject, payload: payload); return }
            client.request(subject, payload: payload, timeoutMs: timeout) { r in
                switch r {
                case .success(let m):
                    if let c = m.headers?["Parley-Conversation"].flatMap(ConversationID.init), let seq = m.headers?["Parley-Seq"].flatMap({ UInt64($0) }) {
                        service.toPartition(c, .heldReply(me, m.payload, c, seq: seq))
                    } else {
                        me.send(m.payload)
                    }
                case .failure(let e):
                    me.send(ServerFrames.error(ref: ref, .unavailable, "the cluster's writer did not answer (\(e)): nothing was stored by this request; retry"))
                }
            }
        }
    }

    func typing(_ c: ConversationID, _ user: Person, active: Bool) {
        let o: [String: Any] = ["node": node, "conversation": c.description, "id": user.id, "role": user.role.rawValue, "name": user.name, "active": active]
        guard let body = try? JSONSerialization.data(withJSONObject: o) else { return }
        out.run { [client, prefix] in try? client.publish("\(prefix).typing", payload: Array(body)) }
    }

    /// Session opened, closed, or an agent's status set: the other nodes hear of it soon.
    func usersChanged() {
        loop.queue.async { [self] in
            guard !usersDirty else { return }
            usersDirty = true
            loop.queue.asyncAfter(deadline: .now() + .milliseconds(20)) { [self] in publishUsers() }
        }
    }

    // MARK: internals

    private func heartbeat() {
        publishUsers()
        loop.queue.asyncAfter(deadline: .now() + .milliseconds(1000)) { [weak self] in self?.heartbeat() }
    }

    private func publishUsers() {
        usersDirty = false
        service.localUsers { [weak self] users in
            guard let self else { return }
            let list: [[String: Any]] = users.map {
                var o: [String: Any] = ["id": $0.person.id, "role": $0.person.role.rawValue, "name": $0.person.name,
                                        "sessions": $0.sessions, "capacity": $0.capacity, "statusAt": $0.statusAtMs]
                if let s = $0.status { o["status"] = s.rawValue }
                return o
            }
            guard let body = try? JSONSerialization.data(withJSONObject: ["node": self.node, "users": list]) else { return }
            self.loop.queue.async { try? self.client.publish("\(self.prefix).users", payload: Array(body)) }
        }
    }

    private func remoteUsers(_ m: NATSMessage) {
        guard let o = (try? JSONSerialization.jsonObject(with: Data(m.payload))) as? [String: Any],
              let from = o["node"] as? String, from != node, let list = o["users"] as? [[String: Any]] else { return }
        let users: [RemoteUser] = list.compactMap { u in
            guard let p = Self.person(u), let n = u["sessions"] as? Int else { return nil }
            return RemoteUser(person: p, sessions: n, capacity: u["capacity"] as? Int ?? 5, status: (u["status"] as? String).flatMap(AgentStatus.init),
                              statusAtMs: (u["statusAt"] as? NSNumber)?.int64Value ?? 0)
        }
        logger.debug("users of another node", metadata: ["cluster.from": "\(from)", "users": "\(users.map { "\($0.person.id):\($0.sessions):\($0.status?.rawValue ?? "-")@\($0.statusAtMs)" })"])
        service.toSwitchboard(.remoteUsers(node: from, users))
    }

    private func remoteTyping(_ m: NATSMessage) {
        guard let o = (try? JSONSerialization.jsonObject(with: Data(m.payload))) as? [String: Any],
              let from = o["node"] as? String, from != node, let c = (o["conversation"] as? String).flatMap(ConversationID.init),
              let p = Self.person(o), let active = o["active"] as? Bool else { return }
        service.toPartition(c, .remoteTyping(c, p, active: active))
    }

    static func person(_ o: [String: Any]) -> Person? {
        guard let id = o["id"] as? String, let role = (o["role"] as? String).flatMap(ChatRole.init) else { return nil }
        return Person(id: id, role: role, name: o["name"] as? String ?? id)
    }

    /// A record another node appended (on the copy's writer thread, in log order).
    private func applied(_ r: Record) {
        switch r.type {
        case .order:
            orders.applied(r)
        case .readMarker:
            guard let (user, seq) = ReadMarkerCodec.decode(r.payload) else { return }
            service.toPartition(r.conversation, .committedRead(r.conversation, user: user, seq: seq))
        default:
            guard r.sequence > 0, !r.conversation.isNone, let e = ServerFrames.decodeEvent(r.payload) else { return }
            var members: [SessionRef] = []
            switch e.event {
            case .created(let c, _): members = sessions(of: c.id)
            case .assigned(let a): members = sessions(of: a.id)
            case .transferred(_, let to): members = to.map { sessions(of: $0.id) } ?? []
            default: break
            }
            service.toPartition(r.conversation, .committed(e, payload: r.payload, members: members))
        }
    }

    private func roleChanged(_ role: ReplicaCore.Role) {
        roleBox.store(role == .follower ? 1 : 0, ordering: .relaxed)
        service.toSwitchboard(.decides(role == .writer))
        if role == .follower {
            for s in writerSubs { client.unsubscribe(s) }
            writerSubs = []
        } else if writerSubs.isEmpty {
            if let a = try? client.subscribe("\(prefix).rpc.requests", handler: { [weak self] m in self?.serveRequest(m) }) { writerSubs.append(a) }
            if let b = try? client.subscribe("\(prefix).rpc.orders", handler: { [weak self] m in self?.serveOrder(m) }) { writerSubs.append(b) }
        }
    }

    /// On the writer: runs another node's request as that node's session.
    private func serveRequest(_ m: NATSMessage) {
        guard let e = ForwardEnvelope(m.payload) else { return }
        let rr = RemoteRequest(node: e.node, session: e.session, replyTo: m.replyTo, out: out)
        let me = SessionRef(remote: rr, user: e.user)
        switch e.frame.withUnsafeBytes({ ClientFrames.parse($0) }) {
        case .success(let f): service.run(f, from: me, orders: orders) { rr.answer($0) }
        case .failure(let e): rr.answer(ServerFrames.error(ref: e.ref, e.code, e.message))
        }
    }

    // MARK: orders

    private func forwardOrder(_ rec: OrderRecord, _ done: @escaping @Sendable (Result<Bool, LogError>) -> Void) {
        let log = self.log, subject = "\(prefix).rpc.orders", payload = rec.encode(), timeout = forwardTimeoutMs
        loop.queue.async { [client] in
            client.request(subject, payload: payload, timeoutMs: timeout) { r in
                guard case .success(let m) = r, let s = String(bytes: m.payload, encoding: .utf8) else {
                    return done(.failure(.unavailable("the cluster's writer did not answer")))
                }
                let parts = s.split(separator: " ")
                guard parts.count == 2, let offset = UInt64(parts[1]) else { return done(.failure(.unavailable(s))) }
                // Answer once this node has it, so a read here right after sees it.
                log.whenApplied(offset) { done(.success(parts[0] == "replaced")) }
            }
        }
    }

    private func serveOrder(_ m: NATSMessage) {
        guard let reply = m.replyTo, let rec = OrderRecord.decode(m.payload) else { return }
        orders.store(rec) { [client, loop, log] r in
            let text: String
            switch r {
            case .success(let existed): text = "\(existed ? "replaced" : "created") \(log.durableOffset)"
            case .failure(let e): text = "\(e)"
            }
            loop.queue.async { try? client.publish(reply, payload: Array(text.utf8)) }
        }
    }
}

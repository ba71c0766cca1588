import Atomics
import Dispatch
import Foundation
import Logging
import ParleyChat
import ParleyLog
import ParleyProtocol
import ParleyTransport
import ParleyWebSocket

/// One authenticated WebSocket session as the chat sees it. Identity is the object: the pure state
/// machines key on it, and it knows the loop its connection lives on, so any queue can send to it.
final class SessionRef: Hashable, @unchecked Sendable {
    let id: String
    let user: Person
    let loop: Loop
    /// Touched on `loop` only.
    weak var ws: WebSocketSession?
    weak var chat: ChatSession?
    /// Cluster mode, on the writer: a session of another node whose request this stands for; its
    /// one reply goes back over NATS.
    let remote: RemoteRequest?

    init(id: String, user: Person, loop: Loop, ws: WebSocketSession, chat: ChatSession) {
        self.id = id; self.user = user; self.loop = loop; self.ws = ws; self.chat = chat; self.remote = nil
    }

    init(remote: RemoteRequest, user: Person) {
        id = remote.session; self.user = user; loop = remote.loop; self.remote = remote
    }

    static func == (a: SessionRef, b: SessionRef) -> Bool { a === b }
    func hash(into h: inout Hasher) { h.combine(ObjectIdentifier(self)) }

    /// Sends a message built once (shared by every recipient, compressed at most once) from any queue.
    func send(_ message: OutboundMessage) {
        loop.queue.async { [weak self] in self?.ws?.send(message) }
    }

    func send(_ payload: [UInt8]) { send(OutboundMessage(.text, payload)) }
}

/// Reads a conversation's durable events back from the log for replays, history and de-duplication.
struct LogChatStore: ChatStore {
    let log: any EventStore
    func payloads(_ c: ConversationID, after: UInt64, through: UInt64) -> [[UInt8]] {
        guard through > after else { return [] }
        return log.read(conversation: c, afterSequence: after, limit: Int(through - after)).compactMap { $0.sequence <= through ? $0.payload : nil }
    }

    func duplicate(_ c: ConversationID, key: [UInt8]) -> (seq: UInt64, ts: Int64)? {
        log.lookup(conversation: c, key: key).map { ($0.sequence, $0.timestampMs) }
    }
}

/// The chat's composition: conversation partitions (each a serial queue owning a
/// `ConversationBook`), the switchboard (one serial queue), the log, and the hops between them.
final class ChatService: @unchecked Sendable {
    final class Partition: @unchecked Sendable {
        let queue: DispatchQueue
        var book: ConversationBook<SessionRef>
        init(index: Int, store: ChatStore) {
            // Like the loops: a serial queue on the shared (non-overcommit) pool, so the worker
            // threads stay at the core count instead of one thread per queue.
            queue = DispatchQueue(label: "parley.chat.partition.\(index)", target: .global(qos: .userInteractive))
            book = ConversationBook(partition: index, store: store, encode: ServerFrames.event)
        }
    }

    let log: any EventStore
    let epoch: String
    let partitions: [Partition]
    private let switchboardQueue = DispatchQueue(label: "parley.chat.switchboard", target: .global(qos: .userInteractive))
    private var switchboard: Switchboard<SessionRef>
    private let metrics: ServerMetrics
    private let logger: Logger
    private var timer: DispatchSourceTimer?
    /// Read by `/metrics` from any thread.
    let sessions = ManagedAtomic<Int>(0)
    let queueLength = ManagedAtomic<Int>(0)
    let agentsAvailable = ManagedAtomic<Int>(0)
    /// Cluster mode's NATS side (nil on one machine). Set before the server starts.
    var cluster: ClusterBridge?

    static func partition(of c: ConversationID, count: Int) -> Int { Int((c.high ^ c.low) % UInt64(count)) }

    init(log: any EventStore, epoch: String, partitionCount: Int, presenceGraceMs: Int64, metrics: ServerMetrics, logger: Logger) {
        self.log = log
        self.epoch = epoch
        self.metrics = metrics
        self.logger = logger
        let store = LogChatStore(log: log)
        let n = max(1, partitionCount)
        partitions = (0..<n).map { Partition(index: $0, store: store) }
        switchboard = Switchboard(partitions: n, partitionOf: { ChatService.partition(of: $0, count: n) },
                                  presenceGraceMs: presenceGraceMs, newID: ChatService.randomConversationID)
    }

    static func randomConversationID() -> ConversationID {
        var g = SystemRandomNumberGenerator()
        // UUID version 4 layout, so the id reads as a UUID everywhere.
        let high = (g.next() as UInt64) & 0xFFFF_FFFF_FFFF_0FFF | 0x0000_0000_0000_4000
        let low = (g.next() as UInt64) & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000
        return ConversationID(high: high, low: low)
    }

    /// Rebuilds every conversation from the log (before the server listens). Returns counts.
    func recover() -> (conversations: Int, events: Int, reads: Int) {
        var next = log.firstOffset
        var events = 0, reads = 0
        let n = partitions.count
        while true {
            let batch = log.read(from: next, limit: 4096)
            guard let last = batch.last else { break }
            for r in batch where !r.conversation.isNone {
                let p = partitions[ChatService.partition(of: r.conversation, count: n)]
                switch ChatReplay.apply(r, to: &p.book) {
                case .event: events += 1
                case .read: reads += 1
                case .ignored: break
                }
            }
            next = last.offset + 1
        }
        let all = partitions.flatMap { $0.book.restored() }
        switchboard.restore(all, now: Int64(Date().timeIntervalSince1970 * 1000))
        publishGauges()
        return (all.count, events, reads)
    }

    func start() {
        let t = DispatchSource.makeTimerSource(queue: switchboardQueue)
        t.schedule(deadline: .now() + .milliseconds(250), repeating: .milliseconds(250), leeway: .milliseconds(50))
        t.setEventHandler { [unowned self] in
            run(.tick)
            for p in partitions { submit(.tick, to: p) }
        }
        t.resume()
        timer = t
    }

    func stop() { timer?.cancel(); timer = nil }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: entry points (any queue)

    func toSwitchboard(_ input: SwitchboardInput<SessionRef>) {
        switchboardQueue.async { [self] in run(input) }
        if let cluster {
            switch input {
            case .sessionClosed(let s): cluster.closed(s)
            case .agentStatus: cluster.usersChanged()
            default: break
            }
        }
    }

    /// This node's users with sessions (cluster mode tells the other nodes), read on the switchboard's queue.
    func localUsers(_ done: @escaping @Sendable ([RemoteUser]) -> Void) {
        switchboardQueue.async { [self] in done(switchboard.localUsers) }
    }

    func toPartition(_ c: ConversationID, _ input: BookInput<SessionRef>) {
        submit(input, to: partitions[ChatService.partition(of: c, count: partitions.count)])
    }

    private func submit(_ input: BookInput<SessionRef>, to p: Partition) {
        p.queue.async { [self] in run(input, on: p) }
    }

    /// A conversation's durable view, read on its partition's queue.
    func view(_ c: ConversationID, completion: @escaping @Sendable (ConversationView?) -> Void) {
        let p = partitions[ChatService.partition(of: c, count: partitions.count)]
        p.queue.async { completion(p.book.view(c, viewer: "")) }
    }

    // MARK: switchboard (on its queue)

    private func run(_ input: SwitchboardInput<SessionRef>) {
        let outs = switchboard.handle(input, now: ChatService.nowMs())
        for o in outs {
            switch o {
            case .partition(let c, let i): toPartition(c, i)
            case .partitionIndex(let p, let i): submit(i, to: partitions[p])
            case .allPartitions(let i): for p in partitions { submit(i, to: p) }
            case .welcome(let s, let views):
                cluster?.welcomed(s)
                let frame = OutboundMessage(.text, ServerFrames.welcome(session: s.id, epoch: epoch, user: s.user, conversations: views))
                s.loop.queue.async { [weak s] in
                    s?.ws?.send(frame)
                    s?.chat?.welcomed()
                }
            case .reply(let s, let r): reply(s, r)
            case .presence(let user, let status, let to):
                guard !to.isEmpty else { break }
                let f = OutboundMessage(.text, ServerFrames.presence(userId: user.id, role: user.role, status))
                for s in to { s.send(f) }
            case .queue(let entries, let to):
                guard !to.isEmpty else { break }
                let f = OutboundMessage(.text, ServerFrames.queue(entries))
                for s in to { s.send(f) }
            }
        }
        if case .tick = input {} else { publishGauges() }
    }

    /// A direct reply: to the session, or back to the node a forwarded request came from.
    func reply(_ s: SessionRef, _ r: ChatReply) {
        if let remote = s.remote { remote.answer(r) } else { s.send(ServerFrames.reply(r)) }
    }

    private func publishGauges() {
        sessions.store(switchboard.sessionCount, ordering: .relaxed)
        queueLength.store(switchboard.queueLength, ordering: .relaxed)
        agentsAvailable.store(switchboard.router.availableAgents, ordering: .relaxed)
    }

    // MARK: partitions (on the partition's queue)

    private func run(_ input: BookInput<SessionRef>, on p: Partition) {
        let outs = p.book.handle(input, now: ChatService.nowMs())
        for o in outs {
            switch o {
            case .append(let token, let record):
                let t0 = DispatchTime.now().uptimeNanoseconds
                let type = record.type
                log.append([record]) { [self] result in
                    switch result {
                    case .success:
                        metrics.ackLatency.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - t0))
                        metrics.chatEvent(type).increment()
                        p.queue.async { [self] in run(.completed(token: token, ok: true), on: p) }
                    case .failure(let e):
                        logger.warning("chat append failed", metadata: ["error": "\(e)"])
                        p.queue.async { [self] in run(.completed(token: token, ok: false), on: p) }
                    }
                }
            case .reply(let s, let r): reply(s, r)
            case .history(let s, let ref, let c, let events): s.send(ServerFrames.history(ref: ref, conversation: c, events: events))
            case .deliver(let payload, let to):
                let f = OutboundMessage(.text, payload)
                for s in to { s.send(f) }
            case .typing(let c, let user, let active, let to):
                guard !to.isEmpty else { break }
                let f = OutboundMessage(.text, ServerFrames.typing(c, user: user, active: active))
                for s in to { s.send(f) }
            case .read(let c, let user, let seq, let to):
                guard !to.isEmpty else { break }
                let f = OutboundMessage(.text, ServerFrames.read(c, user: user, seq: seq))
                for s in to { s.send(f) }
            case .resumeFailed(let s, let c, let reason): s.send(ServerFrames.resumeFailed(c.description, reason: reason))
            case .switchboard(let i): toSwitchboard(i)
            }
        }
    }
}

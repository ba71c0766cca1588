import ParleyChat
import ParleyLog
import ParleyProtocol

/// Drives partitions and the switchboard the way the server does (FIFO hops between them), with a
/// log in memory whose appends stay in flight until `flush`. Sessions are plain integers.
final class ChatHarness: ChatStore {
    typealias S = Int
    enum Got: Equatable {
        case event(ConversationID, UInt64, String)  // conversation, seq, type
        case reply(ChatReply)
        case history([UInt64])
        case typing(String, Bool)
        case read(String, UInt64)
        case presence(String, PresenceStatus)
        case queue([ConversationID])
        case welcome([ConversationView])
        case resumeFailed(ConversationID, String)
    }

    var books: [ConversationBook<S>] = []
    var board: Switchboard<S>
    var now: Int64 = 1_000
    var inbox: [S: [Got]] = [:]
    var stored: [ConversationID: [(seq: UInt64, ts: Int64, key: [UInt8], payload: [UInt8])]] = [:]
    var reads: [(ConversationID, String, UInt64)] = []
    /// Every record that landed, in the order the log took them.
    var landed: [Record] = []
    var inFlight: [(partition: Int, token: UInt64, record: Record)] = []
    private var work: [() -> Void] = []
    private var ids: UInt64 = 0
    var failNext = 0

    init(partitions: Int = 2, graceMs: Int64 = 5_000) {
        var counter: UInt64 = 0
        board = Switchboard(partitions: partitions, partitionOf: { Int($0.low % UInt64(partitions)) }, presenceGraceMs: graceMs,
                            newID: { counter += 1; return ConversationID(high: 0xC0, low: counter) })
        books = (0..<partitions).map { ConversationBook(partition: $0, store: self, encode: ChatHarness.encode) }
    }

    /// Events are stored and delivered as the server's own bytes (ParleyProtocol), so what the
    /// tests see is what the server would write to the log and to clients.
    static func encode(_ e: SequencedEvent) -> [UInt8] { ServerFrames.event(e) }

    static func kind(_ e: ChatEvent) -> String {
        switch e {
        case .created: return "created"
        case .message(_, let text, _): return "message:" + text
        case .orderAttached(let o): return "order:" + o.id
        case .assigned(let a): return "assigned:" + a.id
        case .transferred(_, let to): return "transferred:" + (to?.id ?? "queue")
        case .resolved: return "resolved"
        case .csat(_, let s, _): return "csat:\(s)"
        }
    }

    static func decode(_ p: [UInt8]) -> Got {
        guard let e = ServerFrames.decodeEvent(p) else { return .event(.none, 0, "undecodable") }
        return .event(e.conversation, e.seq, kind(e.event))
    }

    // MARK: ChatStore

    func payloads(_ c: ConversationID, after: UInt64, through: UInt64) -> [[UInt8]] {
        (stored[c] ?? []).filter { $0.seq > after && $0.seq <= through }.map(\.payload)
    }

    func duplicate(_ c: ConversationID, key: [UInt8]) -> (seq: UInt64, ts: Int64)? {
        (stored[c] ?? []).first { !key.isEmpty && $0.key == key }.map { ($0.seq, $0.ts) }
    }

    // MARK: driving

    func sb(_ i: SwitchboardInput<S>) { work.append { [self] in runBoard(i) }; drain() }
    func book(_ c: ConversationID, _ i: BookInput<S>) { let p = Int(c.low % UInt64(books.count)); work.append { [self] in runBook(p, i) }; drain() }

    /// Refuses the appends it says yes to (as a log that failed to write them).
    var refuse: (Record) -> Bool = { _ in false }

    /// Completes the first `count` appends in flight (each refused while `failNext` > 0, or when
    /// `refuse` says so), in order.
    func flush(_ count: Int = .max) {
        var left = count
        while !inFlight.isEmpty, left > 0 {
            left -= 1
            let (p, token, r) = inFlight.removeFirst()
            var ok = failNext == 0 && !refuse(r)
            if failNext > 0 { failNext -= 1 }
            if ok, r.sequence > 0 {
                // The real log refuses out-of-order sequences the same way.
                let last = stored[r.conversation]?.last?.seq ?? 0
                if r.sequence != last + 1 { ok = false }
            }
            if ok {
                landed.append(r)
                if r.sequence > 0 { stored[r.conversation, default: []].append((r.sequence, r.timestampMs, r.key, r.payload)) }
                if r.type == .readMarker, let (u, s) = ReadMarkerCodec.decode(r.payload) { reads.append((r.conversation, u, s)) }
            }
            work.append { [self] in runBook(p, .completed(token: token, ok: ok)) }
            drain()
        }
    }

    func tick(by ms: Int64) {
        now += ms
        sb(.tick)
        for p in books.indices { work.append { [self] in runBook(p, .tick) } }
        drain()
    }

    func take(_ s: S) -> [Got] { defer { inbox[s] = [] }; return inbox[s] ?? [] }

    private var draining = false
    private func drain() {
        guard !draining else { return }
        draining = true
        while !work.isEmpty { work.removeFirst()() }
        draining = false
    }

    private func runBoard(_ i: SwitchboardInput<S>) {
        for o in board.handle(i, now: now) {
            switch o {
            case .partition(let c, let i): let p = Int(c.low % UInt64(books.count)); work.append { [self] in runBook(p, i) }
            case .partitionIndex(let p, let i): work.append { [self] in runBook(p, i) }
            case .allPartitions(let i): for p in books.indices { work.append { [self] in runBook(p, i) } }
            case .welcome(let s, let v): inbox[s, default: []].append(.welcome(v))
            case .reply(let s, let r): inbox[s, default: []].append(.reply(r))
            case .presence(let u, let st, let to): for s in to { inbox[s, default: []].append(.presence(u.id, st)) }
            case .queue(let q, let to): for s in to { inbox[s, default: []].append(.queue(q.map(\.conversation))) }
            }
        }
    }

    private func runBook(_ p: Int, _ i: BookInput<S>) {
        for o in books[p].handle(i, now: now) {
            switch o {
            case .append(let token, let r): inFlight.append((p, token, r))
            case .reply(let s, let r): inbox[s, default: []].append(.reply(r))
            case .history(let s, _, _, let events):
                inbox[s, default: []].append(.history(events.map { if case .event(_, let seq, _) = ChatHarness.decode($0) { return seq } else { return 0 } }))
            case .deliver(let payload, let to): for s in to { inbox[s, default: []].append(ChatHarness.decode(payload)) }
            case .typing(_, let u, let active, let to): for s in to { inbox[s, default: []].append(.typing(u.id, active)) }
            case .read(_, let u, let seq, let to): for s in to { inbox[s, default: []].append(.read(u.id, seq)) }
            case .resumeFailed(let s, let c, let reason): inbox[s, default: []].append(.resumeFailed(c, reason))
            case .switchboard(let i): work.append { [self] in runBoard(i) }
            }
        }
    }

    // MARK: people

    static func customer(_ id: String) -> Person { Person(id: id, role: .customer, name: id.uppercased()) }
    static func agent(_ id: String) -> Person { Person(id: id, role: .agent, name: id.uppercased()) }
    /// An order as the server snapshots it: its id and its stored JSON.
    static func order(_ id: String) -> OrderSnapshot { OrderSnapshot(id: id, json: Array(#"{"id":"\#(id)"}"#.utf8)) }

    /// Opens a session and returns what it got (welcome first).
    @discardableResult
    func connect(_ s: S, _ user: Person, capacity: Int = 5, resume: [ConversationID: UInt64] = [:]) -> [Got] {
        sb(.sessionOpened(s, user, capacity: capacity, resume: resume))
        return take(s)
    }

    func available(_ s: S, _ agent: Person) { sb(.agentStatus(s, agent, .available, ref: nil)) }

    /// Opens a conversation for the customer and makes it durable; returns its id.
    func open(_ s: S, _ customer: Person, order: OrderSnapshot? = nil) -> ConversationID? {
        sb(.open(s, customer, ref: "open", order: order, attachOrder: order != nil))
        flush()
        return board.openConversation(of: customer.id)
    }

    func send(_ s: S, _ user: Person, _ c: ConversationID, _ text: String, id: String? = nil, ref: String? = "m") {
        book(c, .message(s, user, c, ref: ref, clientMsgId: id ?? text, text: text))
    }

    static func seqs(_ got: [Got], _ c: ConversationID) -> [UInt64] {
        got.compactMap { if case .event(c, let seq, _) = $0 { return seq } else { return nil } }
    }

    static func kinds(_ got: [Got]) -> [String] {
        got.compactMap { if case .event(_, _, let k) = $0 { return k } else { return nil } }
    }

    static func errors(_ got: [Got]) -> [ChatErrorCode] {
        got.compactMap { if case .reply(.error(_, let code, _)) = $0 { return code } else { return nil } }
    }

    static func acks(_ got: [Got]) -> [UInt64?] {
        got.compactMap { if case .reply(.ack(_, _, let seq, _, _)) = $0 { return seq } else { return nil } }
    }
}

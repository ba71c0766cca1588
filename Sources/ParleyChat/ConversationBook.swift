import ParleyLog

/// What a partition reads back from the log: wire payloads of durable sequenced events, and
/// idempotency keys already made durable. Injected, so the book stays free of I/O in tests.
public protocol ChatStore {
    /// Payloads of durable events with `after < seq <= through`, ascending.
    func payloads(_ c: ConversationID, after: UInt64, through: UInt64) -> [[UInt8]]
    /// The durable event that carried this idempotency key, if any.
    func duplicate(_ c: ConversationID, key: [UInt8]) -> (seq: UInt64, ts: Int64)?
}

/// Commands a conversation partition takes (from sessions, through the switchboard, and from the log).
extension BookInput: Sendable where S: Sendable {}

public enum BookInput<S: Hashable> {
    // session lifecycle (sent by the switchboard)
    /// Phase one of `hello`: summarise these conversations for the welcome and hold the session's
    /// deliveries until `release`. `resume` nil: start after the current end.
    case attach(S, Person, [(ConversationID, resume: UInt64?)])
    /// Phase two: the welcome went out; replay what the session is missing and go live.
    case release(S)
    /// Subscribe a welcomed session to a conversation from `after` (0: all of it).
    case subscribe(S, Person, ConversationID, after: UInt64)
    case detach(S)
    // conversation lifecycle (decided by the switchboard)
    case create(ConversationID, customer: Person, order: OrderSnapshot?, sessions: [S], opener: S, ref: String?)
    case reopen(ConversationID, S, Person, ref: String?, order: OrderSnapshot?, attachOrder: Bool)
    case assign(ConversationID, agent: Person, sessions: [S], waiter: (S, String?)?)
    case transfer(ConversationID, from: Person, to: Person?, sessions: [S], waiter: (S, String?)?)
    // requests from a participant
    case message(S, Person, ConversationID, ref: String?, clientMsgId: String, text: String)
    case typing(S, Person, ConversationID, active: Bool, ref: String? = nil)
    case read(S, Person, ConversationID, seq: UInt64, ref: String?)
    case history(S, Person, ConversationID, ref: String?, before: UInt64?, limit: Int?)
    case resolve(S, Person, ConversationID, ref: String?)
    case transferRequest(S, Person, ConversationID, ref: String?, to: String?)
    case csat(S, Person, ConversationID, ref: String?, score: Int, comment: String?)
    // from the log
    case completed(token: UInt64, ok: Bool)
    case tick
    // cluster mode: what other nodes wrote and said
    /// A sequenced event another node appended, in log order, with the local welcomed sessions of
    /// whoever it makes a participant (the customer of `created`, the agent of `assigned` or
    /// `transferred`).
    case committed(SequencedEvent, payload: [UInt8], members: [S])
    /// A read marker another node appended.
    case committedRead(ConversationID, user: String, seq: UInt64)
    /// Typing on another node (never stored).
    case remoteTyping(ConversationID, Person, active: Bool)
    /// The writer's reply to a request this node forwarded: sent once this node has applied
    /// `seq` of the conversation (so the requester has the event before its ack).
    case heldReply(S, [UInt8], ConversationID, seq: UInt64)
}

public enum BookOutput<S: Hashable> {
    /// Append this record; report back with `.completed(token:ok:)`, in append order.
    case append(token: UInt64, Record)
    case reply(S, ChatReply)
    case history(S, ref: String?, ConversationID, [[UInt8]])
    /// A sequenced event's wire payload, the same bytes for every recipient.
    case deliver([UInt8], to: [S])
    case typing(ConversationID, Person, active: Bool, to: [S])
    case read(ConversationID, Person, seq: UInt64, to: [S])
    case resumeFailed(S, ConversationID, reason: String)
    case switchboard(SwitchboardInput<S>)
}

/// A conversation as recovered from the log, for the switchboard's rebuild.
public struct RestoredConversation: Equatable, Sendable {
    public var id: ConversationID
    public var customer: Person
    public var agent: Person?
    public var resolved: Bool
    public var createdMs: Int64
}

/// One partition of the conversations: validates requests, assigns gapless sequences, asks for
/// appends, and once the log says an event is durable, acknowledges it and delivers it to every
/// subscribed session exactly once, in order. Deterministic: time comes in as `now`.
public struct ConversationBook<S: Hashable> {
    struct State: Equatable {
        var customer: Person
        var agent: Person?
        var resolvedBy: Person?
        var csat = false
        var order: OrderSnapshot?
        var resolved: Bool { resolvedBy != nil }

        mutating func apply(_ e: ChatEvent) {
            switch e {
            case .created(let c, let o): customer = c; order = o
            case .message: break
            case .orderAttached(let o): order = o
            case .assigned(let a): agent = a
            case .transferred(_, let to): agent = to
            case .resolved(let by): resolvedBy = by
            case .csat: csat = true
            }
        }
    }

    enum Waiter {
        case ack(S, String?, clientMsgId: String?)
        case opened(S, String?, viewer: String)
    }

    enum Then { case none, created, resolved, dropAgent(String), resync }

    struct Pending {
        var token: UInt64
        var event: SequencedEvent?
        var payload: [UInt8]
        var key: [UInt8]
        var read: (Person, UInt64)?
        var waiters: [Waiter]
        var then: Then
    }

    struct Sub {
        var user: String
        var delivered: UInt64
        var live: Bool
    }

    struct Conversation {
        let id: ConversationID
        var createdMs: Int64
        /// After everything in flight lands.
        var state: State
        /// What the log has made durable.
        var durable: State
        var lastSeq: UInt64 = 0
        var durableSeq: UInt64 = 0
        /// Read markers including those in flight, and those the log has made durable.
        var reads: [String: UInt64] = [:]
        var durableReads: [String: UInt64] = [:]
        var subs: [S: Sub] = [:]
        var typing: [String: (person: Person, until: Int64)] = [:]
        var pending: [Pending] = []
        /// Set when an event append was refused while later ones of this conversation were in
        /// flight: the log takes only gapless sequences, so those are refused too. Until the last
        /// of them is back, new events are refused at once (no sequence is handed out twice), then
        /// the projection goes back to what is durable.
        var refusal: Refusal?

        struct Refusal {
            var createFailed = false
            var resync = false
        }

        func isParticipant(_ user: String) -> Bool {
            state.customer.id == user || state.agent?.id == user
        }
    }

    var conversations: [ConversationID: Conversation] = [:]
    private var tokens: [UInt64: ConversationID] = [:]
    private var nextToken: UInt64 = 1
    var sessionConversations: [S: Set<ConversationID>] = [:]
    private var failedResumes: [S: [(ConversationID, String)]] = [:]
    /// Conversations where someone may be typing (cleaned lazily by `tick`), so a tick does not
    /// walk every conversation.
    private var typingIn: Set<ConversationID> = []
    /// Cluster mode: writer replies waiting for their event to be applied here.
    var held: [ConversationID: [(seq: UInt64, session: S, reply: [UInt8])]] = [:]
    private let store: ChatStore
    private let encode: (SequencedEvent) -> [UInt8]
    /// This partition's index (it answers `attach` with it).
    public let partition: Int

    public init(partition: Int = 0, store: ChatStore, encode: @escaping (SequencedEvent) -> [UInt8]) {
        self.partition = partition
        self.store = store
        self.encode = encode
    }

    public var count: Int { conversations.count }

    // MARK: recovery

    /// Replays one durable event from the log (in log order).
    public mutating func restore(_ e: SequencedEvent) {
        if conversations[e.conversation] == nil {
            guard case .created(let customer, _) = e.event else { return }
            let s = State(customer: customer)
            conversations[e.conversation] = Conversation(id: e.conversation, createdMs: e.ts, state: s, durable: s)
        }
        conversations[e.conversation]!.state.apply(e.event)
        conversations[e.conversation]!.durable.apply(e.event)
        conversations[e.conversation]!.lastSeq = e.seq
        conversations[e.conversation]!.durableSeq = e.seq
    }

    /// Replays a durable message from the log: only its place matters to the state, so its
    /// payload need not be decoded.
    public mutating func restoreMessage(_ c: ConversationID, seq: UInt64) {
        guard conversations[c] != nil else { return }
        conversations[c]!.lastSeq = seq
        conversations[c]!.durableSeq = seq
    }

    public mutating func restoreRead(_ c: ConversationID, user: String, seq: UInt64) {
        guard conversations[c] != nil else { return }
        let r = max(conversations[c]!.durableReads[user] ?? 0, seq)
        conversations[c]!.reads[user] = r
        conversations[c]!.durableReads[user] = r
    }

    public func restored() -> [RestoredConversation] {
        conversations.values.map {
            RestoredConversation(id: $0.id, customer: $0.durable.customer, agent: $0.durable.agent, resolved: $0.durable.resolved, createdMs: $0.createdMs)
        }
    }

    public func view(_ c: ConversationID, viewer: String) -> ConversationView? {
        conversations[c].map { view(of: $0, viewer: viewer) }
    }

    func view(of c: Conversation, viewer: String) -> ConversationView {
        let d = c.durable
        let status: ConversationStatus = d.resolved ? .resolved : (d.agent != nil ? .assigned : .queued)
        return ConversationView(id: c.id, status: status, customer: d.customer, agent: d.agent, order: d.order,
                                lastSeq: c.durableSeq, readSeq: c.durableReads[viewer] ?? 0)
    }

    // MARK: commands

    public mutating func handle(_ input: BookInput<S>, now: Int64) -> [BookOutput<S>] {
        var out: [BookOutput<S>] = []
        switch input {
        case .attach(let s, let user, let items):
            var views: [ConversationView] = []
            for (id, resume) in items {
                guard let c = conversations[id] else {
                    if resume != nil { failedResumes[s, default: []].append((id, "not_found")) }
                    continue
                }
                guard c.isParticipant(user.id) else {
                    if resume != nil { failedResumes[s, default: []].append((id, "forbidden")) }
                    continue
                }
                var from = resume ?? c.durableSeq
                if from > c.durableSeq {
                    // Never a partial replay: say so, and go on live from the end, as without resume
                    // (the welcome's lastSeq says where that is; history fills the rest).
                    failedResumes[s, default: []].append((id, "beyond_end"))
                    from = c.durableSeq
                }
                views.append(view(of: c, viewer: user.id))
                conversations[id]!.subs[s] = Sub(user: user.id, delivered: from, live: false)
                sessionConversations[s, default: []].insert(id)
            }
            out.append(.switchboard(.attached(s, partition: partition, views)))

        case .release(let s):
            for id in sessionConversations[s] ?? [] {
                guard var sub = conversations[id]?.subs[s], !sub.live else { continue }
                guard conversations[id]!.isParticipant(sub.user) else {
                    conversations[id]!.subs[s] = nil
                    continue
                }
                sub.live = true
                conversations[id]!.subs[s] = sub
                catchUp(id, s, through: conversations[id]!.durableSeq, &out)
            }
            for (id, reason) in failedResumes.removeValue(forKey: s) ?? [] { out.append(.resumeFailed(s, id, reason: reason)) }

        case .subscribe(let s, let user, let id, let after):
            guard let c = conversations[id], c.isParticipant(user.id), c.subs[s] == nil else { break }
            conversations[id]!.subs[s] = Sub(user: user.id, delivered: min(after, c.durableSeq), live: true)
            sessionConversations[s, default: []].insert(id)
            catchUp(id, s, through: c.durableSeq, &out)

        case .detach(let s):
            failedResumes[s] = nil
            if !held.isEmpty { for (c, list) in held { held[c] = list.filter { $0.session != s } } }
            for id in sessionConversations.removeValue(forKey: s) ?? [] {
                guard let sub = conversations[id]?.subs.removeValue(forKey: s) else { continue }
                // The user's last session here went: they stop typing.
                if conversations[id]!.typing[sub.user] != nil, !conversations[id]!.subs.values.contains(where: { $0.user == sub.user }) {
                    let p = conversations[id]!.typing.removeValue(forKey: sub.user)!.person
                    out.append(.typing(id, p, active: false, to: others(of: sub.user, in: conversations[id]!)))
                }
            }

        case .create(let id, let customer, let order, let sessions, let opener, let ref):
            guard conversations[id] == nil else {
                out.append(.reply(opener, .error(ref: ref, .conflict, "conversation exists")))
                break
            }
            let s = State(customer: customer)
            var c = Conversation(id: id, createdMs: now, state: s, durable: s)
            for x in sessions {
                c.subs[x] = Sub(user: customer.id, delivered: 0, live: true)
                sessionConversations[x, default: []].insert(id)
            }
            conversations[id] = c
            append(id, .created(customer: customer, order: order), now: now, waiters: [.opened(opener, ref, viewer: customer.id)], then: .created, &out)

        case .reopen(let id, let s, let user, let ref, let order, let attachOrder):
            guard let c = conversations[id], c.state.customer.id == user.id else {
                out.append(.reply(s, .error(ref: ref, .notFound, "no such conversation")))
                break
            }
            if c.state.resolved {
                out.append(.switchboard(.reopenRejected(id, s, user, ref: ref, order: order, attachOrder: attachOrder)))
                break
            }
            if attachOrder, let o = order, o != c.state.order {
                append(id, .orderAttached(o), now: now, waiters: [.opened(s, ref, viewer: user.id)], then: .none, &out)
            } else if let last = c.pending.indices.last {
                // Answer once what is in flight (the creation, an order) is durable.
                conversations[id]!.pending[last].waiters.append(.opened(s, ref, viewer: user.id))
            } else {
                out.append(.reply(s, .opened(ref: ref, view(of: c, viewer: user.id))))
            }

        case .assign(let id, let agent, let sessions, let waiter):
            guard let c = conversations[id], !c.state.resolved, c.state.agent == nil || c.state.agent == agent else {
                if let (s, ref) = waiter { out.append(.reply(s, .error(ref: ref, .conflict, "the conversation is no longer waiting"))) }
                resync(id, &out)
                break
            }
            if c.state.agent == agent {
                if let (s, ref) = waiter { out.append(.reply(s, .ack(ref: ref, conversation: id, seq: nil, ts: nil, clientMsgId: nil))) }
                break
            }
            addSessions(sessions, of: agent.id, to: id)
            append(id, .assigned(agent: agent), now: now, waiters: waiter.map { [.ack($0.0, $0.1, clientMsgId: nil)] } ?? [], then: .resync, &out)

        case .transfer(let id, let from, let to, let sessions, let waiter):
            guard let c = conversations[id], !c.state.resolved, c.state.agent?.id == from.id else {
                if let (s, ref) = waiter { out.append(.reply(s, .error(ref: ref, .conflict, "the conversation is not yours to transfer"))) }
                resync(id, &out)
                break
            }
            if let to { addSessions(sessions, of: to.id, to: id) }
            append(id, .transferred(from: from, to: to), now: now, waiters: waiter.map { [.ack($0.0, $0.1, clientMsgId: nil)] } ?? [],
                   then: .dropAgent(from.id), &out)

        case .message(let s, let user, let id, let ref, let clientMsgId, let text):
            if text.isEmpty { out.append(.reply(s, .error(ref: ref, .invalidRequest, "text must not be empty"))); break }
            if text.utf8.count > ChatLimits.maxTextBytes {
                out.append(.reply(s, .error(ref: ref, .tooLarge, "text is over \(ChatLimits.maxTextBytes) bytes")))
                break
            }
            if clientMsgId.isEmpty || clientMsgId.utf8.count > ChatLimits.maxClientMsgIdBytes {
                out.append(.reply(s, .error(ref: ref, .invalidRequest, "clientMsgId must be 1 to \(ChatLimits.maxClientMsgIdBytes) bytes")))
                break
            }
            guard let c = participant(s, user, id, ref, &out) else { break }
            let key = idempotencyKey(sender: user.id, clientMsgId: clientMsgId)
            if let i = c.pending.firstIndex(where: { $0.key == key }) {
                conversations[id]!.pending[i].waiters.append(.ack(s, ref, clientMsgId: clientMsgId))
                break
            }
            if let d = store.duplicate(id, key: key) {
                out.append(.reply(s, .ack(ref: ref, conversation: id, seq: d.seq, ts: d.ts, clientMsgId: clientMsgId)))
                break
            }
            guard !c.state.resolved else { out.append(.reply(s, .error(ref: ref, .conflict, "the conversation is resolved"))); break }
            if let t = conversations[id]!.typing.removeValue(forKey: user.id) {
                out.append(.typing(id, t.person, active: false, to: others(of: user.id, in: c)))
            }
            append(id, .message(from: user, text: text, clientMsgId: clientMsgId), key: key, now: now,
                   waiters: [.ack(s, ref, clientMsgId: clientMsgId)], then: .none, &out)

        case .typing(let s, let user, let id, let active, let ref):
            guard let c = participant(s, user, id, ref, &out) else { break }
            guard !c.state.resolved else {
                out.append(.reply(s, .error(ref: ref, .conflict, "the conversation is resolved")))
                break
            }
            typing(id, user, active: active, now: now, &out)

        case .read(let s, let user, let id, let seq, let ref):
            guard let c = participant(s, user, id, ref, &out) else { break }
            guard seq >= 1, seq <= c.durableSeq else {
                out.append(.reply(s, .error(ref: ref, .invalidRequest, "seq must be between 1 and the conversation's last seq (\(c.durableSeq))")))
                break
            }
            if seq <= c.reads[user.id] ?? 0 {
                if ref != nil { out.append(.reply(s, .ack(ref: ref, conversation: id, seq: nil, ts: nil, clientMsgId: nil))) }
                break
            }
            conversations[id]!.reads[user.id] = seq
            let rec = Record(type: .readMarker, timestampMs: now, conversation: id, payload: ReadMarkerCodec.encode(user: user.id, seq: seq))
            let token = take(id)
            conversations[id]!.pending.append(Pending(token: token, event: nil, payload: [], key: [], read: (user, seq),
                                                      waiters: ref == nil ? [] : [.ack(s, ref, clientMsgId: nil)], then: .none))
            out.append(.append(token: token, rec))

        case .history(let s, let user, let id, let ref, let before, let limit):
            guard let c = participant(s, user, id, ref, &out) else { break }
            if let l = limit, l < 1 { out.append(.reply(s, .error(ref: ref, .invalidRequest, "limit must be at least 1"))); break }
            let n = UInt64(min(limit ?? ChatLimits.historyDefault, ChatLimits.historyMax))
            let hi = min(before.map { $0 == 0 ? 0 : $0 - 1 } ?? c.durableSeq, c.durableSeq)
            let lo = hi > n ? hi - n : 0
            out.append(.history(s, ref: ref, id, hi > lo ? store.payloads(id, after: lo, through: hi) : []))

        case .resolve(let s, let user, let id, let ref):
            guard let c = participant(s, user, id, ref, &out) else { break }
            guard user.role == .agent, c.state.agent?.id == user.id else {
                out.append(.reply(s, .error(ref: ref, .forbidden, "only the assigned agent resolves a conversation")))
                break
            }
            guard !c.state.resolved else { out.append(.reply(s, .error(ref: ref, .conflict, "already resolved"))); break }
            for (u, t) in c.typing { out.append(.typing(id, t.person, active: false, to: others(of: u, in: c))) }
            conversations[id]!.typing = [:]
            append(id, .resolved(by: user), now: now, waiters: [.ack(s, ref, clientMsgId: nil)], then: .resolved, &out)

        case .transferRequest(let s, let user, let id, let ref, let to):
            guard let c = participant(s, user, id, ref, &out) else { break }
            guard user.role == .agent, c.state.agent?.id == user.id else {
                out.append(.reply(s, .error(ref: ref, .forbidden, "only the assigned agent transfers a conversation")))
                break
            }
            guard !c.state.resolved else { out.append(.reply(s, .error(ref: ref, .conflict, "the conversation is resolved"))); break }
            out.append(.switchboard(.transferRequested(id, from: user, to: to, s, ref: ref)))

        case .csat(let s, let user, let id, let ref, let score, let comment):
            guard let c = participant(s, user, id, ref, &out) else { break }
            guard user.role == .customer else { out.append(.reply(s, .error(ref: ref, .forbidden, "only the customer rates a conversation"))); break }
            guard (1...5).contains(score) else { out.append(.reply(s, .error(ref: ref, .invalidRequest, "score must be 1 to 5"))); break }
            if let cm = comment, cm.utf8.count > ChatLimits.maxCommentBytes {
                out.append(.reply(s, .error(ref: ref, .tooLarge, "comment is over \(ChatLimits.maxCommentBytes) bytes")))
                break
            }
            guard c.state.resolved else { out.append(.reply(s, .error(ref: ref, .conflict, "rate the conversation once it is resolved"))); break }
            guard !c.state.csat else { out.append(.reply(s, .error(ref: ref, .conflict, "this conversation was already rated"))); break }
            append(id, .csat(from: user, score: score, comment: comment), now: now, waiters: [.ack(s, ref, clientMsgId: nil)], then: .none, &out)

        case .completed(let token, let ok):
            guard let id = tokens.removeValue(forKey: token), conversations[id] != nil,
                  let i = conversations[id]!.pending.firstIndex(where: { $0.token == token }) else { break }
            let p = conversations[id]!.pending.remove(at: i)
            if ok { landed(id, p, &out); settleRefusal(id, &out) } else { failed(id, p, &out) }

        case .committed, .committedRead, .remoteTyping, .heldReply:
            handleCluster(input, now: now, &out)

        case .tick:
            for id in typingIn {
                guard let c = conversations[id] else { typingIn.remove(id); continue }
                for (u, t) in c.typing where t.until <= now {
                    conversations[id]!.typing[u] = nil
                    out.append(.typing(id, t.person, active: false, to: others(of: u, in: c)))
                }
                if conversations[id]!.typing.isEmpty { typingIn.remove(id) }
            }
        }
        return out
    }

    // MARK: internals

    mutating func typing(_ id: ConversationID, _ user: Person, active: Bool, now: Int64, _ out: inout [BookOutput<S>]) {
        let c = conversations[id]!
        let was = c.typing[user.id] != nil
        if active {
            conversations[id]!.typing[user.id] = (user, now + ChatLimits.typingTimeoutMs)
            typingIn.insert(id)
            if !was { out.append(.typing(id, user, active: true, to: others(of: user.id, in: c))) }
        } else if was {
            conversations[id]!.typing[user.id] = nil
            out.append(.typing(id, user, active: false, to: others(of: user.id, in: c)))
        }
    }

    private mutating func take(_ id: ConversationID) -> UInt64 {
        let t = nextToken
        nextToken += 1
        tokens[t] = id
        return t
    }

    private mutating func append(_ id: ConversationID, _ event: ChatEvent, key: [UInt8] = [], now: Int64, waiters: [Waiter], then: Then, _ out: inout [BookOutput<S>]) {
        if conversations[id]!.refusal != nil {
            // Earlier events of this conversation are being refused: this one would be too.
            answerUnavailable(waiters, &out)
            switch then {
            case .resync, .dropAgent: conversations[id]!.refusal!.resync = true  // the switchboard moved ahead
            case .none, .created, .resolved: break
            }
            return
        }
        let seq = conversations[id]!.lastSeq + 1
        conversations[id]!.lastSeq = seq
        conversations[id]!.state.apply(event)
        let e = SequencedEvent(conversation: id, seq: seq, ts: now, event: event)
        let payload = encode(e)
        let token = take(id)
        conversations[id]!.pending.append(Pending(token: token, event: e, payload: payload, key: key, read: nil, waiters: waiters, then: then))
        out.append(.append(token: token, Record(type: event.recordType, timestampMs: now, conversation: id, sequence: seq, key: key, payload: payload)))
    }

    private mutating func landed(_ id: ConversationID, _ p: Pending, _ out: inout [BookOutput<S>]) {
        if let (user, seq) = p.read {
            conversations[id]!.durableReads[user.id] = max(conversations[id]!.durableReads[user.id] ?? 0, seq)
            out.append(.read(id, user, seq: seq, to: others(of: user.id, in: conversations[id]!)))
        }
        if let e = p.event { makeDurable(e, payload: p.payload, &out) }
        let c = conversations[id]!
        for w in p.waiters {
            switch w {
            case .ack(let s, let ref, let cm):
                out.append(.reply(s, .ack(ref: ref, conversation: id, seq: p.event?.seq, ts: p.event?.ts, clientMsgId: cm)))
            case .opened(let s, let ref, let viewer):
                out.append(.reply(s, .opened(ref: ref, view(of: c, viewer: viewer))))
            }
        }
        switch p.then {
        case .none, .resync: break
        case .created:
            out.append(.switchboard(.created(id, customer: c.durable.customer, createdMs: c.createdMs)))
        case .resolved:
            out.append(.switchboard(.resolved(id, customer: c.durable.customer.id, agent: c.durable.agent?.id)))
        case .dropAgent(let old):
            if c.durable.agent?.id != old {
                for (s, sub) in c.subs where sub.user == old {
                    conversations[id]!.subs[s] = nil
                    sessionConversations[s]?.remove(id)
                }
                if let t = conversations[id]!.typing.removeValue(forKey: old) {
                    out.append(.typing(id, t.person, active: false, to: others(of: old, in: conversations[id]!)))
                }
            }
        }
    }

    /// `e` is durable: the durable state takes it and every live subscriber gets it once, in order
    /// (whoever is behind is caught up first).
    mutating func makeDurable(_ e: SequencedEvent, payload: [UInt8], _ out: inout [BookOutput<S>]) {
        let id = e.conversation
        conversations[id]!.durable.apply(e.event)
        conversations[id]!.durableSeq = e.seq
        conversations[id]!.lastSeq = max(conversations[id]!.lastSeq, e.seq)
        var upToDate: [S] = []
        for (s, sub) in conversations[id]!.subs where sub.live {
            if sub.delivered + 1 < e.seq { catchUp(id, s, through: e.seq - 1, &out) }
            if conversations[id]!.subs[s]!.delivered + 1 == e.seq {
                upToDate.append(s)
                conversations[id]!.subs[s]!.delivered = e.seq
            }
        }
        if !upToDate.isEmpty { out.append(.deliver(payload, to: upToDate)) }
    }

    /// The log refused or failed an append: nothing of it is durable, and every requester waiting
    /// on it is told to retry. A refused event dooms the events of this conversation appended after
    /// it (the log wants gapless sequences): the conversation refuses new events until the last of
    /// those is back, then goes back to what is durable and says what follows from the refusals.
    private mutating func failed(_ id: ConversationID, _ p: Pending, _ out: inout [BookOutput<S>]) {
        answerUnavailable(p.waiters, &out)
        if let (user, _) = p.read {
            // Back to the highest marker that is durable or still in flight.
            let c = conversations[id]!
            let inFlight = c.pending.compactMap { $0.read?.0.id == user.id ? $0.read!.1 : nil }.max() ?? 0
            conversations[id]!.reads[user.id] = max(c.durableReads[user.id] ?? 0, inFlight)
        }
        guard p.event != nil else { return }
        var refusal = conversations[id]!.refusal ?? Conversation.Refusal()
        switch p.then {
        case .created: refusal.createFailed = true
        case .resync, .dropAgent: refusal.resync = true  // the switchboard moved its router ahead of the log
        case .none, .resolved: break
        }
        conversations[id]!.refusal = refusal
        settleRefusal(id, &out)
    }

    /// Ends a refusal once no event of the conversation is in flight any more.
    private mutating func settleRefusal(_ id: ConversationID, _ out: inout [BookOutput<S>]) {
        guard let refusal = conversations[id]?.refusal, !conversations[id]!.pending.contains(where: { $0.event != nil }) else { return }
        var c = conversations[id]!
        c.refusal = nil
        c.state = c.durable
        c.lastSeq = c.durableSeq
        if refusal.createFailed, c.durableSeq == 0 {
            conversations[id] = nil
            for s in c.subs.keys { sessionConversations[s]?.remove(id) }
            out.append(.switchboard(.createFailed(id, customer: c.state.customer.id)))
            return
        }
        conversations[id] = c
        if refusal.resync { resync(id, &out) }
    }

    private func answerUnavailable(_ waiters: [Waiter], _ out: inout [BookOutput<S>]) {
        for w in waiters {
            switch w {
            case .ack(let s, let ref, _), .opened(let s, let ref, _):
                out.append(.reply(s, .error(ref: ref, .unavailable, "not stored: the log could not take it; retry")))
            }
        }
    }

    func resync(_ id: ConversationID, _ out: inout [BookOutput<S>]) {
        guard let c = conversations[id] else { return }
        out.append(.switchboard(.resync(id, customer: c.state.customer, agent: c.state.agent, open: !c.state.resolved)))
    }

    private mutating func addSessions(_ sessions: [S], of user: String, to id: ConversationID) {
        for s in sessions where conversations[id]!.subs[s] == nil {
            conversations[id]!.subs[s] = Sub(user: user, delivered: 0, live: true)
            sessionConversations[s, default: []].insert(id)
        }
    }

    /// Sends `s` the durable events it is missing, up to `through`.
    mutating func catchUp(_ id: ConversationID, _ s: S, through: UInt64, _ out: inout [BookOutput<S>]) {
        guard let sub = conversations[id]!.subs[s], sub.delivered < through else { return }
        for p in store.payloads(id, after: sub.delivered, through: through) { out.append(.deliver(p, to: [s])) }
        conversations[id]!.subs[s]!.delivered = through
    }

    private func participant(_ s: S, _ user: Person, _ id: ConversationID, _ ref: String?, _ out: inout [BookOutput<S>]) -> Conversation? {
        guard let c = conversations[id] else {
            out.append(.reply(s, .error(ref: ref, .notFound, "no such conversation")))
            return nil
        }
        guard c.isParticipant(user.id) else {
            // Same answer whether or not it exists would hide existence, but ids are random 128-bit:
            // say what is true, that this user may not touch it.
            out.append(.reply(s, .error(ref: ref, .forbidden, "you are not a participant of this conversation")))
            return nil
        }
        return c
    }

    /// Live sessions of everyone in the conversation but `user`.
    func others(of user: String, in c: Conversation) -> [S] {
        c.subs.compactMap { $0.value.live && $0.value.user != user ? $0.key : nil }
    }
}

import ParleyLog

/// Commands the switchboard takes: from sessions (through the server) and from partitions.
extension SwitchboardInput: Sendable where S: Sendable {}

public enum SwitchboardInput<S: Hashable> {
    case sessionOpened(S, Person, capacity: Int, resume: [ConversationID: UInt64])
    case sessionClosed(S)
    /// `conversation.open`, with the order already looked up (nil: none). `attachOrder`: the
    /// request named an order (or "last"), as opposed to `order: null`.
    case open(S, Person, ref: String?, order: OrderSnapshot?, attachOrder: Bool)
    case agentStatus(S, Person, AgentStatus, ref: String?)
    case claim(S, Person, ConversationID, ref: String?)
    // from partitions
    case attached(S, partition: Int, [ConversationView])
    case created(ConversationID, customer: Person, createdMs: Int64)
    case createFailed(ConversationID, customer: String)
    case reopenRejected(ConversationID, S, Person, ref: String?, order: OrderSnapshot?, attachOrder: Bool)
    case transferRequested(ConversationID, from: Person, to: String?, S, ref: String?)
    case resolved(ConversationID, customer: String, agent: String?)
    /// The partition's word on a conversation after a refused or failed change.
    case resync(ConversationID, customer: Person, agent: Person?, open: Bool)
    case tick
    // cluster mode
    /// Where a conversation stands after an event another node appended.
    case replicated(RestoredConversation)
    /// Another node's users with sessions there (all of them, each time), for presence and routing.
    case remoteUsers(node: String, [RemoteUser])
    /// This node starts (true) or stops making routing decisions (the writer makes them).
    case decides(Bool)
}

/// A user with sessions on another cluster node, as that node says.
public struct RemoteUser: Equatable, Sendable {
    public var person: Person
    public var sessions: Int
    public var capacity: Int
    /// An agent's status as last set on that node, and when (so the newest setting wins).
    public var status: AgentStatus?
    public var statusAtMs: Int64
    public init(person: Person, sessions: Int, capacity: Int, status: AgentStatus?, statusAtMs: Int64) {
        self.person = person; self.sessions = sessions; self.capacity = capacity; self.status = status; self.statusAtMs = statusAtMs
    }
}

public enum SwitchboardOutput<S: Hashable> {
    /// To the partition that owns the conversation.
    case partition(ConversationID, BookInput<S>)
    /// To one partition by index (session attach/release).
    case partitionIndex(Int, BookInput<S>)
    case allPartitions(BookInput<S>)
    case welcome(S, [ConversationView])
    case reply(S, ChatReply)
    case presence(Person, PresenceStatus, to: [S])
    case queue([QueueEntry], to: [S])
}

/// Who is connected, who is available, who gets which conversation: sessions, agents' routing and
/// the waiting queue, presence, and each customer's open conversation. One instance (one serial
/// queue); conversations themselves live in the partitions. Deterministic: time is `now`.
public struct Switchboard<S: Hashable> {
    struct Session {
        var user: Person
        var capacity = 5
        var welcomed = false
        var outstanding: Set<Int> = []
        var views: [ConversationView] = []
        var attached: Set<ConversationID> = []
    }

    struct Open {
        var customer: Person
        var sinceMs: Int64
    }

    public private(set) var router = AgentRouter<ConversationID>()
    public private(set) var presence: PresenceTracker
    private var sessions: [S: Session] = [:]
    private var byUser: [String: [S]] = [:]
    /// Welcomed agent sessions: who gets `queue` frames (kept, not searched for, on every change).
    private var agentSessions: Set<S> = []
    private var people: [String: Person] = [:]
    private var customerOpen: [String: ConversationID] = [:]
    private var open: [ConversationID: Open] = [:]
    private let partitions: Int
    private let partitionOf: (ConversationID) -> Int
    private var newID: () -> ConversationID
    /// Cluster mode: only the writer routes; other nodes mirror the log's assignments.
    public private(set) var decides = true
    private var remote: [String: (users: [String: RemoteUser], heardMs: Int64)] = [:]
    /// When each agent's status was last set (here or on another node): the newest wins.
    private var statusAt: [String: Int64] = [:]
    /// Cluster mode: conversations the writer took from an agent who was gone but still within the
    /// presence grace here; their customers still get that agent's `offline` when it comes (on one
    /// node it comes first, then the transfer).
    private var lostWhileLeaving: [String: Set<ConversationID>] = [:]
    /// How long another node may stay silent before its sessions count as gone.
    public static var remoteSilenceMs: Int64 { 3_000 }

    public init(partitions: Int, partitionOf: @escaping (ConversationID) -> Int, presenceGraceMs: Int64, newID: @escaping () -> ConversationID) {
        self.partitions = partitions
        self.partitionOf = partitionOf
        self.presence = PresenceTracker(graceMs: presenceGraceMs)
        self.newID = newID
    }

    public var sessionCount: Int { sessions.count }
    public var queueLength: Int { router.queue.count }
    public func openConversation(of customer: String) -> ConversationID? { customerOpen[customer] }

    /// Rebuilds routing from the partitions' recovered conversations. Agents with conversations are
    /// treated as just disconnected: unless they come back within the grace period, their
    /// conversations return to the queue.
    public mutating func restore(_ conversations: [RestoredConversation], now: Int64) {
        for c in conversations.sorted(by: { ($0.createdMs, $0.id.high, $0.id.low) < ($1.createdMs, $1.id.high, $1.id.low) }) where !c.resolved {
            customerOpen[c.customer.id] = c.id
            open[c.id] = Open(customer: c.customer, sinceMs: c.createdMs)
            people[c.customer.id] = c.customer
            if let a = c.agent { people[a.id] = a }
            router.force(c.id, to: c.agent?.id, defaultCapacity: 5, nowMs: now)
            if let a = c.agent { presence.restoreLeaving(a.id, nowMs: now) }
        }
    }

    public mutating func handle(_ input: SwitchboardInput<S>, now: Int64) -> [SwitchboardOutput<S>] {
        var out: [SwitchboardOutput<S>] = []
        let queueBefore = router.queue
        switch input {
        case .sessionOpened(let s, let user, let capacity, let resume):
            people[user.id] = user
            sessions[s] = Session(user: user, capacity: capacity)
            byUser[user.id, default: []].append(s)
            if presence.sessionOpened(user.id, nowMs: now) != nil {
                out.append(.presence(user, .online, to: counterparts(of: user.id)))
            }
            var mine = Set(ownConversations(user))
            mine.formUnion(resume.keys)
            var byPartition: [Int: [(ConversationID, resume: UInt64?)]] = [:]
            for c in mine.sorted(by: { ($0.high, $0.low) < ($1.high, $1.low) }) { byPartition[partitionOf(c), default: []].append((c, resume[c])) }
            sessions[s]!.attached = mine
            sessions[s]!.outstanding = Set(byPartition.keys)
            for (p, items) in byPartition.sorted(by: { $0.key < $1.key }) { out.append(.partitionIndex(p, .attach(s, user, items))) }
            if user.role == .agent {
                // Back after being marked gone: away until they say otherwise.
                if router.agents[user.id]?.status == .offline { _ = router.setStatus(agent: user.id, .away, nowMs: now) }
                assigned(router.sessionOpened(agent: user.id, capacity: capacity, nowMs: now), &out)
            }
            if byPartition.isEmpty { welcome(s, &out) }

        case .attached(let s, let p, let views):
            guard sessions[s] != nil, !sessions[s]!.welcomed else { break }
            sessions[s]!.views += views
            sessions[s]!.outstanding.remove(p)
            if sessions[s]!.outstanding.isEmpty { welcome(s, &out) }

        case .sessionClosed(let s):
            guard let info = sessions.removeValue(forKey: s) else { break }
            agentSessions.remove(s)
            byUser[info.user.id]?.removeAll { $0 == s }
            if byUser[info.user.id]?.isEmpty == true { byUser[info.user.id] = nil }
            presence.sessionClosed(info.user.id, nowMs: now)
            if info.user.role == .agent { router.sessionClosed(agent: info.user.id) }
            out.append(.allPartitions(.detach(s)))

        case .open(let s, let user, let ref, let order, let attachOrder):
            guard user.role == .customer else {
                out.append(.reply(s, .error(ref: ref, .forbidden, "only customers open conversations")))
                break
            }
            if let c = customerOpen[user.id] {
                out.append(.partition(c, .reopen(c, s, user, ref: ref, order: order, attachOrder: attachOrder)))
            } else {
                let c = newID()
                customerOpen[user.id] = c
                out.append(.partition(c, .create(c, customer: user, order: order, sessions: welcomed(user.id), opener: s, ref: ref)))
            }

        case .reopenRejected(let c, let s, let user, let ref, let order, let attachOrder):
            // The conversation was resolved meanwhile: open a new one.
            if customerOpen[user.id] == c { customerOpen[user.id] = nil }
            return handle(.open(s, user, ref: ref, order: order, attachOrder: attachOrder), now: now)

        case .created(let c, let customer, let createdMs):
            open[c] = Open(customer: customer, sinceMs: createdMs)
            if case .assigned(let agent) = router.route(c, nowMs: now) { assign(c, to: agent, waiter: nil, &out) }

        case .createFailed(let c, let customer):
            if customerOpen[customer] == c { customerOpen[customer] = nil }

        case .agentStatus(let s, let user, let status, let ref):
            guard user.role == .agent else {
                out.append(.reply(s, .error(ref: ref, .forbidden, "agent.status is for agents")))
                break
            }
            let before = router.agents[user.id]?.status
            statusAt[user.id] = now
            let moved = router.setStatus(agent: user.id, status, nowMs: now)
            if ref != nil { out.append(.reply(s, .ack(ref: ref, conversation: nil, seq: nil, ts: nil, clientMsgId: nil))) }
            if before != status, let p = PresenceStatus(rawValue: status.rawValue) {
                out.append(.presence(user, p, to: counterparts(of: user.id)))
            }
            assigned(moved, &out)

        case .claim(let s, let user, let c, let ref):
            guard user.role == .agent else {
                out.append(.reply(s, .error(ref: ref, .forbidden, "only agents claim conversations")))
                break
            }
            if router.claim(c, by: user.id, nowMs: now) {
                assign(c, to: user.id, waiter: (s, ref), &out)
            } else if open[c] == nil {
                out.append(.reply(s, .error(ref: ref, .notFound, "no such open conversation")))
            } else if !router.queue.contains(c) {
                out.append(.reply(s, .error(ref: ref, .conflict, "the conversation is not waiting")))
            } else {
                out.append(.reply(s, .error(ref: ref, .conflict, "set your status to available, under your capacity, to claim")))
            }

        case .transferRequested(let c, let from, let to, let s, let ref):
            if let to {
                guard let target = people[to], target.role == .agent else {
                    out.append(.reply(s, .error(ref: ref, .notFound, "no such agent")))
                    break
                }
                guard router.transfer(c, from: from.id, to: to, nowMs: now) != nil else {
                    out.append(.reply(s, .error(ref: ref, .conflict, "\(to) is not available or has no room")))
                    break
                }
                out.append(.partition(c, .transfer(c, from: from, to: target, sessions: welcomed(to), waiter: (s, ref))))
            } else {
                let outcome = router.transfer(c, from: from.id, to: nil, nowMs: now)
                out.append(.partition(c, .transfer(c, from: from, to: nil, sessions: [], waiter: (s, ref))))
                if case .assigned(let agent)? = outcome { assign(c, to: agent, waiter: nil, &out) }
            }

        case .resolved(let c, let customer, _):
            if customerOpen[customer] == c { customerOpen[customer] = nil }
            open[c] = nil
            assigned(router.release(c, nowMs: now), &out)

        case .resync(let c, let customer, let agent, let isOpen):
            if isOpen {
                if open[c] == nil { open[c] = Open(customer: customer, sinceMs: now) }
                if router.agent(of: c) != agent?.id {
                    router.force(c, to: agent?.id, defaultCapacity: 5, nowMs: now)
                }
            } else {
                open[c] = nil
                if customerOpen[customer.id] == c { customerOpen[customer.id] = nil }
                assigned(router.release(c, nowMs: now), &out)
            }

        case .tick:
            for change in presence.tick(nowMs: now) {
                guard case .offline(let id) = change, let user = people[id] else { continue }
                out.append(.presence(user, .offline, to: counterparts(of: id, also: lostWhileLeaving.removeValue(forKey: id) ?? [])))
                if user.role == .agent {
                    let (requeued, moved) = router.agentGone(id, nowMs: now)
                    if decides { for c in requeued { out.append(.partition(c, .transfer(c, from: user, to: nil, sessions: [], waiter: nil))) } }
                    assigned(moved, &out)
                }
            }
            for (agent, _) in lostWhileLeaving where presence.hasSession(agent) || !presence.isOnline(agent) { lostWhileLeaving[agent] = nil }
            for (node, r) in remote where now - r.heardMs > Self.remoteSilenceMs {
                applyRemote(node, [], now: now, &out)
                remote[node] = nil
            }

        case .replicated(let c):
            mirror(c, now: now, &out)

        case .remoteUsers(let node, let users):
            applyRemote(node, users, now: now, &out)

        case .decides(let on):
            decides = on
            router.assigns = on
            if on { assigned(router.drain(nowMs: now), &out) }
        }
        if router.queue != queueBefore, !agentSessions.isEmpty { out.append(.queue(queueEntries, to: Array(agentSessions))) }
        return out
    }

    /// This node's users with sessions here, for the other nodes (cluster mode).
    public var localUsers: [RemoteUser] {
        var out: [RemoteUser] = []
        for (id, list) in byUser {
            guard let first = list.first, let info = sessions[first] else { continue }
            let status = info.user.role == .agent ? router.agents[id]?.status : nil
            out.append(RemoteUser(person: info.user, sessions: list.count, capacity: info.capacity, status: status, statusAtMs: statusAt[id] ?? 0))
        }
        return out.sorted { $0.person.id < $1.person.id }
    }

    // MARK: internals

    /// Applies another node's list of users: sessions that appeared or went (presence, agents'
    /// room), and statuses set there after the last one known here.
    private mutating func applyRemote(_ node: String, _ users: [RemoteUser], now: Int64, _ out: inout [SwitchboardOutput<S>]) {
        let old = remote[node]?.users ?? [:]
        var new: [String: RemoteUser] = [:]
        for u in users { new[u.person.id] = u }
        remote[node] = (new, now)
        for id in Set(old.keys).union(new.keys).sorted() {
            let was = old[id]?.sessions ?? 0, now_ = new[id]?.sessions ?? 0
            let person = new[id]?.person ?? old[id]!.person
            if people[id] == nil { people[id] = person }
            if now_ > was {
                for _ in was..<now_ {
                    if presence.sessionOpened(id, nowMs: now) != nil { out.append(.presence(person, .online, to: counterparts(of: id))) }
                    if person.role == .agent { assigned(router.sessionOpened(agent: id, capacity: new[id]!.capacity, nowMs: now), &out) }
                }
            } else if now_ < was {
                for _ in now_..<was {
                    presence.sessionClosed(id, nowMs: now)
                    if person.role == .agent { router.sessionClosed(agent: id) }
                }
            }
            if let u = new[id], person.role == .agent, let st = u.status, u.statusAtMs > (statusAt[id] ?? -1) {
                statusAt[id] = u.statusAtMs
                let before = router.agents[id]?.status
                let moved = router.setStatus(agent: id, st, nowMs: now)
                if before != st, let p = PresenceStatus(rawValue: st.rawValue) { out.append(.presence(person, p, to: counterparts(of: id))) }
                assigned(moved, &out)
            }
        }
    }

    /// Puts a conversation where the log says it is after another node's event, and gives it to
    /// this node's welcomed sessions of its participants.
    private mutating func mirror(_ c: RestoredConversation, now: Int64, _ out: inout [SwitchboardOutput<S>]) {
        people[c.customer.id] = people[c.customer.id] ?? c.customer
        if c.resolved {
            open[c.id] = nil
            if customerOpen[c.customer.id] == c.id { customerOpen[c.customer.id] = nil }
            assigned(router.release(c.id, nowMs: now), &out)
            return
        }
        customerOpen[c.customer.id] = c.id
        if open[c.id] == nil { open[c.id] = Open(customer: c.customer, sinceMs: c.createdMs) }
        if let a = c.agent { people[a.id] = people[a.id] ?? a }
        if let was = router.agent(of: c.id), was != c.agent?.id, presence.isOnline(was), !presence.hasSession(was) {
            lostWhileLeaving[was, default: []].insert(c.id)
        }
        if router.agent(of: c.id) != c.agent?.id || (c.agent == nil && !router.queue.contains(c.id)) {
            router.force(c.id, to: c.agent?.id, defaultCapacity: 5, nowMs: now)
        }
        for p in [c.customer] + (c.agent.map { [$0] } ?? []) {
            for s in welcomed(p.id) { out.append(.partition(c.id, .subscribe(s, p, c.id, after: 0))) }
        }
    }

    private var queueEntries: [QueueEntry] {
        router.queue.compactMap { c in open[c].map { QueueEntry(conversation: c, customer: $0.customer, sinceMs: $0.sinceMs) } }
    }

    private func welcomed(_ user: String) -> [S] {
        (byUser[user] ?? []).filter { sessions[$0]?.welcomed == true }
    }

    private func ownConversations(_ user: Person) -> [ConversationID] {
        switch user.role {
        case .customer: return customerOpen[user.id].map { [$0] } ?? []
        case .agent: return Array(router.agents[user.id]?.open ?? [])
        }
    }

    /// Welcomed sessions of everyone who shares an open conversation with `user`.
    private func counterparts(of user: String, also: Set<ConversationID> = []) -> [S] {
        var ids: Set<String> = []
        if let c = customerOpen[user], let a = router.agent(of: c) { ids.insert(a) }
        for c in (router.agents[user]?.open ?? []).union(also) { if let o = open[c] { ids.insert(o.customer.id) } }
        return ids.sorted().flatMap { welcomed($0) }
    }

    private mutating func welcome(_ s: S, _ out: inout [SwitchboardOutput<S>]) {
        guard var info = sessions[s] else { return }
        info.welcomed = true
        sessions[s] = info
        out.append(.welcome(s, info.views.sorted { ($0.id.high, $0.id.low) < ($1.id.high, $1.id.low) }))
        for p in Set(info.attached.map(partitionOf)).sorted() { out.append(.partitionIndex(p, .release(s))) }
        // Conversations that became the user's while the welcome was being put together.
        for c in ownConversations(info.user) where !info.attached.contains(c) {
            out.append(.partition(c, .subscribe(s, info.user, c, after: 0)))
        }
        if info.user.role == .agent {
            agentSessions.insert(s)
            out.append(.queue(queueEntries, to: [s]))
        }
    }

    private mutating func assign(_ c: ConversationID, to agent: String, waiter: (S, String?)?, _ out: inout [SwitchboardOutput<S>]) {
        guard decides else { return }
        let person = people[agent] ?? Person(id: agent, role: .agent, name: agent)
        out.append(.partition(c, .assign(c, agent: person, sessions: welcomed(agent), waiter: waiter)))
        // Presence tells changes; on assignment each side learns where the other stands now.
        guard let customer = open[c]?.customer else { return }
        out.append(.presence(customer, presence.isOnline(customer.id) ? .online : .offline, to: welcomed(agent)))
        let status = presence.isOnline(agent) ? PresenceStatus(rawValue: (router.agents[agent]?.status ?? .away).rawValue) ?? .away : .offline
        out.append(.presence(person, status, to: welcomed(customer.id)))
    }

    private mutating func assigned(_ moves: [(ConversationID, String)], _ out: inout [SwitchboardOutput<S>]) {
        for (c, a) in moves { assign(c, to: a, waiter: nil, &out) }
    }
}

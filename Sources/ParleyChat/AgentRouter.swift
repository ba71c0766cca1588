// ParleyChat: the domain as deterministic state machines. No sockets, no JSON, no files, no clocks:
// time comes in as `nowMs`.

/// Who gets a conversation (protocol: "Routing"): an available agent with at least one open session
/// (a presence grace period does not count) and the fewest open conversations under their capacity;
/// ties go to the agent idle longest. With no such agent the conversation waits in a FIFO queue.
public struct AgentRouter<Conversation: Hashable & Sendable>: Sendable {
    public struct Agent: Sendable, Equatable {
        public var status: AgentStatus = .away  // "away until they set a status"
        public var capacity: Int
        public var sessions = 0
        public var open: Set<Conversation> = []
        /// Since when the agent has had nothing new: becoming available or last assignment.
        public var idleSinceMs: Int64 = 0

        public var canTakeMore: Bool { status == .available && sessions > 0 && open.count < capacity }
    }

    public enum Outcome: Equatable, Sendable {
        case assigned(agent: String)
        case queued(position: Int)
    }

    public private(set) var agents: [String: Agent] = [:]
    /// Conversations waiting for an agent, oldest first.
    public private(set) var queue: [Conversation] = []
    /// Off on a cluster node that does not write: it mirrors assignments from the log (`force`,
    /// `release`) and never makes its own.
    public var assigns = true

    public init() {}

    // MARK: agents

    /// An agent session opened. Returns conversations handed to the agent from the queue.
    public mutating func sessionOpened(agent id: String, capacity: Int, nowMs: Int64) -> [(Conversation, String)] {
        var a = agents[id] ?? Agent(capacity: capacity, idleSinceMs: nowMs)
        a.capacity = capacity
        a.sessions += 1
        agents[id] = a
        return drainQueue(nowMs: nowMs)
    }

    public mutating func sessionClosed(agent id: String) {
        guard var a = agents[id] else { return }
        a.sessions = max(0, a.sessions - 1)
        agents[id] = a
    }

    /// Sets an agent's status. Becoming available may take waiting conversations.
    public mutating func setStatus(agent id: String, _ status: AgentStatus, nowMs: Int64) -> [(Conversation, String)] {
        guard var a = agents[id] else { return [] }
        if status == .available, a.status != .available { a.idleSinceMs = nowMs }
        a.status = status
        agents[id] = a
        return drainQueue(nowMs: nowMs)
    }

    /// The agent has been gone past the grace period: their open conversations go back to the queue
    /// (front first, so they are not penalised) and are routed again. Returns the new assignments.
    public mutating func agentGone(_ id: String, nowMs: Int64) -> (requeued: [Conversation], assigned: [(Conversation, String)]) {
        guard var a = agents[id] else { return ([], []) }
        let orphans = Array(a.open)
        a.open = []
        a.status = .offline
        agents[id] = a
        queue.insert(contentsOf: orphans, at: 0)
        return (orphans, drainQueue(nowMs: nowMs))
    }

    // MARK: conversations

    /// A new (or unassigned) conversation needs an agent.
    public mutating func route(_ c: Conversation, nowMs: Int64) -> Outcome {
        if let agent = pick() {
            assign(c, to: agent, nowMs: nowMs)
            return .assigned(agent: agent)
        }
        if !queue.contains(c) { queue.append(c) }
        return .queued(position: queue.firstIndex(of: c)! + 1)
    }

    /// An agent takes a waiting conversation (`conversation.claim`). Nil if it is not waiting, or
    /// the agent cannot take more.
    public mutating func claim(_ c: Conversation, by agent: String, nowMs: Int64) -> Bool {
        guard let i = queue.firstIndex(of: c), let a = agents[agent], a.status == .available, a.open.count < a.capacity else { return false }
        queue.remove(at: i)
        assign(c, to: agent, nowMs: nowMs)
        return true
    }

    /// Moves a conversation from `from` to `to` (nil: back to the queue, then routed again).
    /// Fails if `to` is not available or is full.
    public mutating func transfer(_ c: Conversation, from: String, to: String?, nowMs: Int64) -> Outcome? {
        if let to {
            guard to != from, let b = agents[to], b.status == .available, b.open.count < b.capacity else { return nil }
            agents[from]?.open.remove(c)
            assign(c, to: to, nowMs: nowMs)
            _ = drainQueue(nowMs: nowMs)  // `from` has room again
            return .assigned(agent: to)
        }
        // Back to the queue, at the front. The agent who gave it up is left out of this one drain, so
        // the conversation never bounces straight back; they take waiting work on the next event.
        agents[from]?.open.remove(c)
        queue.insert(c, at: 0)
        let moved = drainQueue(nowMs: nowMs, excluding: from)
        if let hit = moved.first(where: { $0.0 == c }) { return .assigned(agent: hit.1) }
        return .queued(position: (queue.firstIndex(of: c) ?? 0) + 1)
    }

    /// A conversation ended (resolved): the agent has room, which may take the next waiting one.
    public mutating func release(_ c: Conversation, nowMs: Int64) -> [(Conversation, String)] {
        if let i = queue.firstIndex(of: c) { queue.remove(at: i) }
        for (id, a) in agents where a.open.contains(c) { agents[id]!.open.remove(c) }
        return drainQueue(nowMs: nowMs)
    }

    /// Puts a conversation where the log says it is (recovery, or after a refused change):
    /// with `agent`, or waiting at the back of the queue.
    public mutating func force(_ c: Conversation, to agent: String?, defaultCapacity: Int, nowMs: Int64) {
        if let i = queue.firstIndex(of: c) { queue.remove(at: i) }
        for (id, a) in agents where a.open.contains(c) { agents[id]!.open.remove(c) }
        if let agent {
            if agents[agent] == nil { agents[agent] = Agent(capacity: defaultCapacity, idleSinceMs: nowMs) }
            agents[agent]!.open.insert(c)
        } else {
            queue.append(c)
        }
    }

    public func agent(of c: Conversation) -> String? {
        agents.first { $0.value.open.contains(c) }?.key
    }

    /// Agents that could take a conversation now (for metrics).
    public var availableAgents: Int { agents.values.filter(\.canTakeMore).count }

    // MARK: internals

    /// Hands waiting conversations to agents who can take them (a node that just became the writer).
    public mutating func drain(nowMs: Int64) -> [(Conversation, String)] { drainQueue(nowMs: nowMs) }

    private func pick(excluding: String? = nil) -> String? {
        guard assigns else { return nil }
        var best: (id: String, load: Int, idle: Int64)? = nil
        for (id, a) in agents where a.canTakeMore && id != excluding {
            let candidate = (id: id, load: a.open.count, idle: a.idleSinceMs)
            if let b = best {
                // Fewest open conversations; then idle longest (earliest idleSince); then id, to stay deterministic.
                if (candidate.load, candidate.idle, candidate.id) < (b.load, b.idle, b.id) { best = candidate }
            } else {
                best = candidate
            }
        }
        return best?.id
    }

    private mutating func assign(_ c: Conversation, to agent: String, nowMs: Int64) {
        agents[agent]!.open.insert(c)
        agents[agent]!.idleSinceMs = nowMs
    }

    private mutating func drainQueue(nowMs: Int64, excluding: String? = nil) -> [(Conversation, String)] {
        var out: [(Conversation, String)] = []
        while let c = queue.first, let agent = pick(excluding: excluding) {
            queue.removeFirst()
            assign(c, to: agent, nowMs: nowMs)
            out.append((c, agent))
        }
        return out
    }
}

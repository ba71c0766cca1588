/// Online while at least one session is connected; offline only once the last session has been
/// closed for the grace period, so a quick reconnect does not flap. Time is injected (`nowMs`).
public struct PresenceTracker: Sendable {
    public enum Change: Equatable, Sendable {
        case online(String)
        case offline(String)
    }

    public let graceMs: Int64
    private var sessions: [String: Int] = [:]
    /// Users whose last session closed, and when they turn offline unless they come back.
    private var leaving: [String: Int64] = [:]
    private var online: Set<String> = []

    public init(graceMs: Int64 = 5_000) { self.graceMs = graceMs }

    public func isOnline(_ user: String) -> Bool { online.contains(user) }

    /// Users with at least one open session now (the grace period does not count).
    public func hasSession(_ user: String) -> Bool { (sessions[user] ?? 0) > 0 }

    public mutating func sessionOpened(_ user: String, nowMs: Int64) -> Change? {
        sessions[user, default: 0] += 1
        leaving[user] = nil
        if online.insert(user).inserted { return .online(user) }
        return nil
    }

    public mutating func sessionClosed(_ user: String, nowMs: Int64) {
        guard let n = sessions[user], n > 0 else { return }
        if n == 1 {
            sessions[user] = nil
            leaving[user] = nowMs + graceMs
        } else {
            sessions[user] = n - 1
        }
    }

    /// After a restart: the user was connected before it and counts as online until the grace
    /// period runs out without a session.
    public mutating func restoreLeaving(_ user: String, nowMs: Int64) {
        guard (sessions[user] ?? 0) == 0 else { return }
        online.insert(user)
        leaving[user] = nowMs + graceMs
    }

    /// Users whose grace period is over, in the order they left.
    public mutating func tick(nowMs: Int64) -> [Change] {
        let due = leaving.filter { $0.value <= nowMs }.sorted { ($0.value, $0.key) < ($1.value, $1.key) }
        var out: [Change] = []
        for (user, _) in due {
            leaving[user] = nil
            if online.remove(user) != nil { out.append(.offline(user)) }
        }
        return out
    }

    /// When the next user turns offline (for the server's timer), if anyone is leaving.
    public var nextDeadlineMs: Int64? { leaving.values.min() }
}

import Foundation
import ParleyChat
import ParleyLog
import ParleyProtocol

/// The requests of SPEC §4, as async calls. Made while disconnected, they wait for the next
/// welcome; in flight when the connection drops, they fail with `disconnected` (they may or may
/// not have been applied). Messages are different: see `send`.
extension ChatClient {
    /// Customers: opens the conversation (or returns the open one) on the last order by default,
    /// so the agent sees the order before the first word.
    public func open(order: OrderChoice = .last) async throws -> ConversationView {
        guard case .reply(.opened(_, let view)) = try await request(.open(order: order)) else { throw unexpected("conversation.opened") }
        return conversations[view.id] ?? view
    }

    /// Sends a message. It is saved in the outbox (in the store) before it goes on the wire and
    /// stays there until the server acknowledges it: resent with the same `clientMsgId` after
    /// every reconnect, and by the next client of this user after an app restart. Returns the
    /// ack: the message is durably stored at `seq`.
    public func send(text: String, in conversation: ConversationID, clientMsgId: String = UUID().uuidString.lowercased()) async throws -> MessageAck {
        guard !text.isEmpty else { throw ChatClientError(.invalid, "text must not be empty") }
        guard text.utf8.count <= ChatLimits.maxTextBytes else { throw ChatClientError(.invalid, "text over \(ChatLimits.maxTextBytes) bytes") }
        guard (1...ChatLimits.maxClientMsgIdBytes).contains(clientMsgId.utf8.count) else {
            throw ChatClientError(.invalid, "clientMsgId must be 1 to \(ChatLimits.maxClientMsgIdBytes) bytes")
        }
        if case .closed = state { throw ChatClientError(.closed, "client closed") }
        if case .unauthorized(let why) = state { throw ChatClientError(.unauthorized, why) }
        typing(conversation, active: false)
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<MessageAck, Error>) in
            sendWaiters[clientMsgId, default: []].append(c)
            guard !persisted.outbox.contains(where: { $0.clientMsgId == clientMsgId }) else { return }
            let m = OutboxEntry(conversation: conversation.description, clientMsgId: clientMsgId, text: text,
                                at: Int64(Date().timeIntervalSince1970 * 1000))
            persisted.outbox.append(m)
            guard saveNow() else {
                persisted.outbox.removeLast()
                let waiters = sendWaiters.removeValue(forKey: clientMsgId) ?? []
                for w in waiters { w.resume(throwing: ChatClientError(.storage, "the outbox could not be saved; nothing was sent")) }
                return
            }
            emit(.outbox(persisted.outbox))
            transmitSend(m)
        }
    }

    /// Messages handed to `send` and not yet acknowledged, oldest first.
    public var outbox: [OutboxEntry] { persisted.outbox }

    /// Typing: call on every keystroke (sent at most every 3 s while it lasts), `false` when done.
    public func typing(_ conversation: ConversationID, active: Bool = true) {
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        if active {
            if let last = typingSentMs[conversation], now - last < ChatLimits.typingTimeoutMs - 2000 { return }
            typingSentMs[conversation] = now
        } else {
            guard typingSentMs.removeValue(forKey: conversation) != nil else { return }
        }
        transmit(.typing(conversation, active: active))
    }

    /// Moves this user's read cursor forward to `seq` (never back).
    public func markRead(_ conversation: ConversationID, seq: UInt64) async throws {
        if let v = conversations[conversation] {
            guard seq > v.readSeq else { return }
            conversations[conversation]?.readSeq = seq
        }
        _ = try await request(.read(conversation, seq: seq))
    }

    /// The latest `limit` events before `before` (default: the end), ascending: page backwards by
    /// passing the first `seq` of the previous page as `before`.
    public func history(_ conversation: ConversationID, before: UInt64? = nil, limit: Int? = nil) async throws -> [SequencedEvent] {
        guard case .history(_, _, let events) = try await request(.history(conversation, before: before, limit: limit)) else { throw unexpected("history") }
        return events
    }

    /// Agents: available, away or offline; re-sent after every reconnect.
    public func setStatus(_ status: AgentStatus) async throws {
        agentStatus = status
        _ = try await request(.agentStatus(status))
    }

    /// Agents: takes a waiting conversation.
    public func claim(_ conversation: ConversationID) async throws { _ = try await request(.claim(conversation)) }

    /// Agents: hands the conversation to another agent, or back to the queue (`to: nil`).
    public func transfer(_ conversation: ConversationID, to agent: String?) async throws { _ = try await request(.transfer(conversation, to: agent)) }

    public func resolve(_ conversation: ConversationID) async throws { _ = try await request(.resolve(conversation)) }

    /// Customers, after resolution: a score of 1 to 5 and an optional comment.
    public func csat(_ conversation: ConversationID, score: Int, comment: String? = nil) async throws {
        guard (1...5).contains(score) else { throw ChatClientError(.invalid, "score must be 1 to 5") }
        if let c = comment, c.utf8.count > ChatLimits.maxCommentBytes { throw ChatClientError(.invalid, "comment over \(ChatLimits.maxCommentBytes) bytes") }
        _ = try await request(.csat(conversation, score: score, comment: comment))
    }

    func request(_ r: ClientRequest) async throws -> ServerFrame {
        if state == .closed { throw ChatClientError(.closed, "client closed") }
        if case .unauthorized(let why) = state { throw ChatClientError(.unauthorized, why) }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<ServerFrame, Error>) in
            transmit(Request(request: r, continuation: c))
        }
    }

    private func unexpected(_ what: String) -> ChatClientError { ChatClientError(.invalid, "the server did not answer with \(what)") }
}

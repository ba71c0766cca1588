import ParleyChat
import ParleyLog
import ParleyProtocol

/// Where a `ChatClient`'s connection stands.
public enum ConnectionState: Equatable, Sendable {
    case idle
    /// The first connection is being made.
    case connecting
    /// Welcomed: requests go out at once.
    case open
    /// Lost, or refused: trying again (in this many ms, when known).
    case reconnecting(inMs: Int?)
    /// The token was refused twice in a row: stopped until `connect` is called again.
    case unauthorized(String)
    /// `close()` was called.
    case closed
}

/// An error a request (or the connection) got.
public struct ChatClientError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: Equatable, Sendable {
        /// The server's `error` frame (SPEC §4.1).
        case server(ChatErrorCode)
        /// The connection dropped before the reply; the request may or may not have been applied.
        case disconnected
        /// `close()` was called.
        case closed
        /// The token was refused (twice: a fresh one did not help either).
        case unauthorized
        /// Refused here before sending: the server would refuse it too.
        case invalid
        /// The store could not save the outbox: the message was not sent.
        case storage
        /// No reply within `requestTimeoutMs` (the connection is kept: the reply may still come
        /// and is then ignored).
        case timeout
    }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }

    /// Whether the same request may succeed later (the server stored nothing).
    public var retryable: Bool {
        switch code {
        case .server(.unavailable), .server(.rateLimited), .disconnected: return true
        default: return false
        }
    }

    public var description: String { "\(code): \(message)" }
}

/// The server's acknowledgement of a message: stored durably at `seq`.
public struct MessageAck: Equatable, Sendable {
    public var conversation: ConversationID
    public var clientMsgId: String
    public var seq: UInt64
    public var ts: Int64
}

/// What a `ChatClient` tells the app, in the order it happened.
public enum ChatClientEvent: Sendable {
    case state(ConnectionState)
    /// A session began (after every reconnect).
    case welcome(Welcome)
    /// A sequenced event, live or replayed on resume: each one once, in `seq` order per conversation.
    case event(SequencedEvent)
    /// A conversation's view changed (an event, an open, a welcome).
    case conversation(ConversationView)
    case typing(ConversationID, user: Person, active: Bool)
    case read(ConversationID, user: Person, seq: UInt64)
    case presence(userId: String, role: ChatRole, status: PresenceStatus)
    /// Agents: the waiting queue.
    case queue([QueueEntry])
    /// The server's history epoch changed (restored or cut): positions were forgotten and the
    /// session restarted without resume. Reload what is shown from `history`.
    case reset(previousEpoch: String, epoch: String)
    case resumeFailed(conversation: String, reason: String)
    /// Events between `after` and `seq` were not seen (a resume from too far back): load history.
    case gap(ConversationID, after: UInt64, seq: UInt64)
    /// The unacknowledged messages, oldest first, whenever that list changes.
    case outbox([OutboxEntry])
    /// The server refused a message for good (it is out of the outbox).
    case sendFailed(OutboxEntry, ChatClientError)
    case disconnected(code: UInt16, reason: String)
    case error(ChatClientError)
}

/// Jittered exponential backoff: attempt 0, 1, 2… waits a random time in [d/2, d],
/// d = min(maxMs, initialMs·2ⁿ) (the JavaScript SDK's formula, SPEC §2.5).
public struct Backoff: Sendable {
    public var initialMs: Int
    public var maxMs: Int
    public init(initialMs: Int = 250, maxMs: Int = 10_000) { self.initialMs = initialMs; self.maxMs = maxMs }

    public func delayMs(attempt: Int, random: Double = Double.random(in: 0...1)) -> Int {
        let base = min(Double(maxMs), Double(initialMs) * Double(1 << min(attempt, 30)))
        return Int((base / 2 + random * base / 2).rounded())
    }
}

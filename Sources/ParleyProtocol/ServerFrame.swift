import ParleyChat
import ParleyLog

/// What `welcome` tells a client about its session.
public struct Welcome: Equatable, Sendable {
    public var session: String
    public var epoch: String
    public var user: Person
    public var conversations: [ConversationView]
    public init(session: String, epoch: String, user: Person, conversations: [ConversationView]) {
        self.session = session; self.epoch = epoch; self.user = user; self.conversations = conversations
    }
}

/// Server → client frames of protocol v1, as values (Protocol/SPEC.md §3): what the SDK and
/// `parley-load` read, and what `ServerFrames.encode` writes.
public enum ServerFrame: Equatable, Sendable {
    /// A sequenced event, live or replayed.
    case event(SequencedEvent)
    case welcome(Welcome)
    /// The direct answer to one request: `ack`, `conversation.opened` or `error`.
    case reply(ChatReply)
    case history(ref: String?, conversation: ConversationID, events: [SequencedEvent])
    case typing(ConversationID, user: Person, active: Bool)
    case read(ConversationID, user: Person, seq: UInt64)
    case presence(userId: String, role: ChatRole, status: PresenceStatus)
    case queue([QueueEntry])
    case resumeFailed(conversation: String, reason: String)

    public var type: EventType {
        switch self {
        case .event(let e): return e.event.type
        case .welcome: return .welcome
        case .reply(.ack): return .ack
        case .reply(.opened): return .opened
        case .reply(.error): return .error
        case .history: return .history
        case .typing: return .typing
        case .read: return .read
        case .presence: return .presence
        case .queue: return .queue
        case .resumeFailed: return .resumeFailed
        }
    }
}

extension ChatEvent {
    public var type: EventType {
        switch self {
        case .created: return .created
        case .message: return .message
        case .orderAttached: return .orderAttached
        case .assigned: return .assigned
        case .transferred: return .transferred
        case .resolved: return .resolved
        case .csat: return .csat
        }
    }
}

extension ServerFrames {
    /// The frame's bytes, as the server sends them.
    public static func encode(_ f: ServerFrame) -> [UInt8] {
        switch f {
        case .event(let e): return event(e)
        case .welcome(let w): return welcome(session: w.session, epoch: w.epoch, user: w.user, conversations: w.conversations)
        case .reply(let r): return reply(r)
        case .history(let ref, let c, let events): return history(ref: ref, conversation: c, events: events.map(event))
        case .typing(let c, let user, let active): return typing(c, user: user, active: active)
        case .read(let c, let user, let seq): return read(c, user: user, seq: seq)
        case .presence(let id, let role, let status): return presence(userId: id, role: role, status)
        case .queue(let entries): return queue(entries)
        case .resumeFailed(let c, let reason): return resumeFailed(c, reason: reason)
        }
    }
}

import ParleyLog

public enum ChatRole: String, Sendable, Hashable, CaseIterable {
    case customer, agent
}

/// A person as the protocol shows one: `{"id","role","name"}`.
public struct Person: Hashable, Sendable {
    public var id: String
    public var role: ChatRole
    public var name: String
    public init(id: String, role: ChatRole, name: String) { self.id = id; self.role = role; self.name = name }
}

/// An order as the REST API stored it: its id and its JSON object, opaque to the domain.
public struct OrderSnapshot: Equatable, Sendable {
    public var id: String
    public var json: [UInt8]
    public init(id: String, json: [UInt8]) { self.id = id; self.json = json }
}

/// The sequenced events of a conversation (the protocol's "Conversations and sequenced events").
public enum ChatEvent: Equatable, Sendable {
    case created(customer: Person, order: OrderSnapshot?)
    case message(from: Person, text: String, clientMsgId: String)
    case orderAttached(OrderSnapshot)
    case assigned(agent: Person)
    case transferred(from: Person, to: Person?)
    case resolved(by: Person)
    case csat(from: Person, score: Int, comment: String?)

    public var recordType: RecordType {
        switch self {
        case .created: return .conversationCreated
        case .message: return .message
        case .orderAttached: return .orderAttached
        case .assigned: return .conversationAssigned
        case .transferred: return .conversationTransferred
        case .resolved: return .conversationResolved
        case .csat: return .csat
        }
    }
}

/// One sequenced event with its place in the conversation.
public struct SequencedEvent: Equatable, Sendable {
    public var conversation: ConversationID
    public var seq: UInt64
    public var ts: Int64
    public var event: ChatEvent
    public init(conversation: ConversationID, seq: UInt64, ts: Int64, event: ChatEvent) {
        self.conversation = conversation; self.seq = seq; self.ts = ts; self.event = event
    }
}

/// Request-level error codes (protocol "Errors").
public enum ChatErrorCode: String, Sendable, CaseIterable {
    case invalidRequest = "invalid_request"
    case unauthorized, forbidden
    case notFound = "not_found"
    case conflict
    case tooLarge = "too_large"
    case rateLimited = "rate_limited"
    case unavailable, `internal`
}

public enum ConversationStatus: String, Sendable, CaseIterable {
    /// Open, waiting for an agent.
    case queued
    /// Open, with an agent.
    case assigned
    case resolved
}

/// What `welcome` and `conversation.opened` show of a conversation.
public struct ConversationView: Equatable, Sendable {
    public var id: ConversationID
    public var status: ConversationStatus
    public var customer: Person
    public var agent: Person?
    public var order: OrderSnapshot?
    public var lastSeq: UInt64
    /// The viewing user's read marker.
    public var readSeq: UInt64

    public init(id: ConversationID, status: ConversationStatus, customer: Person, agent: Person?, order: OrderSnapshot?, lastSeq: UInt64, readSeq: UInt64) {
        self.id = id; self.status = status; self.customer = customer; self.agent = agent; self.order = order
        self.lastSeq = lastSeq; self.readSeq = readSeq
    }
}

/// A direct reply to one request of one session.
public enum ChatReply: Equatable, Sendable {
    case ack(ref: String?, conversation: ConversationID?, seq: UInt64?, ts: Int64?, clientMsgId: String?)
    case opened(ref: String?, ConversationView)
    case error(ref: String?, ChatErrorCode, String)
}

/// Limits the domain enforces.
public enum ChatLimits {
    public static let maxTextBytes = 16 * 1024
    public static let maxClientMsgIdBytes = 64
    public static let maxCommentBytes = 2 * 1024
    public static let typingTimeoutMs: Int64 = 5_000
    public static let historyDefault = 50
    public static let historyMax = 1_000
}

/// The key a `clientMsgId` is de-duplicated under: per sender, so two people's ids never collide.
public func idempotencyKey(sender: String, clientMsgId: String) -> [UInt8] {
    Array(sender.utf8) + [0] + Array(clientMsgId.utf8)
}

/// A read marker as the log stores it (a record without a sequence): `u64 seq LE | user id`.
public enum ReadMarkerCodec {
    public static func encode(user: String, seq: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        withUnsafeBytes(of: seq.littleEndian) { out += $0 }
        return out + Array(user.utf8)
    }

    public static func decode(_ p: [UInt8]) -> (user: String, seq: UInt64)? {
        guard p.count > 8 else { return nil }
        var s: UInt64 = 0
        for i in 0..<8 { s |= UInt64(p[i]) << (8 * UInt64(i)) }
        return (String(decoding: p[8...], as: UTF8.self), s)
    }
}

/// An agent's chosen status (protocol: "agent.status").
public enum AgentStatus: String, Sendable, CaseIterable {
    case available, away, offline
}

/// One waiting conversation in the queue agents see (protocol: "queue").
public struct QueueEntry: Equatable, Sendable {
    public var conversation: ConversationID
    public var customer: Person
    public var sinceMs: Int64
    public init(conversation: ConversationID, customer: Person, sinceMs: Int64) {
        self.conversation = conversation; self.customer = customer; self.sinceMs = sinceMs
    }
}

/// What a counterpart sees of someone (protocol: "presence").
public enum PresenceStatus: String, Sendable, CaseIterable {
    case online, offline, available, away
}


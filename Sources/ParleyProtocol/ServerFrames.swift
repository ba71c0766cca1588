import Foundation
import ParleyChat
import ParleyLog
import ParleyJSON

/// Server → client frames of protocol v1 (Protocol/SPEC.md §3). Sequenced events are encoded once,
/// when they are created: the same bytes are the log record's payload, every recipient's frame
/// and, later, replays and history.
public enum ServerFrames {
    public static func event(_ e: SequencedEvent) -> [UInt8] {
        var w = JSONWriter()
        w.open()
        w.field("type", e.event.type.rawValue)
        w.field("conversation", e.conversation)
        w.field("seq", e.seq)
        w.field("ts", e.ts)
        switch e.event {
        case .created(let customer, let order):
            w.person("customer", customer); w.order("order", order)
        case .message(let from, let text, let clientMsgId):
            w.person("from", from); w.field("text", text); w.field("clientMsgId", clientMsgId)
        case .orderAttached(let order):
            w.order("order", order)
        case .assigned(let agent):
            w.person("agent", agent)
        case .transferred(let from, let to):
            w.person("from", from); w.person("to", to)
        case .resolved(let by):
            w.person("by", by)
        case .csat(let from, let score, let comment):
            w.person("from", from); w.field("score", score); w.field("comment", comment)
        }
        w.close()
        return w.bytes
    }

    /// Reads back an event this server wrote (recovery, followers). Nil for anything else.
    public static func decodeEvent(_ payload: [UInt8]) -> SequencedEvent? {
        guard case .success(.event(let e)) = decode(payload) else { return nil }
        return e
    }

    public static func welcome(session: String, epoch: String, user: Person, conversations: [ConversationView]) -> [UInt8] {
        var w = JSONWriter(capacity: 256 + 256 * conversations.count)
        w.open()
        w.field("type", EventType.welcome.rawValue)
        w.field("session", session)
        w.field("epoch", epoch)
        w.person("user", user)
        w.openArray("conversations")
        for v in conversations { view(&w, v) }
        w.closeArray()
        w.close()
        return w.bytes
    }

    public static func opened(ref: String?, _ v: ConversationView) -> [UInt8] {
        var w = JSONWriter()
        w.open()
        w.field("type", EventType.opened.rawValue)
        if let ref { w.field("ref", ref) }
        w.key("conversation")
        view(&w, v)
        w.close()
        return w.bytes
    }

    public static func view(_ w: inout JSONWriter, _ v: ConversationView) {
        w.open()
        w.field("id", v.id)
        w.field("status", v.status.rawValue)
        w.person("customer", v.customer)
        w.person("agent", v.agent)
        w.order("order", v.order)
        w.field("lastSeq", v.lastSeq)
        w.field("readSeq", v.readSeq)
        w.close()
    }

    public static func reply(_ r: ChatReply) -> [UInt8] {
        switch r {
        case .ack(let ref, let conversation, let seq, let ts, let clientMsgId):
            return ack(ref: ref, conversation: conversation, seq: seq, ts: ts, clientMsgId: clientMsgId)
        case .opened(let ref, let v):
            return opened(ref: ref, v)
        case .error(let ref, let code, let message):
            return error(ref: ref, code, message)
        }
    }

    public static func ack(ref: String?, conversation: ConversationID? = nil, seq: UInt64? = nil, ts: Int64? = nil, clientMsgId: String? = nil) -> [UInt8] {
        var w = JSONWriter(capacity: 160)
        w.open()
        w.field("type", EventType.ack.rawValue)
        if let ref { w.field("ref", ref) }
        if let conversation { w.field("conversation", conversation) }
        if let clientMsgId { w.field("clientMsgId", clientMsgId) }
        if let seq { w.field("seq", seq) }
        if let ts { w.field("ts", ts) }
        w.close()
        return w.bytes
    }

    public static func error(ref: String?, _ code: ChatErrorCode, _ message: String) -> [UInt8] {
        var w = JSONWriter()
        w.open()
        w.field("type", EventType.error.rawValue)
        if let ref { w.field("ref", ref) }
        w.field("code", code.rawValue)
        w.field("message", message)
        w.close()
        return w.bytes
    }

    public static func history(ref: String?, conversation: ConversationID, events: [[UInt8]]) -> [UInt8] {
        var w = JSONWriter(capacity: 128 + events.reduce(0) { $0 + $1.count + 1 })
        w.open()
        w.field("type", EventType.history.rawValue)
        if let ref { w.field("ref", ref) }
        w.field("conversation", conversation)
        w.openArray("events")
        for e in events { w.rawValue(e) }
        w.closeArray()
        w.close()
        return w.bytes
    }

    public static func typing(_ c: ConversationID, user: Person, active: Bool) -> [UInt8] {
        userFrame(.typing, c, user) { $0.field("active", active) }
    }

    public static func read(_ c: ConversationID, user: Person, seq: UInt64) -> [UInt8] {
        userFrame(.read, c, user) { $0.field("seq", seq) }
    }

    /// `{"type","conversation","user",…}`: what one participant did, for the others.
    static func userFrame(_ type: EventType, _ c: ConversationID, _ user: Person, _ rest: (inout JSONWriter) -> Void) -> [UInt8] {
        var w = JSONWriter(capacity: 160)
        w.open()
        w.field("type", type.rawValue)
        w.field("conversation", c)
        w.person("user", user)
        rest(&w)
        w.close()
        return w.bytes
    }

    public static func presence(userId: String, role: ChatRole, _ status: PresenceStatus) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.open()
        w.field("type", EventType.presence.rawValue)
        w.key("user"); w.open(); w.field("id", userId); w.field("role", role.rawValue); w.close()
        w.field("status", status.rawValue)
        w.close()
        return w.bytes
    }

    public static func queue(_ entries: [QueueEntry]) -> [UInt8] {
        var w = JSONWriter(capacity: 64 + 128 * entries.count)
        w.open()
        w.field("type", EventType.queue.rawValue)
        w.openArray("waiting")
        for e in entries {
            w.open()
            w.field("conversation", e.conversation)
            w.person("customer", e.customer)
            w.field("since", e.sinceMs)
            w.close()
        }
        w.closeArray()
        w.close()
        return w.bytes
    }

    public static func resumeFailed(_ c: String, reason: String) -> [UInt8] {
        var w = JSONWriter(capacity: 128)
        w.open()
        w.field("type", EventType.resumeFailed.rawValue)
        w.field("conversation", c)
        w.field("reason", reason)
        w.close()
        return w.bytes
    }
}

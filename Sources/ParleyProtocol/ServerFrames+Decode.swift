import ParleyChat
import ParleyJSON
import ParleyLog

/// Why a server frame could not be read.
public struct ServerFrameError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension ServerFrames {
    /// Reads a server frame (the SDK, `parley-load`, followers and recovery read events with it):
    /// one pass of `JSONScanner` collects the members as tokens, then the frame is built from them.
    /// Unknown members are ignored; an unknown `type` is an error the caller may skip.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Result<ServerFrame, ServerFrameError> {
        var s = JSONScanner(bytes)
        var f = Fields()
        do throws(JSONScanner.Failure) {
            try s.beginObject()
            while let k = try s.nextKey() { try f.take(k, &s) }
            try s.end()
        } catch {
            return .failure(ServerFrameError("not a JSON object: \(error)"))
        }
        do throws(ServerFrameError) {
            return .success(try frame(f, s))
        } catch {
            return .failure(error)
        }
    }

    public static func decode(_ bytes: [UInt8]) -> Result<ServerFrame, ServerFrameError> {
        bytes.withUnsafeBytes { decode($0) }
    }

    /// The members a server frame may have; the last of duplicates wins.
    struct Fields {
        var type = JSONSlot.absent, ref = JSONSlot.absent, conversation = JSONSlot.absent, seq = JSONSlot.absent
        var ts = JSONSlot.absent, customer = JSONSlot.absent, order = JSONSlot.absent, from = JSONSlot.absent
        var text = JSONSlot.absent, clientMsgId = JSONSlot.absent, agent = JSONSlot.absent, to = JSONSlot.absent
        var by = JSONSlot.absent, score = JSONSlot.absent, comment = JSONSlot.absent, session = JSONSlot.absent
        var epoch = JSONSlot.absent, user = JSONSlot.absent, conversations = JSONSlot.absent, code = JSONSlot.absent
        var message = JSONSlot.absent, events = JSONSlot.absent, active = JSONSlot.absent, status = JSONSlot.absent
        var waiting = JSONSlot.absent, reason = JSONSlot.absent

        mutating func take(_ k: JSONString, _ s: inout JSONScanner) throws(JSONScanner.Failure) {
            switch k.raw.count {
            case 2 where k.equals("by"): by = try s.slot()
            case 2 where k.equals("to"): to = try s.slot()
            case 2 where k.equals("ts"): ts = try s.slot()
            case 3 where k.equals("ref"): ref = try s.slot()
            case 3 where k.equals("seq"): seq = try s.slot()
            case 4 where k.equals("code"): code = try s.slot()
            case 4 where k.equals("from"): from = try s.slot()
            case 4 where k.equals("text"): text = try s.slot()
            case 4 where k.equals("type"): type = try s.slot()
            case 4 where k.equals("user"): user = try s.slot()
            case 5 where k.equals("agent"): agent = try s.slot()
            case 5 where k.equals("epoch"): epoch = try s.slot()
            case 5 where k.equals("order"): order = try s.slot()
            case 5 where k.equals("score"): score = try s.slot()
            case 6 where k.equals("active"): active = try s.slot()
            case 6 where k.equals("events"): events = try s.slot()
            case 6 where k.equals("reason"): reason = try s.slot()
            case 6 where k.equals("status"): status = try s.slot()
            case 7 where k.equals("comment"): comment = try s.slot()
            case 7 where k.equals("message"): message = try s.slot()
            case 7 where k.equals("session"): session = try s.slot()
            case 7 where k.equals("waiting"): waiting = try s.slot()
            case 8 where k.equals("customer"): customer = try s.slot()
            case 11 where k.equals("clientMsgId"): clientMsgId = try s.slot()
            case 12 where k.equals("conversation"): conversation = try s.slot()
            case 13 where k.equals("conversations"): conversations = try s.slot()
            default:
                // An escaped name (rare) is compared decoded; anything else is skipped, checked.
                if k.escaped { return try k.withDecoded { (plain) throws(JSONScanner.Failure) in try take(plain, &s) } }
                try s.skip()
            }
        }
    }

    static func frame(_ f: Fields, _ s: JSONScanner) throws(ServerFrameError) -> ServerFrame {
        guard let t = f.type.token else { throw ServerFrameError("type (string) is required") }
        guard let type = EventType(t) else { throw ServerFrameError("unknown type \"\(t.string.prefix(64))\"") }
        let ref = f.ref.string
        switch type {
        case .created, .message, .orderAttached, .assigned, .transferred, .resolved, .csat:
            return .event(try event(type, f, s))
        case .welcome:
            guard let session = f.session.string, let epoch = f.epoch.string else { throw ServerFrameError("welcome needs session and epoch") }
            let user = try person(f.user, s, "user")
            let views = try array(f.conversations, s, "welcome needs conversations") { view($0, s) }
            return .welcome(Welcome(session: session, epoch: epoch, user: user, conversations: views))
        case .ack:
            var c: ConversationID? = nil
            if !f.conversation.isNone { c = try conversationID(f.conversation) }
            return .reply(.ack(ref: ref, conversation: c, seq: f.seq.uint, ts: f.ts.int, clientMsgId: f.clientMsgId.string))
        case .opened:
            guard let at = f.conversation.objectStart else { throw ServerFrameError("conversation.opened needs its conversation") }
            return .reply(.opened(ref: ref, try view(at, s).get()))
        case .error:
            guard let c = f.code.token, let code = ChatErrorCode(wireName: c) else {
                throw ServerFrameError("error needs a known code")
            }
            return .reply(.error(ref: ref, code, f.message.string ?? ""))
        case .history:
            let c = try conversationID(f.conversation)
            let events = try array(f.events, s, "history needs events") { eventObject(at: $0, s) }
            return .history(ref: ref, conversation: c, events: events)
        case .typing:
            guard let active = f.active.bool else { throw ServerFrameError("typing needs active") }
            return .typing(try conversationID(f.conversation), user: try person(f.user, s, "user"), active: active)
        case .read:
            guard let seq = f.seq.uint else { throw ServerFrameError("read needs seq") }
            return .read(try conversationID(f.conversation), user: try person(f.user, s, "user"), seq: seq)
        case .presence:
            guard let st = f.status.token, let status = PresenceStatus(wireName: st) else {
                throw ServerFrameError("presence needs a known status")
            }
            let user = try person(f.user, s, "presence user")
            return .presence(userId: user.id, role: user.role, status: status)
        case .queue:
            return .queue(try array(f.waiting, s, "queue needs waiting") { queueEntry(at: $0, s) })
        case .resumeFailed:
            guard let c = f.conversation.string, let reason = f.reason.string else { throw ServerFrameError("resume_failed needs conversation and reason") }
            return .resumeFailed(conversation: c, reason: reason)
        }
    }

    /// A sequenced event: from a frame's members, or (history) an object of the array.
    static func event(_ type: EventType, _ f: Fields, _ s: JSONScanner) throws(ServerFrameError) -> SequencedEvent {
        let c = try conversationID(f.conversation)
        guard let seq = f.seq.uint, seq > 0, let ts = f.ts.int else { throw ServerFrameError("an event needs seq and ts") }
        let event: ChatEvent
        switch type {
        case .created:
            event = .created(customer: try person(f.customer, s, "customer"), order: try order(f.order, s))
        case .message:
            guard let text = f.text.string, let m = f.clientMsgId.string else { throw ServerFrameError("message needs text and clientMsgId") }
            event = .message(from: try person(f.from, s, "from"), text: text, clientMsgId: m)
        case .orderAttached:
            guard let o = try order(f.order, s) else { throw ServerFrameError("order.attached needs order") }
            event = .orderAttached(o)
        case .assigned:
            event = .assigned(agent: try person(f.agent, s, "agent"))
        case .transferred:
            event = .transferred(from: try person(f.from, s, "from"), to: f.to.isNone ? nil : try person(f.to, s, "to"))
        case .resolved:
            event = .resolved(by: try person(f.by, s, "by"))
        case .csat:
            guard let score = f.score.int else { throw ServerFrameError("csat needs score") }
            event = .csat(from: try person(f.from, s, "from"), score: Int(clamping: score), comment: f.comment.string)
        default:
            throw ServerFrameError("\(type.rawValue) is no sequenced event")
        }
        return SequencedEvent(conversation: c, seq: seq, ts: ts, event: event)
    }

    static func eventObject(at offset: Int, _ s: JSONScanner) -> Result<SequencedEvent, ServerFrameError> {
        var f = Fields()
        guard s.eachMember(at: offset, { (k: JSONString, r: inout JSONScanner) throws(JSONScanner.Failure) in try f.take(k, &r) }) else { return .failure(ServerFrameError("an event is an object")) }
        guard let t = f.type.token, let type = EventType(t) else { return .failure(ServerFrameError("an event needs a known type")) }
        do throws(ServerFrameError) { return .success(try event(type, f, s)) } catch { return .failure(error) }
    }

    static func view(_ offset: Int, _ s: JSONScanner) -> Result<ConversationView, ServerFrameError> {
        var id = JSONSlot.absent, status = JSONSlot.absent, customer = JSONSlot.absent, agent = JSONSlot.absent
        var order = JSONSlot.absent, lastSeq = JSONSlot.absent, readSeq = JSONSlot.absent
        let isObject = s.eachMember(at: offset) { (k: JSONString, r: inout JSONScanner) throws(JSONScanner.Failure) in
            switch k.raw.count {
            case 2 where k.equals("id"): id = try r.slot()
            case 5 where k.equals("agent"): agent = try r.slot()
            case 5 where k.equals("order"): order = try r.slot()
            case 6 where k.equals("status"): status = try r.slot()
            case 7 where k.equals("lastSeq"): lastSeq = try r.slot()
            case 7 where k.equals("readSeq"): readSeq = try r.slot()
            case 8 where k.equals("customer"): customer = try r.slot()
            default: try r.skip()
            }
        }
        do throws(ServerFrameError) {
            guard isObject else { throw ServerFrameError("a conversation is an object") }
            guard let st = status.token, let state = ConversationStatus(wireName: st) else {
                throw ServerFrameError("a conversation needs a known status")
            }
            guard let last = lastSeq.uint, let read = readSeq.uint else { throw ServerFrameError("a conversation needs lastSeq and readSeq") }
            return .success(ConversationView(id: try conversationID(id), status: state, customer: try person(customer, s, "customer"),
                                             agent: agent.isNone ? nil : try person(agent, s, "agent"), order: try Self.order(order, s),
                                             lastSeq: last, readSeq: read))
        } catch {
            return .failure(error)
        }
    }

    /// The elements of an array member, each read by `item` from where it starts; the first
    /// element `item` refuses is the frame's error.
    static func array<T>(_ slot: JSONSlot, _ s: JSONScanner, _ missing: String,
                         _ item: (Int) -> Result<T, ServerFrameError>) throws(ServerFrameError) -> [T] {
        guard let at = slot.arrayStart else { throw ServerFrameError(missing) }
        var out: [T] = []
        var bad: ServerFrameError?
        _ = s.eachElement(at: at) { (r: inout JSONScanner) throws(JSONScanner.Failure) in
            let start = r.valueStart()
            try r.skip()
            guard bad == nil else { return }
            switch item(start) { case .success(let v): out.append(v); case .failure(let e): bad = e }
        }
        if let bad { throw bad }
        return out
    }

    /// `{"conversation","customer","since"}` of a queue frame.
    static func queueEntry(at offset: Int, _ s: JSONScanner) -> Result<QueueEntry, ServerFrameError> {
        var c = JSONSlot.absent, customer = JSONSlot.absent, since = JSONSlot.absent
        let isObject = s.eachMember(at: offset) { (k: JSONString, r: inout JSONScanner) throws(JSONScanner.Failure) in
            switch k.raw.count {
            case 5 where k.equals("since"): since = try r.slot()
            case 8 where k.equals("customer"): customer = try r.slot()
            case 12 where k.equals("conversation"): c = try r.slot()
            default: try r.skip()
            }
        }
        guard isObject, let id = try? conversationID(c), let p = try? person(customer, s, "customer"), let ms = since.int else {
            return .failure(ServerFrameError("queue entries need conversation, customer and since"))
        }
        return .success(QueueEntry(conversation: id, customer: p, sinceMs: ms))
    }

    static func conversationID(_ slot: JSONSlot) throws(ServerFrameError) -> ConversationID {
        guard let t = slot.token, let c = t.withUTF8({ ConversationID(utf8: $0) }) else { throw ServerFrameError("conversation (an id) is required") }
        return c
    }

    static func role(_ slot: JSONSlot) -> ChatRole? {
        guard let t = slot.token else { return nil }
        return ChatRole(wireName: t)
    }

    /// `{"id","role","name"}`; a missing name reads as the id.
    static func person(_ slot: JSONSlot, _ s: JSONScanner, _ what: String) throws(ServerFrameError) -> Person {
        guard let at = slot.objectStart else { throw ServerFrameError("\(what) (a person) is required") }
        var id: String?, role: ChatRole?, name: String?
        _ = s.eachMember(at: at) { (k: JSONString, r: inout JSONScanner) throws(JSONScanner.Failure) in
            switch k.raw.count {
            case 2 where k.equals("id"): id = try r.slot().string
            case 4 where k.equals("role"): role = Self.role(try r.slot())
            case 4 where k.equals("name"): name = try r.slot().string
            default: try r.skip()
            }
        }
        guard let id, let role else { throw ServerFrameError("\(what) needs id and role") }
        return Person(id: id, role: role, name: name ?? id)
    }

    /// An order exactly as stored (its bytes kept, so `12.30` stays `12.30`); nil for null.
    static func order(_ slot: JSONSlot, _ s: JSONScanner) throws(ServerFrameError) -> OrderSnapshot? {
        if slot.isNone { return nil }
        guard let at = slot.objectStart else { throw ServerFrameError("order must be an object or null") }
        var id: String?
        var r = s.rewound(to: at)
        guard let raw = try? r.raw(), s.eachMember(at: at, { (k: JSONString, r: inout JSONScanner) throws(JSONScanner.Failure) in if k.equals("id") { id = try r.slot().string } else { try r.skip() } }),
              let id else { throw ServerFrameError("an order needs its id") }
        return OrderSnapshot(id: id, json: Array(raw))
    }
}

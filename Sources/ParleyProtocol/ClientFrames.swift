import ParleyJSON
import ParleyChat
import ParleyLog

public enum OrderChoice: Equatable, Sendable {
    case last
    case id(String)
    case none
}

/// Client → server requests of protocol v1.
public enum ClientRequest: Equatable, Sendable {
    /// `unknownResume`: resume keys that are no conversation id (answered with `resume_failed`);
    /// the encoder does not write them.
    case hello(token: String, resume: [ConversationID: UInt64], unknownResume: [String])
    case open(order: OrderChoice)
    case send(ConversationID, clientMsgId: String, text: String)
    case typing(ConversationID, active: Bool)
    case read(ConversationID, seq: UInt64)
    case history(ConversationID, before: UInt64?, limit: Int?)
    case agentStatus(AgentStatus)
    case claim(ConversationID)
    case transfer(ConversationID, to: String?)
    case resolve(ConversationID)
    case csat(ConversationID, score: Int, comment: String?)

    public var type: RequestType {
        switch self {
        case .hello: return .hello
        case .open: return .open
        case .send: return .send
        case .typing: return .typing
        case .read: return .read
        case .history: return .history
        case .agentStatus: return .agentStatus
        case .claim: return .claim
        case .transfer: return .transfer
        case .resolve: return .resolve
        case .csat: return .csat
        }
    }

    /// Requests only agents may make.
    public var isAgentOnly: Bool {
        switch self {
        case .agentStatus, .claim, .transfer, .resolve: return true
        default: return false
        }
    }
}

public struct ClientFrame: Equatable, Sendable {
    public var ref: String?
    public var request: ClientRequest
    public init(ref: String? = nil, _ request: ClientRequest) { self.ref = ref; self.request = request }
}

/// Why a frame was refused: the error reply to send (with the frame's `ref` when it had a valid one).
public struct FrameError: Error, Equatable {
    public var ref: String?
    public var code: ChatErrorCode
    public var message: String
    public init(ref: String?, code: ChatErrorCode, message: String) { self.ref = ref; self.code = code; self.message = message }
}

/// The decoder of client requests (the server's hottest inbound path): one pass of `JSONScanner`
/// over the frame collects the members it knows as tokens and checks the rest, then the request
/// is built from them. Nothing is allocated but the strings the request keeps.
public enum ClientFrames {
    public static let maxRefBytes = 64
    public static let maxResumeEntries = 1000
    public static let maxOrderIdBytes = 128

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<ClientFrame, FrameError> {
        var s = JSONScanner(bytes)
        var f = Fields()
        do throws(JSONScanner.Failure) {
            guard try s.peek() == .object else {
                try s.skip()
                try s.end()
                return .failure(FrameError(ref: nil, code: .invalidRequest, message: "every frame is a JSON object"))
            }
            try s.beginObject()
            while let k = try s.nextKey() { try f.take(k, &s) }
            try s.end()
        } catch {
            return .failure(FrameError(ref: nil, code: .invalidRequest, message: "not JSON: every frame is one JSON object (\(error))"))
        }
        var ref: String? = nil
        if !f.ref.isNone {
            guard let r = f.ref.token, r.utf8Count <= maxRefBytes else {
                return .failure(FrameError(ref: nil, code: .invalidRequest, message: "ref must be a string of at most \(maxRefBytes) bytes"))
            }
            ref = r.string
        }
        do throws(Invalid) {
            return .success(ClientFrame(ref: ref, try request(f, s)))
        } catch {
            return .failure(FrameError(ref: ref, code: error.code, message: error.message))
        }
    }

    public static func parse(_ bytes: [UInt8]) -> Result<ClientFrame, FrameError> {
        bytes.withUnsafeBytes { parse($0) }
    }

    struct Invalid: Error {
        var code: ChatErrorCode = .invalidRequest
        var message: String
    }

    /// The members a request may have; the last of duplicates wins.
    struct Fields {
        var type = JSONSlot.absent, ref = JSONSlot.absent, token = JSONSlot.absent, resume = JSONSlot.absent
        var order = JSONSlot.absent, conversation = JSONSlot.absent, clientMsgId = JSONSlot.absent, text = JSONSlot.absent
        var active = JSONSlot.absent, seq = JSONSlot.absent, before = JSONSlot.absent, limit = JSONSlot.absent
        var status = JSONSlot.absent, to = JSONSlot.absent, score = JSONSlot.absent, comment = JSONSlot.absent

        mutating func take(_ k: JSONString, _ s: inout JSONScanner) throws(JSONScanner.Failure) {
            switch k.raw.count {
            case 2 where k.equals("to"): to = try s.slot()
            case 3 where k.equals("ref"): ref = try s.slot()
            case 3 where k.equals("seq"): seq = try s.slot()
            case 4 where k.equals("type"): type = try s.slot()
            case 4 where k.equals("text"): text = try s.slot()
            case 5 where k.equals("token"): token = try s.slot()
            case 5 where k.equals("order"): order = try s.slot()
            case 5 where k.equals("limit"): limit = try s.slot()
            case 5 where k.equals("score"): score = try s.slot()
            case 6 where k.equals("resume"): resume = try s.slot()
            case 6 where k.equals("active"): active = try s.slot()
            case 6 where k.equals("before"): before = try s.slot()
            case 6 where k.equals("status"): status = try s.slot()
            case 7 where k.equals("comment"): comment = try s.slot()
            case 11 where k.equals("clientMsgId"): clientMsgId = try s.slot()
            case 12 where k.equals("conversation"): conversation = try s.slot()
            default:
                // An escaped name (rare) is compared decoded; anything else is skipped, checked.
                if k.escaped { return try k.withDecoded { (plain) throws(JSONScanner.Failure) in try take(plain, &s) } }
                try s.skip()
            }
        }
    }

    static func request(_ f: Fields, _ s: JSONScanner) throws(Invalid) -> ClientRequest {
        guard let typeToken = f.type.token else { throw Invalid(message: "type (string) is required") }
        guard let type = RequestType(typeToken) else {
            throw Invalid(message: "unknown type \"\(typeToken.string.prefix(64))\"")
        }
        switch type {
        case .hello:
            guard let token = f.token.string, !token.isEmpty else { throw Invalid(code: .unauthorized, message: "hello needs a token") }
            var resume: [ConversationID: UInt64] = [:]
            var unknown: [String] = []
            if !f.resume.isNone {
                guard let at = f.resume.objectStart else { throw Invalid(message: "resume must be an object of conversation id → last seq") }
                var r = s.rewound(to: at)
                // Checked by the first pass, so the scanner does not fail here.
                func nextKey() throws(Invalid) -> JSONString? {
                    do { return try r.nextKey() } catch { throw Invalid(message: "resume: \(error)") }
                }
                func value() throws(Invalid) -> JSONSlot {
                    do { return try r.slot() } catch { throw Invalid(message: "resume: \(error)") }
                }
                do { try r.beginObject() } catch { throw Invalid(message: "resume: \(error)") }
                var n = 0
                while let k = try nextKey() {
                    n += 1
                    guard n <= maxResumeEntries else { throw Invalid(code: .tooLarge, message: "resume names over \(maxResumeEntries) conversations") }
                    guard let seq = try value().uint else { throw Invalid(message: "resume[\(k.string.prefix(64))] must be a non-negative integer") }
                    if let c = k.withUTF8({ ConversationID(utf8: $0) }) { resume[c] = seq } else { unknown.append(k.string) }
                }
            }
            return .hello(token: token, resume: resume, unknownResume: unknown.sorted())
        case .open:
            switch f.order {
            case .absent: return .open(order: .last)
            case .null: return .open(order: .none)
            case .string(let o):
                guard o.utf8Count > 0, o.utf8Count <= maxOrderIdBytes else { throw Invalid(message: "order must be \"last\", an order id or null") }
                return .open(order: o.equals("last") ? .last : .id(o.string))
            default: throw Invalid(message: "order must be \"last\", an order id or null")
            }
        case .send:
            let c = try conversation(f)
            guard let id = f.clientMsgId.string else { throw Invalid(message: "clientMsgId (string) is required") }
            guard let text = f.text.string else { throw Invalid(message: "text (string) is required") }
            return .send(c, clientMsgId: id, text: text)
        case .typing:
            let c = try conversation(f)
            guard let active = f.active.bool else { throw Invalid(message: "active (true or false) is required") }
            return .typing(c, active: active)
        case .read:
            let c = try conversation(f)
            guard let seq = f.seq.uint else { throw Invalid(message: "seq (non-negative integer) is required") }
            return .read(c, seq: seq)
        case .history:
            let c = try conversation(f)
            var before: UInt64? = nil, limit: Int? = nil
            if !f.before.isNone {
                guard let n = f.before.uint else { throw Invalid(message: "before must be a non-negative integer") }
                before = n
            }
            if !f.limit.isNone {
                guard let n = f.limit.int else { throw Invalid(message: "limit must be an integer") }
                limit = Int(clamping: n)
            }
            return .history(c, before: before, limit: limit)
        case .agentStatus:
            guard let t = f.status.token, let st = AgentStatus(wireName: t) else {
                throw Invalid(message: "status must be available, away or offline")
            }
            return .agentStatus(st)
        case .claim:
            return .claim(try conversation(f))
        case .transfer:
            let c = try conversation(f)
            switch f.to {
            case .absent, .null: return .transfer(c, to: nil)
            case .string(let t) where t.utf8Count > 0: return .transfer(c, to: t.string)
            default: throw Invalid(message: "to must be an agent id or null")
            }
        case .resolve:
            return .resolve(try conversation(f))
        case .csat:
            let c = try conversation(f)
            guard let score = f.score.int else { throw Invalid(message: "score (integer 1 to 5) is required") }
            var comment: String? = nil
            if !f.comment.isNone {
                guard let s = f.comment.string else { throw Invalid(message: "comment must be a string") }
                comment = s
            }
            return .csat(c, score: Int(clamping: score), comment: comment)
        }
    }

    static func conversation(_ f: Fields) throws(Invalid) -> ConversationID {
        guard let t = f.conversation.token else { throw Invalid(message: "conversation (string) is required") }
        guard let c = t.withUTF8({ ConversationID(utf8: $0) }) else { throw Invalid(code: .notFound, message: "no such conversation") }
        return c
    }
}

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
}

/// Why a frame was refused: the error reply to send (with the frame's `ref` when it had a valid one).
public struct FrameError: Error, Equatable {
    public var ref: String?
    public var code: ChatErrorCode
    public var message: String
    public init(ref: String?, code: ChatErrorCode, message: String) { self.ref = ref; self.code = code; self.message = message }
}

public enum ClientFrames {
    public static let maxRefBytes = 64

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<ClientFrame, FrameError> {
        guard case .success(let o) = JSONParser.parse(bytes) else {
            return .failure(FrameError(ref: nil, code: .invalidRequest, message: "not JSON: every frame is one JSON object"))
        }
        guard o.members != nil else {
            return .failure(FrameError(ref: nil, code: .invalidRequest, message: "every frame is a JSON object"))
        }
        var ref: String? = nil
        if let r = o["ref"], !r.isNull {
            guard let s = r.string, s.utf8.count <= maxRefBytes else {
                return .failure(FrameError(ref: nil, code: .invalidRequest, message: "ref must be a string of at most \(maxRefBytes) bytes"))
            }
            ref = s
        }
        do {
            return .success(ClientFrame(ref: ref, request: try request(o)))
        } catch let e as Invalid {
            return .failure(FrameError(ref: ref, code: e.code, message: e.message))
        } catch {
            return .failure(FrameError(ref: ref, code: .invalidRequest, message: "\(error)"))
        }
    }

    public static func parse(_ bytes: [UInt8]) -> Result<ClientFrame, FrameError> {
        bytes.withUnsafeBytes { parse($0) }
    }

    struct Invalid: Error {
        var code: ChatErrorCode = .invalidRequest
        var message: String
    }

    static func request(_ o: JSONValue) throws -> ClientRequest {
        guard let type = o["type"]?.string else { throw Invalid(message: "type (string) is required") }
        switch type {
        case "hello":
            guard let token = o["token"]?.string, !token.isEmpty else { throw Invalid(code: .unauthorized, message: "hello needs a token") }
            var resume: [ConversationID: UInt64] = [:]
            var unknown: [String] = []
            if let r = o["resume"], !r.isNull {
                guard let map = r.members else { throw Invalid(message: "resume must be an object of conversation id → last seq") }
                guard map.count <= 1000 else { throw Invalid(code: .tooLarge, message: "resume names over 1000 conversations") }
                for (k, v) in map {
                    guard let n = v.int, n >= 0 else { throw Invalid(message: "resume[\(k)] must be a non-negative integer") }
                    if let c = ConversationID(k) { resume[c] = UInt64(n) } else { unknown.append(k) }
                }
            }
            return .hello(token: token, resume: resume, unknownResume: unknown.sorted())
        case "conversation.open":
            switch o["order"] {
            case nil: return .open(order: .last)
            case .null?: return .open(order: .none)
            case .string(let s)?:
                guard !s.isEmpty, s.utf8.count <= 128 else { throw Invalid(message: "order must be \"last\", an order id or null") }
                return .open(order: s == "last" ? .last : .id(s))
            default: throw Invalid(message: "order must be \"last\", an order id or null")
            }
        case "message.send":
            let c = try conversation(o)
            guard let id = o["clientMsgId"]?.string else { throw Invalid(message: "clientMsgId (string) is required") }
            guard let text = o["text"]?.string else { throw Invalid(message: "text (string) is required") }
            return .send(c, clientMsgId: id, text: text)
        case "typing":
            let c = try conversation(o)
            guard let active = o["active"]?.bool else { throw Invalid(message: "active (true or false) is required") }
            return .typing(c, active: active)
        case "read":
            let c = try conversation(o)
            guard let s = o["seq"]?.int, s >= 0 else { throw Invalid(message: "seq (non-negative integer) is required") }
            return .read(c, seq: UInt64(s))
        case "history":
            let c = try conversation(o)
            var before: UInt64? = nil, limit: Int? = nil
            if let b = o["before"], !b.isNull {
                guard let n = b.int, n >= 0 else { throw Invalid(message: "before must be a non-negative integer") }
                before = UInt64(n)
            }
            if let l = o["limit"], !l.isNull {
                guard let n = l.int else { throw Invalid(message: "limit must be an integer") }
                limit = n
            }
            return .history(c, before: before, limit: limit)
        case "agent.status":
            guard let s = o["status"]?.string, let st = AgentStatus(rawValue: s) else {
                throw Invalid(message: "status must be available, away or offline")
            }
            return .agentStatus(st)
        case "conversation.claim":
            return .claim(try conversation(o))
        case "conversation.transfer":
            let c = try conversation(o)
            switch o["to"] {
            case nil, .null?: return .transfer(c, to: nil)
            case .string(let s)? where !s.isEmpty: return .transfer(c, to: s)
            default: throw Invalid(message: "to must be an agent id or null")
            }
        case "conversation.resolve":
            return .resolve(try conversation(o))
        case "csat":
            let c = try conversation(o)
            guard let s = o["score"]?.int else { throw Invalid(message: "score (integer 1 to 5) is required") }
            var comment: String? = nil
            if let cm = o["comment"], !cm.isNull {
                guard let s = cm.string else { throw Invalid(message: "comment must be a string") }
                comment = s
            }
            return .csat(c, score: s, comment: comment)
        default:
            throw Invalid(message: "unknown type \"\(type.prefix(64))\"")
        }
    }

    static func conversation(_ o: JSONValue) throws -> ConversationID {
        guard let s = o["conversation"]?.string else { throw Invalid(message: "conversation (string) is required") }
        guard let c = ConversationID(s) else { throw Invalid(code: .notFound, message: "no such conversation") }
        return c
    }
}

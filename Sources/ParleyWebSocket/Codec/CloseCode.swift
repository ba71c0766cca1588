// The codec depends on the standard library only, so it can be fuzzed and tested from vectors.

public enum Opcode: UInt8, Sendable {
    case continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA

    public var isControl: Bool { rawValue & 0x8 != 0 }
}

/// WebSocket close codes the server sends (RFC 6455 §7.4, plus Parley's 4001).
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ v: UInt16) { rawValue = v }

    public static let normal = CloseCode(1000)
    public static let goingAway = CloseCode(1001)
    public static let protocolError = CloseCode(1002)
    public static let unsupportedData = CloseCode(1003)
    public static let invalidPayload = CloseCode(1007)
    public static let policyViolation = CloseCode(1008)
    public static let messageTooBig = CloseCode(1009)
    public static let internalError = CloseCode(1011)
    public static let unauthorized = CloseCode(4001)

    /// Whether a peer may send this code in a close frame. 1004–1006 and 1015 are reserved for
    /// local use, 1016–2999 are unassigned, 0–999 and ≥ 5000 are invalid.
    public static func isValidReceived(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: return true
        default: return false
        }
    }

    public var description: String { String(rawValue) }

    /// What a client should do after the server closed with this code: the one table the server's
    /// docs, the Swift SDK and the JavaScript SDK follow (SPEC §2.5).
    public var advice: ReconnectAdvice {
        switch self {
        case .normal: return .no
        case .goingAway: return .soon
        case .unauthorized: return .newToken
        default: return .afterBackoff
        }
    }
}

/// How a client reconnects after a close.
public enum ReconnectAdvice: String, Sendable {
    /// The client asked to close: stay closed.
    case no
    /// The server is going away (shutdown, deploy): another node, or this one restarted, within a
    /// second; reconnect after a short random delay (0.1–1 s), trying the next URL.
    case soon
    /// Something went wrong on this connection: reconnect with jittered exponential backoff.
    case afterBackoff
    /// The token was refused or expired: ask the app for a new token, then reconnect at once.
    case newToken
}

/// A close the server sends: its code and the reason text, defined once (SPEC §2.5 lists them).
public struct CloseReason: Hashable, Sendable, CustomStringConvertible {
    public let code: CloseCode
    public let text: String
    public init(_ code: CloseCode, _ text: String) { self.code = code; self.text = text }

    public var advice: ReconnectAdvice { code.advice }
    public var description: String { "\(code.rawValue) \(text)" }

    public static let normal = CloseReason(.normal, "")
    public static let shuttingDown = CloseReason(.goingAway, "server shutting down")
    public static let protocolError = CloseReason(.protocolError, "protocol error")
    public static let binaryNotSupported = CloseReason(.unsupportedData, "protocol v1 is JSON in text frames")
    public static let invalidUTF8 = CloseReason(.invalidPayload, "invalid UTF-8")
    public static let invalidCompressed = CloseReason(.invalidPayload, "invalid compressed data")
    public static let slowConsumer = CloseReason(.policyViolation, "slow consumer")
    public static let tooManyEarlyRequests = CloseReason(.policyViolation, "too many requests before welcome")
    public static let tooManyRefused = CloseReason(.policyViolation, "too many refused requests")
    public static let messageTooBig = CloseReason(.messageTooBig, "message too big")
    public static let noInflater = CloseReason(.internalError, "no inflater")
    public static let unauthorized = CloseReason(.unauthorized, "unauthorized")

    /// The reason for a code the frame reader fails with.
    public static func reading(_ code: CloseCode) -> CloseReason {
        switch code {
        case .messageTooBig: return .messageTooBig
        case .invalidPayload: return .invalidUTF8
        default: return .protocolError
        }
    }
}

/// What a NATS server sends a client (the core protocol: docs.nats.io "Client Protocol").
public enum ServerOp: Equatable, Sendable {
    /// `INFO {json}`: the server's JSON, unparsed (the client reads the fields it needs).
    case info(json: [UInt8])
    /// `MSG` or `HMSG`: a message for one of the client's subscriptions.
    case msg(NATSMessage)
    case ping
    case pong
    case ok
    /// `-ERR 'text'`, the text without its quotes.
    case err(String)
}

/// A delivered message. `sid` is the subscription id the client chose at `SUB`.
public struct NATSMessage: Equatable, Sendable {
    public var subject: String
    public var sid: String
    public var replyTo: String?
    /// Present for `HMSG` (JetStream acks, status messages such as 503 no responders).
    public var headers: NATSHeaders?
    public var payload: [UInt8]

    public init(subject: String, sid: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: [UInt8]) {
        self.subject = subject
        self.sid = sid
        self.replyTo = replyTo
        self.headers = headers
        self.payload = payload
    }
}

/// A header block: `NATS/1.0[ status[ description]]` then `Key: Value` lines. Keys keep their
/// case and order; a key may repeat.
public struct NATSHeaders: Equatable, Sendable {
    public var status: Int?
    public var statusDescription: String?
    public var fields: [(name: String, value: String)]

    public init(status: Int? = nil, statusDescription: String? = nil, fields: [(name: String, value: String)] = []) {
        self.status = status
        self.statusDescription = statusDescription
        self.fields = fields
    }

    /// The first value of `name` (exact case, as NATS compares keys).
    public subscript(name: String) -> String? { fields.first { $0.name == name }?.value }

    public static func == (a: NATSHeaders, b: NATSHeaders) -> Bool {
        a.status == b.status && a.statusDescription == b.statusDescription
            && a.fields.count == b.fields.count && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// Why the server's bytes could not be read. The connection is then closed (and reconnected):
/// after a framing error nothing that follows can be trusted.
public enum NATSProtocolError: Error, Equatable, Sendable {
    /// A control line longer than the limit without its end (`max_control_line`, 4 KiB by default).
    case controlLineTooLong(limit: Int)
    case unknownOperation(String)
    /// A control line or a message whose shape is wrong; says what.
    case malformed(String)
    /// A message larger than the client accepts (the server's `max_payload`).
    case messageTooLarge(bytes: UInt64, limit: Int)
}

/// The limits the parser enforces, so a server (or anything posing as one) cannot make the client
/// buffer without bound.
public struct NATSLimits: Sendable {
    /// Longest control line (the server's default `max_control_line` is 4 KiB).
    public var maxControlLineBytes = 4096
    /// Largest message (headers and payload), at least the server's `max_payload` (1 MiB default).
    public var maxMessageBytes = 8 << 20

    public init() {}
}

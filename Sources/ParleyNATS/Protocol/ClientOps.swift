/// What a client sends a NATS server, encoded. Every name that goes into a control line is checked
/// first, so a bad subject is an error here and never a broken line on the wire.
public enum ClientOps {
    public enum EncodeError: Error, Equatable, Sendable {
        /// Empty, or holding a space, tab, CR, LF or NUL.
        case badToken(String)
        /// A header name with ':' or white space, or a name or value with CR or LF.
        case badHeader(String)
    }

    public static let ping: [UInt8] = Array("PING\r\n".utf8)
    public static let pong: [UInt8] = Array("PONG\r\n".utf8)

    /// `CONNECT {json}`: the options object, already encoded.
    public static func connect(json: [UInt8]) -> [UInt8] {
        Array("CONNECT ".utf8) + json + [13, 10]
    }

    /// `PUB` (or `HPUB` when there are headers).
    public static func pub(subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: [UInt8]) throws(EncodeError) -> [UInt8] {
        try check(subject)
        if let r = replyTo { try check(r) }
        var out: [UInt8] = []
        out.reserveCapacity(subject.utf8.count + payload.count + 48)
        guard let headers else {
            out += Array("PUB ".utf8) + Array(subject.utf8)
            if let r = replyTo { out += [32] + Array(r.utf8) }
            out += Array(" \(payload.count)\r\n".utf8) + payload + [13, 10]
            return out
        }
        let block = try encode(headers)
        out += Array("HPUB ".utf8) + Array(subject.utf8)
        if let r = replyTo { out += [32] + Array(r.utf8) }
        out += Array(" \(block.count) \(block.count + payload.count)\r\n".utf8) + block + payload + [13, 10]
        return out
    }

    /// `SUB subject [queue] sid`.
    public static func sub(subject: String, queue: String? = nil, sid: String) throws(EncodeError) -> [UInt8] {
        try check(subject)
        try check(sid)
        if let q = queue { try check(q) }
        return Array("SUB \(subject)\(queue.map { " " + $0 } ?? "") \(sid)\r\n".utf8)
    }

    /// `UNSUB sid [max]`: with `max`, the server unsubscribes after that many more messages.
    public static func unsub(sid: String, max: Int? = nil) throws(EncodeError) -> [UInt8] {
        try check(sid)
        return Array("UNSUB \(sid)\(max.map { " \($0)" } ?? "")\r\n".utf8)
    }

    /// The header block of an `HPUB` (status lines are the server's; a client sends none).
    static func encode(_ h: NATSHeaders) throws(EncodeError) -> [UInt8] {
        var out = Array("NATS/1.0\r\n".utf8)
        for f in h.fields {
            guard !f.name.isEmpty, !f.name.utf8.contains(where: { $0 == 58 || $0 <= 32 || $0 == 127 }) else { throw .badHeader(f.name) }
            guard !f.value.utf8.contains(where: { $0 == 13 || $0 == 10 }) else { throw .badHeader(f.name) }
            out += Array(f.name.utf8) + Array(": ".utf8) + Array(f.value.utf8) + [13, 10]
        }
        return out + [13, 10]
    }

    static func check(_ token: String) throws(EncodeError) {
        guard !token.isEmpty, !token.utf8.contains(where: { $0 == 32 || $0 == 9 || $0 == 13 || $0 == 10 || $0 == 0 }) else {
            throw .badToken(token)
        }
    }
}

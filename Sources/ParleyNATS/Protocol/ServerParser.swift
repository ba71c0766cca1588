/// Reads what a NATS server sends, in pieces of any size: whole operations come out in order, and
/// at most one incomplete operation is held (a control line up to `maxControlLineBytes`, a message
/// up to `maxMessageBytes`). Any input gives operations or an error, never a trap. After an error
/// the parser is spent: the connection's bytes can no longer be framed, so the client closes it.
public struct ServerParser {
    public let limits: NATSLimits
    private var buffer: [UInt8] = []
    private var start = 0
    /// A message whose control line has been read: its body (headers + payload) and CRLF are next.
    private var awaiting: (head: MessageHead, total: Int)?
    private var failure: NATSProtocolError?

    struct MessageHead {
        var subject: String
        var sid: String
        var replyTo: String?
        var headerBytes: Int?
    }

    public init(limits: NATSLimits = NATSLimits()) { self.limits = limits }

    /// Bytes held for an operation not yet complete.
    public var bufferedBytes: Int { buffer.count - start }

    public mutating func parse(_ bytes: [UInt8]) -> Result<[ServerOp], NATSProtocolError> {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// Adds bytes from the server; returns every operation they complete, in order.
    public mutating func parse(_ input: UnsafeRawBufferPointer) -> Result<[ServerOp], NATSProtocolError> {
        if let failure { return .failure(failure) }
        buffer.append(contentsOf: input)
        var ops: [ServerOp] = []
        do throws(NATSProtocolError) {
            while let op = try next() { ops.append(op) }
        } catch {
            failure = error
            buffer = []
            start = 0
            return .failure(error)
        }
        // Drop what was consumed once it is most of the buffer (amortised O(1) per byte).
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        return .success(ops)
    }

    private mutating func next() throws(NATSProtocolError) -> ServerOp? {
        if let a = awaiting {
            guard buffer.count - start >= a.total + 2 else { return nil }
            let bodyEnd = start + a.total
            guard buffer[bodyEnd] == 13, buffer[bodyEnd + 1] == 10 else { throw .malformed("message body not followed by CRLF") }
            var headers: NATSHeaders? = nil
            var payloadStart = start
            if let h = a.head.headerBytes {
                headers = try Self.headers(buffer[start..<(start + h)])
                payloadStart = start + h
            }
            let msg = NATSMessage(subject: a.head.subject, sid: a.head.sid, replyTo: a.head.replyTo, headers: headers,
                                  payload: Array(buffer[payloadStart..<bodyEnd]))
            start = bodyEnd + 2
            awaiting = nil
            return .msg(msg)
        }
        guard let nl = buffer[start...].firstIndex(of: 10) else {
            if buffer.count - start > limits.maxControlLineBytes { throw .controlLineTooLong(limit: limits.maxControlLineBytes) }
            return nil
        }
        var end = nl
        if end > start, buffer[end - 1] == 13 { end -= 1 }
        guard end - start <= limits.maxControlLineBytes else { throw .controlLineTooLong(limit: limits.maxControlLineBytes) }
        let line = buffer[start..<end]
        start = nl + 1
        return try controlLine(line)
    }

    private mutating func controlLine(_ line: ArraySlice<UInt8>) throws(NATSProtocolError) -> ServerOp? {
        let nameEnd = line.firstIndex(where: Self.isSpace) ?? line.endIndex
        let name = String(decoding: line[line.startIndex..<nameEnd].map(Self.upper), as: UTF8.self)
        let rest = line[nameEnd...]
        switch name {
        case "PING": return try bare(rest, .ping)
        case "PONG": return try bare(rest, .pong)
        case "+OK": return try bare(rest, .ok)
        case "-ERR":
            var text = Self.trimmed(rest)
            if text.count >= 2, text.first == 39, text.last == 39 { text = text.dropFirst().dropLast() }
            return .err(String(decoding: text, as: UTF8.self))
        case "INFO":
            let json = Self.trimmed(rest)
            guard json.first == UInt8(ascii: "{") else { throw .malformed("INFO without a JSON object") }
            return .info(json: Array(json))
        case "MSG", "HMSG":
            let args = rest.split(whereSeparator: Self.isSpace)
            let headered = name == "HMSG"
            let sizes = headered ? 2 : 1
            guard args.count == 2 + sizes || args.count == 3 + sizes else {
                throw .malformed("\(name) takes subject, sid, [reply-to,] \(headered ? "header and total sizes" : "size")")
            }
            let total = try size(args[args.count - 1])
            var headerBytes: Int? = nil
            if headered {
                let h = try size(args[args.count - 2])
                guard h <= total, h >= 4 else { throw .malformed("HMSG header size must be 4...total") }
                headerBytes = h
            }
            let reply = args.count == 3 + sizes ? String(decoding: args[2], as: UTF8.self) : nil
            awaiting = (MessageHead(subject: String(decoding: args[0], as: UTF8.self), sid: String(decoding: args[1], as: UTF8.self),
                                    replyTo: reply, headerBytes: headerBytes), total)
            return try next()
        default:
            throw .unknownOperation(String(name.prefix(16)))
        }
    }

    private func bare(_ rest: ArraySlice<UInt8>, _ op: ServerOp) throws(NATSProtocolError) -> ServerOp {
        guard Self.trimmed(rest).isEmpty else { throw .malformed("unexpected arguments") }
        return op
    }

    /// A size field: decimal digits only, within the message limit.
    private func size(_ field: ArraySlice<UInt8>) throws(NATSProtocolError) -> Int {
        guard !field.isEmpty, field.count <= 19, field.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            throw .malformed("a size must be decimal digits")
        }
        var v: UInt64 = 0
        for d in field { v = v * 10 + UInt64(d - 48) }  // ≤ 19 digits: no overflow
        guard v <= UInt64(limits.maxMessageBytes) else { throw .messageTooLarge(bytes: v, limit: limits.maxMessageBytes) }
        return Int(v)
    }

    /// `NATS/1.0[ status[ description]]\r\n(Key: Value\r\n)*\r\n`.
    static func headers(_ block: ArraySlice<UInt8>) throws(NATSProtocolError) -> NATSHeaders {
        guard block.count >= 4, block.suffix(4).elementsEqual([13, 10, 13, 10]) else {
            throw .malformed("header block must end with an empty line")
        }
        var lines = block.dropLast(4).split(separator: 10, omittingEmptySubsequences: false).map { l -> ArraySlice<UInt8> in
            l.last == 13 ? l.dropLast() : l
        }
        let first = lines.removeFirst()
        let version = Array("NATS/1.0".utf8)
        guard first.starts(with: version) else { throw .malformed("header block must start with NATS/1.0") }
        var h = NATSHeaders()
        let status = trimmed(first.dropFirst(version.count))
        if !status.isEmpty {
            let code = status.prefix { $0 >= 48 && $0 <= 57 }
            guard code.count == 3 else { throw .malformed("header status must be 3 digits") }
            h.status = Int(String(decoding: code, as: UTF8.self))
            let d = trimmed(status.dropFirst(3))
            if !d.isEmpty { h.statusDescription = String(decoding: d, as: UTF8.self) }
        }
        for l in lines {
            guard let colon = l.firstIndex(of: UInt8(ascii: ":")), colon > l.startIndex else {
                throw .malformed("a header line must be Key: Value")
            }
            h.fields.append((String(decoding: l[l.startIndex..<colon], as: UTF8.self),
                             String(decoding: trimmed(l[(colon + 1)...]), as: UTF8.self)))
        }
        return h
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 32 || b == 9 }
    static func upper(_ b: UInt8) -> UInt8 { b >= 97 && b <= 122 ? b - 32 : b }
    static func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var s = s
        while let f = s.first, isSpace(f) { s = s.dropFirst() }
        while let l = s.last, isSpace(l) { s = s.dropLast() }
        return s
    }
}

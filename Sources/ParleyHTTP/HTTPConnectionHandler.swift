import ParleyTransport

/// A complete request: head and body bytes.
public struct HTTPRequest: Sendable {
    public var head: HTTPRequestHead
    public var body: [UInt8]
    public var method: String { head.method }
    public var path: Substring { head.path }
    public init(head: HTTPRequestHead, body: [UInt8]) { self.head = head; self.body = body }
}

public enum HTTPServiceResult {
    case respond(HTTPResponse)
    /// Write `response` (a 101), then hand the connection to `handler`, which gets any bytes already read.
    case upgrade(response: HTTPResponse, handler: ConnectionHandler)
    /// The answer is computed elsewhere: `start` gets a `reply` to call exactly once, from any thread.
    /// Pipelined requests behind this one wait until it is answered.
    case deferred(_ start: (@escaping @Sendable (HTTPResponse) -> Void) -> Void)
}

public struct HTTPServerLimits: Sendable {
    public var parser = HTTPParserLimits()
    /// A request that is not complete this long after its first byte (or after accept) is dropped.
    public var requestTimeoutMs: UInt64 = 10_000
    /// An idle keep-alive connection is closed after this long without a new request.
    public var keepAliveIdleMs: UInt64 = 30_000
    public init() {}
}

/// HTTP/1.1 on one connection: parse with hard limits, answer, keep alive, or upgrade.
/// Loop-confined like its connection (`@unchecked Sendable` for the same reason: a deferred
/// answer hops back onto the loop's queue before it touches anything).
public final class HTTPConnectionHandler: ConnectionHandler, @unchecked Sendable {
    private var parser: HTTPRequestParser
    private let limits: HTTPServerLimits
    private let service: (HTTPRequest, Connection) -> HTTPServiceResult
    private let onClose: ((Connection) -> Void)?
    private let onResponse: ((Int) -> Void)?
    private var inRequest = false
    /// A deferred answer is outstanding: later requests wait in the connection's input.
    private var awaitingReply = false

    public init(connection: Connection? = nil, limits: HTTPServerLimits = .init(),
                service: @escaping (HTTPRequest, Connection) -> HTTPServiceResult,
                onClose: ((Connection) -> Void)? = nil, onResponse: ((Int) -> Void)? = nil) {
        self.parser = HTTPRequestParser(limits: limits.parser)
        self.limits = limits
        self.service = service
        self.onClose = onClose
        self.onResponse = onResponse
    }

    /// Call right after the connection is adopted: the first request must arrive in time.
    public func start(_ c: Connection) {
        c.deadlineMs = c.loop.nowMs + limits.requestTimeoutMs
    }

    public func connectionRead(_ c: Connection, _ bytes: UnsafeMutableRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count, c.isOpen, c.handler === self, !awaitingReply {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            if !inRequest {
                inRequest = true
                c.deadlineMs = c.loop.nowMs + limits.requestTimeoutMs
            }
            switch parser.parse(rest) {
            case .needMore:
                return offset
            case .failed(let e):
                let msg: String
                if case .malformed(let m) = e { msg = m } else { msg = "\(e)" }
                respondAndClose(c, .error(e.status, code: e.status == 413 || e.status == 431 ? "too_large" : "invalid_request", message: msg))
                return bytes.count
            case .complete(let head, let bodyStart, let consumed):
                inRequest = false
                let body = Array(rest[bodyStart..<(bodyStart + head.contentLength)])
                offset += consumed
                let keepAlive = head.keepAlive
                c.deadlineMs = 0  // an upgraded handler sets its own
                switch service(HTTPRequest(head: head, body: body), c) {
                case .respond(let r):
                    onResponse?(r.status)
                    let out = r.serialized(keepAlive: keepAlive, includeBody: head.method != "HEAD")
                    out.withUnsafeBytes { c.send($0) }
                    if !keepAlive { c.closeAfterFlush(); return bytes.count }
                    c.deadlineMs = c.loop.nowMs + limits.keepAliveIdleMs
                case .upgrade(let r, let next):
                    onResponse?(r.status)
                    let out = r.serialized(keepAlive: true)
                    out.withUnsafeBytes { c.send($0) }
                    c.handler = next
                    return offset  // the connection offers the rest to the new handler
                case .deferred(let start):
                    awaitingReply = true
                    // No more reading until the answer is out: pipelined requests behind this one
                    // wait in the peer's socket, not in our memory (finishDeferred resumes).
                    c.pauseInput()
                    c.deadlineMs = c.loop.nowMs + limits.requestTimeoutMs
                    let loop = c.loop
                    let includeBody = head.method != "HEAD"
                    start { [weak self] response in
                        loop.queue.async { [weak self] in self?.finishDeferred(c, response, keepAlive: keepAlive, includeBody: includeBody) }
                    }
                    return offset
                }
            }
        }
        return offset
    }

    private func finishDeferred(_ c: Connection, _ r: HTTPResponse, keepAlive: Bool, includeBody: Bool) {
        guard awaitingReply, c.isOpen, c.handler === self else { return }
        awaitingReply = false
        onResponse?(r.status)
        let out = r.serialized(keepAlive: keepAlive, includeBody: includeBody)
        out.withUnsafeBytes { c.send($0) }
        if !keepAlive { c.closeAfterFlush(); return }
        c.deadlineMs = c.loop.nowMs + limits.keepAliveIdleMs
        c.resumeInput()  // requests pipelined behind this one
    }

    private func respondAndClose(_ c: Connection, _ r: HTTPResponse) {
        onResponse?(r.status)
        let out = r.serialized(keepAlive: false)
        out.withUnsafeBytes { c.send($0) }
        c.closeAfterFlush()
    }

    public func connectionDeadline(_ c: Connection, nowMs: UInt64) {
        // Incomplete request past its time, or an idle keep-alive connection: drop it.
        c.close(.timeout)
    }

    public func connectionOverflow(_ c: Connection) { c.close(.overflow) }

    public func connectionClosed(_ c: Connection) { onClose?(c) }
}

/// A tiny router: literal segments and `{name}` parameters; 404 for unknown paths, 405 (with Allow)
/// for a known path with another method.
public struct Router {
    public typealias Handler = (HTTPRequest, [String: String], Connection) -> HTTPServiceResult
    private struct Route { let method: String; let segments: [Substring]; let handler: Handler }
    private var routes: [Route] = []

    public init() {}

    public mutating func add(_ method: String, _ pattern: String, _ handler: @escaping Handler) {
        routes.append(Route(method: method, segments: pattern.split(separator: "/"), handler: handler))
    }

    public func handle(_ req: HTTPRequest, _ c: Connection) -> HTTPServiceResult {
        let parts = req.path.split(separator: "/")
        var allowed: [String] = []
        for r in routes {
            guard let params = match(r.segments, parts) else { continue }
            if r.method == req.method || (r.method == "GET" && req.method == "HEAD") {
                return r.handler(req, params, c)
            }
            allowed.append(r.method)
        }
        if !allowed.isEmpty {
            return .respond(.error(405, code: "invalid_request", message: "method not allowed", headers: [("Allow", allowed.joined(separator: ", "))]))
        }
        return .respond(.error(404, code: "not_found", message: "no such path"))
    }

    private func match(_ pattern: [Substring], _ parts: [Substring]) -> [String: String]? {
        guard pattern.count == parts.count else { return nil }
        var params: [String: String] = [:]
        for (p, v) in zip(pattern, parts) {
            if p.first == "{", p.last == "}" {
                params[String(p.dropFirst().dropLast())] = String(v)
            } else if p != v {
                return nil
            }
        }
        return params
    }
}

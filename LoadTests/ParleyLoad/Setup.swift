import Dispatch
import Foundation
import JWTKit
import ParleyTransport
#if canImport(Glibc)
import Glibc
#endif

/// A blocking HTTP/1.1 client with keep-alive, for the set-up requests of a run (tokens, orders):
/// a few thousand small requests before the measurement starts, over the server's REST API.
final class RESTClient {
    let host: String
    let port: Int
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    struct Response { var status: Int; var body: [UInt8] }

    enum Failure: Error, CustomStringConvertible {
        case io(String)
        case status(Int, String)
        var description: String {
            switch self {
            case .io(let m): return m
            case .status(let s, let b): return "HTTP \(s): \(b)"
            }
        }
    }

    init(host: String, port: Int) {
        self.host = host == "localhost" ? "127.0.0.1" : host
        self.port = port
    }

    deinit { if fd >= 0 { Socket.close(fd) } }

    private func open() throws {
        do {
            fd = try Dial.blocking(host: host, port: port, timeoutSeconds: 10)
        } catch {
            switch error {
            case .badAddress(let a): throw Failure.io("bad address \(a)")
            case .connect(let m): throw Failure.io("connect \(host):\(port): \(m)")
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// One request; reconnects once if the kept-alive connection was closed meanwhile.
    func request(_ method: String, _ path: String, bearer: String?, json: String?) throws -> Response {
        do { return try attempt(method, path, bearer: bearer, json: json) } catch Failure.io {
            if fd >= 0 { Socket.close(fd); fd = -1 }
            return try attempt(method, path, bearer: bearer, json: json)
        }
    }

    private func attempt(_ method: String, _ path: String, bearer: String?, json: String?) throws -> Response {
        if fd < 0 { try open() }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        if let b = bearer { head += "Authorization: Bearer \(b)\r\n" }
        let body = Array((json ?? "").utf8)
        if json != nil { head += "Content-Type: application/json\r\n" }
        head += "Content-Length: \(body.count)\r\n\r\n"
        let out = Array(head.utf8) + body
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, out.count - sent, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure.io("send: \(String(cString: strerror(errno)))") }
            sent += n
        }
        // Head, then Content-Length bytes of body.
        var headEnd: Int?
        while true {
            if headEnd == nil, let e = findHeadEnd() { headEnd = e }
            if let e = headEnd, let (status, length) = parseHead(e), buffer.count >= e + 4 + length {
                let body = Array(buffer[(e + 4)..<(e + 4 + length)])
                buffer.removeFirst(e + 4 + length)
                return Response(status: status, body: body)
            }
            guard buffer.count < 4 << 20 else { throw Failure.io("response too large") }
            var chunk = [UInt8](repeating: 0, count: 16 * 1024)
            let n = chunk.withUnsafeMutableBytes { Glibc.recv(fd, $0.baseAddress!, $0.count, 0) }
            guard n > 0 else { throw Failure.io(n == 0 ? "connection closed" : "recv: \(String(cString: strerror(errno)))") }
            buffer += chunk[0..<n]
        }
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 { return i }
        return nil
    }

    private func parseHead(_ end: Int) -> (Int, Int)? {
        let head = String(decoding: buffer[0..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let first = lines.first, first.count >= 12, let status = Int(first.dropFirst(9).prefix(3)) else { return nil }
        var length = 0
        for l in lines.dropFirst() {
            let parts = l.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                length = Int(parts[1].trimmingCharacters(in: .whitespaces)) ?? 0
            }
        }
        return (status, length)
    }
}

/// Where the run's client tokens come from: minted here with the server's secret (vapor/jwt-kit,
/// HS256, the claims the server expects), or asked of the server with its API key.
enum TokenSource {
    case local(secret: String)
    case server(apiKey: String, host: String, port: Int)

    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var role: String
        var name: String?
        var exp: ExpirationClaim
        var capacity: Int?
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    struct Request: Sendable {
        var sub: String
        var role: String
        var capacity: Int?
        var ttlSeconds: Int
    }

    /// Mints one token per request, in order. Local minting runs jwt-kit's async API on the
    /// cooperative pool; server minting spreads the requests over a few kept-alive connections.
    func mint(_ requests: [Request]) throws -> [String] {
        switch self {
        case .local(let secret):
            guard secret.utf8.count >= 32 else { throw RESTClient.Failure.io("--jwt-secret must be at least 32 bytes (the server refuses shorter ones)") }
            let box = ResultBox<[String]>()
            let done = DispatchSemaphore(value: 0)
            Task {
                do {
                    let keys = JWTKeyCollection()
                    await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
                    let now = Date().timeIntervalSince1970
                    var out: [String] = []
                    out.reserveCapacity(requests.count)
                    for r in requests {
                        let exp = ExpirationClaim(value: Date(timeIntervalSince1970: (now + Double(r.ttlSeconds)).rounded(.down)))
                        out.append(try await keys.sign(Claims(sub: SubjectClaim(value: r.sub), role: r.role, name: nil, exp: exp, capacity: r.capacity)))
                    }
                    box.set(.success(out))
                } catch {
                    box.set(.failure(error))
                }
                done.signal()
            }
            done.wait()
            return try box.get()
        case .server(let apiKey, let host, let port):
            return try parallel(requests.count, host: host, port: port) { client, i in
                let r = requests[i]
                var body = #"{"sub":"\#(r.sub)","role":"\#(r.role)","ttl":\#(r.ttlSeconds)"#
                if let c = r.capacity { body += #","capacity":\#(c)"# }
                body += "}"
                let resp = try client.request("POST", "/v1/tokens", bearer: apiKey, json: body)
                guard resp.status == 200,
                      let o = try? JSONSerialization.jsonObject(with: Data(resp.body)) as? [String: Any],
                      let t = o["token"] as? String
                else { throw RESTClient.Failure.status(resp.status, String(decoding: resp.body, as: UTF8.self)) }
                return t
            }
        }
    }
}

/// Runs `count` blocking requests over `workers` kept-alive connections; results in index order.
func parallel<T>(_ count: Int, host: String, port: Int, workers: Int = 8,
                 _ body: @escaping (RESTClient, Int) throws -> T) throws -> [T] {
    let lock = NSLock()
    var collected: [Int: T] = [:]
    var firstError: Error?
    let n = max(1, min(workers, count))
    DispatchQueue.concurrentPerform(iterations: n) { w in
        let client = RESTClient(host: host, port: port)
        var i = w
        while i < count {
            lock.lock(); let stop = firstError != nil; lock.unlock()
            if stop { return }
            do {
                let v = try body(client, i)
                lock.lock(); collected[i] = v; lock.unlock()
            } catch {
                lock.lock(); if firstError == nil { firstError = error }; lock.unlock()
                return
            }
            i += n
        }
    }
    if let e = firstError { throw e }
    return (0..<count).map { collected[$0]! }
}

/// Orders put through `PUT /v1/users/{user}/orders/{order}` so each customer's conversation opens
/// on one (the tool then checks that `conversation.created` carries it).
enum OrderSeeder {
    static func orderId(for user: String) -> String { "ord-\(user)" }

    static func put(users: [String], apiKey: String, host: String, port: Int) throws {
        let placed = ISO8601DateFormatter().string(from: Date())
        _ = try parallel(users.count, host: host, port: port) { client, i in
            let body = #"{"placedAt":"\#(placed)","status":"paid","total":"42.50","currency":"EUR","items":[{"name":"Load test kettle","quantity":1,"price":"42.50"}],"metadata":{"source":"parley-load"}}"#
            let r = try client.request("PUT", "/v1/users/\(users[i])/orders/\(orderId(for: users[i]))", bearer: apiKey, json: body)
            guard (200..<300).contains(r.status) else { throw RESTClient.Failure.status(r.status, String(decoding: r.body, as: UTF8.self)) }
        }
    }
}

/// A value handed from another thread to one waiting on a semaphore.
final class ResultBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<T, Error>?
    func set(_ v: Result<T, Error>) { lock.lock(); value = v; lock.unlock() }
    func get() throws -> T {
        lock.lock(); defer { lock.unlock() }
        guard let v = value else { throw RESTClient.Failure.io("no result") }
        return try v.get()
    }
}

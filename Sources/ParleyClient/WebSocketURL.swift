/// `ws://host[:port][/path]` (and `wss://`, for when TLS lands).
public struct WebSocketURL: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var path: String
    public var secure: Bool

    public init?(_ string: String) {
        let rest: Substring
        if string.hasPrefix("ws://") { secure = false; rest = string.dropFirst(5) }
        else if string.hasPrefix("wss://") { secure = true; rest = string.dropFirst(6) }
        else { return nil }
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        path = slash == rest.endIndex ? "/" : String(rest[slash...])
        if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else { return nil }
            port = p
        } else {
            host = String(authority)
            port = secure ? 443 : 80
        }
        guard !host.isEmpty else { return nil }
    }

    public var description: String { "\(secure ? "wss" : "ws")://\(host):\(port)\(path)" }

    /// Whether the host is on this machine (the load tool refuses other hosts unless told).
    public var isLoopback: Bool { host == "localhost" || host.hasPrefix("127.") || host == "::1" }
}

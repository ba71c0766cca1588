/// Outgoing TCP connections for the clients built on this transport (WebSocket, NATS, the load
/// tool's REST client).
public enum Dial {
    public enum Failure: Error, Equatable {
        case badAddress(String)
        case connect(String)
    }

    /// A non-blocking socket connecting to `host` (an IPv4 literal or `localhost`) on `port`, with
    /// TCP_NODELAY, optionally bound to `sourceAddress` first (to spread many connections over
    /// 127.0.0.0/8). The connect completes later: adopt the descriptor on a loop and write at once,
    /// the output waits for writability.
    public static func tcp(host: String, port: Int, sourceAddress: String? = nil) throws(Failure) -> Int32 {
        try open(host: host, port: port, sourceAddress: sourceAddress, blocking: false, timeoutSeconds: 0)
    }

    /// A blocking, connected socket whose reads and writes give up after `timeoutSeconds`.
    public static func blocking(host: String, port: Int, timeoutSeconds: Int) throws(Failure) -> Int32 {
        try open(host: host, port: port, sourceAddress: nil, blocking: true, timeoutSeconds: timeoutSeconds)
    }

    private static func open(host: String, port: Int, sourceAddress: String?, blocking: Bool, timeoutSeconds: Int) throws(Failure) -> Int32 {
        do throws(Socket.Failure) {
            guard (1...65535).contains(port) else { throw .badAddress(host) }
            let addr = try Socket.address(host, port: port)
            let local = try sourceAddress.map { a throws(Socket.Failure) in try Socket.address(a, port: 0) }
            return try Socket.made(try Socket.tcp(nonBlocking: !blocking)) { fd throws(Socket.Failure) in
                if blocking { Socket.setTimeouts(fd, seconds: timeoutSeconds) }
                Socket.setNoDelay(fd)
                if let local {
                    do throws(Socket.Failure) { try Socket.bind(fd, local) } catch { throw .system("bind \(sourceAddress!)", "\(error)") }
                }
                try Socket.connect(fd, addr)
                return fd
            }
        } catch {
            switch error {
            case .badAddress(let a): throw .badAddress(a)
            case .system(let call, let m): throw .connect(call == "connect" ? m : "\(call): \(m)")
            }
        }
    }
}

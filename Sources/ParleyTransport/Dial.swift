#if canImport(Glibc)
import Glibc
#endif

/// Outgoing TCP connections for the clients built on this transport (WebSocket, NATS).
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
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        guard (1...65535).contains(port), inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr) == 1 else {
            throw .badAddress(host)
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .connect(String(cString: strerror(errno))) }
        if let src = sourceAddress {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            guard inet_pton(AF_INET, src, &local.sin_addr) == 1 else { _ = Glibc.close(fd); throw .badAddress(src) }
            let rc = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            guard rc == 0 else { let m = String(cString: strerror(errno)); _ = Glibc.close(fd); throw .connect("bind \(src): \(m)") }
        }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        if rc != 0, errno != EINPROGRESS {
            let m = String(cString: strerror(errno))
            _ = Glibc.close(fd)
            throw .connect(m)
        }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        return fd
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// TCP socket set-up and `close`, in one place: the listener, the dialer (WebSocket and NATS
/// clients) and the load tool's blocking REST client all make their sockets here.
public enum Socket {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// Not an IPv4 literal or `localhost`, or a port outside 1–65535 (0 for a listener).
        case badAddress(String)
        /// A system call failed: which, and `strerror`.
        case system(String, String)

        public var description: String {
            switch self {
            case .badAddress(let a): return "not an IPv4 address or hostname: \(a)"
            case .system(let call, let m): return "\(call): \(m)"
            }
        }
    }

    /// An IPv4 socket address; `localhost` is 127.0.0.1.
    public static func address(_ host: String, port: Int) throws(Failure) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        guard (0...65535).contains(port), inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &addr.sin_addr) == 1 else {
            throw .badAddress(host)
        }
        return addr
    }

    /// A TCP socket, close-on-exec, non-blocking unless asked otherwise.
    public static func tcp(nonBlocking: Bool = true) throws(Failure) -> Int32 {
        var type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { type |= Int32(SOCK_NONBLOCK.rawValue) }
        let fd = socket(AF_INET, type, 0)
        guard fd >= 0 else { throw .system("socket", errnoString) }
        return fd
    }

    public static func bind(_ fd: Int32, _ addr: sockaddr_in) throws(Failure) {
        var a = addr
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { throw .system("bind", errnoString) }
    }

    /// Starts (non-blocking) or makes (blocking) a connection. A non-blocking connect in progress
    /// is success: the first write waits for writability.
    public static func connect(_ fd: Int32, _ addr: sockaddr_in) throws(Failure) {
        var a = addr
        let rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 || errno == EINPROGRESS else { throw .system("connect", errnoString) }
    }

    public static func listen(_ fd: Int32, backlog: Int32) throws(Failure) {
        guard Glibc.listen(fd, backlog) == 0 else { throw .system("listen", errnoString) }
    }

    /// The port the socket is bound to.
    public static func localPort(_ fd: Int32) -> Int {
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: bound.sin_port))
    }

    public static func setNoDelay(_ fd: Int32) { setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1) }
    public static func setReuseAddress(_ fd: Int32) { setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1) }

    /// Blocking sockets only: reads and writes give up after `seconds`.
    public static func setTimeouts(_ fd: Int32, seconds: Int) {
        var tv = timeval(tv_sec: seconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    private static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Closes a descriptor. The one `close(2)` of the transport: a socket is closed exactly once,
    /// by whoever owns it (the connection's loop once adopted).
    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    /// Runs `body` with a fresh socket, closing it if `body` throws.
    static func made<T>(_ fd: Int32, _ body: (Int32) throws(Failure) -> T) throws(Failure) -> T {
        do { return try body(fd) } catch { close(fd); throw error }
    }

    static var errnoString: String { String(cString: strerror(errno)) }
}

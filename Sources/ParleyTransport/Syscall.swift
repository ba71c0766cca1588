#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The outcome of one non-blocking I/O call. `EINTR` is retried inside;
/// `EAGAIN` becomes `.wouldBlock`; a peer's reset is an ordinary `.error`.
public enum IOResult: Equatable {
    case bytes(Int)
    case wouldBlock
    case eof
    case error(Int32)
}

@usableFromInline
enum Sys {
    @inline(__always)
    static func read(_ fd: Int32, _ ptr: UnsafeMutableRawPointer, _ count: Int) -> IOResult {
        while true {
            let n = Glibc.read(fd, ptr, count)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .eof }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            // EBADF/EFAULT mean we passed a closed fd or a bad pointer: a bug, not input.
            precondition(e != EBADF && e != EFAULT, "read on a bad descriptor or buffer")
            return .error(e)
        }
    }

    @inline(__always)
    static func writev(_ fd: Int32, _ iov: UnsafePointer<iovec>, _ count: Int32) -> IOResult {
        while true {
            let n = Glibc.writev(fd, iov, count)
            if n >= 0 { return .bytes(n) }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            precondition(e != EBADF && e != EFAULT, "writev on a bad descriptor or buffer")
            return .error(e)
        }
    }

    @inline(__always)
    static func write(_ fd: Int32, _ ptr: UnsafeRawPointer, _ count: Int) -> IOResult {
        while true {
            let n = Glibc.send(fd, ptr, count, Int32(MSG_NOSIGNAL))
            if n >= 0 { return .bytes(n) }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK { return .wouldBlock }
            if e == ENOTSOCK {  // a pipe or file in tests: fall back to write(2)
                let m = Glibc.write(fd, ptr, count)
                if m >= 0 { return .bytes(m) }
                let e2 = errno
                if e2 == EINTR { continue }
                if e2 == EAGAIN { return .wouldBlock }
                return .error(e2)
            }
            precondition(e != EBADF && e != EFAULT, "send on a bad descriptor or buffer")
            return .error(e)
        }
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    static var errnoString: String { String(cString: strerror(errno)) }
}

public enum TransportError: Error, CustomStringConvertible {
    case socket(String)
    case bind(host: String, port: Int, String)
    case listen(String)
    case badAddress(String)

    public var description: String {
        switch self {
        case .socket(let m): return "socket: \(m)"
        case .bind(let h, let p, let m): return "cannot bind \(h):\(p): \(m)"
        case .listen(let m): return "listen: \(m)"
        case .badAddress(let a): return "not an IPv4 address or hostname: \(a)"
        }
    }
}

/// Process-wide settings a server wants before Dispatch starts threads.
public enum ProcessSetup {
    /// Ignores SIGPIPE (writes also pass MSG_NOSIGNAL) and raises RLIMIT_NOFILE to its hard limit.
    /// Returns the soft limit now in force.
    @discardableResult
    public static func prepare(schedBatch: Bool) -> Int {
        signal(SIGPIPE, SIG_IGN)
        if schedBatch { _ = parleySetSchedBatch() }
        var rl = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 {
            if rl.rlim_cur < rl.rlim_max {
                rl.rlim_cur = rl.rlim_max
                _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
                _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl)
            }
            return Int(clamping: rl.rlim_cur)
        }
        return 1024
    }

    public static var fileLimit: Int {
        var rl = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return 1024 }
        return Int(clamping: rl.rlim_cur)
    }
}

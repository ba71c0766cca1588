import Dispatch
import Foundation
import Atomics
import Logging
import CParleySys
#if canImport(Glibc)
import Glibc
#endif

/// Counts open connections against the descriptor limit so accepting pauses well before
/// RLIMIT_NOFILE: libdispatch aborts the process when it cannot open files (notes §A7).
public final class ConnectionBudget: @unchecked Sendable {
    public let pauseAt: Int
    public let resumeAt: Int
    let open = ManagedAtomic<Int>(0)
    let listenerPaused = ManagedAtomic<Bool>(false)
    var onResume: (() -> Void)?

    public init(fileLimit: Int, reserved: Int) {
        let reserve = max(reserved, fileLimit / 16)
        pauseAt = max(16, fileLimit - reserve)
        resumeAt = max(8, pauseAt - max(8, pauseAt / 50))
    }

    public var openConnections: Int { open.load(ordering: .relaxed) }

    func acquired() { open.wrappingIncrement(ordering: .relaxed) }

    func released() {
        let now = open.wrappingDecrementThenLoad(ordering: .relaxed)
        if now <= resumeAt, listenerPaused.compareExchange(expected: true, desired: false, ordering: .acquiringAndReleasing).exchanged {
            onResume?()
        }
    }
}

/// N loops; connections are spread round-robin.
///
/// Loops live as long as the process: their Dispatch sources run handlers that refer to them, and
/// a source must never be released while it runs. `LoopGroup.all` keeps every loop ever started.
/// `@unchecked Sendable`: `nextLoop` is called from one queue only (as it says).
public final class LoopGroup: @unchecked Sendable {
    public let loops: [Loop]
    private var next = 0
    nonisolated(unsafe) private static var all: [Loop] = []
    private static let allLock = NSLock()

    public init(count: Int, mode: ReadinessMode = .epoll, limits: TransportLimits = .init(), budget: ConnectionBudget? = nil) {
        loops = (0..<max(1, count)).map { Loop(index: $0, mode: mode, limits: limits, budget: budget) }
        LoopGroup.allLock.lock()
        LoopGroup.all += loops
        LoopGroup.allLock.unlock()
        for l in loops { l.start() }
    }

    /// Not thread-safe: call from one queue (the listener's, or the client's driver).
    public func nextLoop() -> Loop {
        let l = loops[next]
        next = (next + 1) % loops.count
        return l
    }
}

/// A non-blocking listening socket whose readiness arrives through one DispatchSourceRead.
/// `@unchecked Sendable`: its state is touched only on its own accept `queue`.
public final class Listener: @unchecked Sendable {
    public let fd: Int32
    public let port: Int
    private let queue = DispatchQueue(label: "parley.accept", target: .global(qos: .userInteractive))
    private var source: DispatchSourceRead?
    private var spareFd: Int32 = -1
    private let logger: Logger
    private var stopped = false
    private var suspended = false

    public init(host: String, port: Int, logger: Logger) throws {
        self.logger = logger
        let fd: Int32
        do throws(Socket.Failure) {
            let addr = try Socket.address(host, port: port)
            fd = try Socket.made(try Socket.tcp()) { fd throws(Socket.Failure) in
                Socket.setReuseAddress(fd)
                try Socket.bind(fd, addr)
                try Socket.listen(fd, backlog: Listener.somaxconn())
                return fd
            }
        } catch {
            switch error {
            case .badAddress(let a): throw TransportError.badAddress(a)
            case .system("bind", let m): throw TransportError.bind(host: host, port: port, m)
            case .system("listen", let m): throw TransportError.listen(m)
            case .system(_, let m): throw TransportError.socket(m)
            }
        }
        self.fd = fd
        self.port = Socket.localPort(fd)
        self.spareFd = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    static func somaxconn() -> Int32 {
        parley_read_int_file("/proc/sys/net/core/somaxconn", 4096)
    }

    /// Starts accepting; each new socket is adopted by the next loop and `onAccept` runs there.
    public func start(group: LoopGroup, budget: ConnectionBudget, onAccept: @escaping @Sendable (Loop, Int32) -> Void) {
        let s = DispatchSource.makeReadSource(fileDescriptor: fd, queue: queue)
        let perWakeup = group.loops[0].limits.acceptsPerWakeup
        s.setEventHandler { [unowned self] in
            self.acceptBatch(perWakeup: perWakeup, group: group, budget: budget, onAccept: onAccept)
        }
        budget.onResume = { [weak self] in
            guard let listener = self else { return }
            listener.queue.async { [weak listener] in
                guard let self = listener, !self.stopped, self.suspended else { return }
                self.suspended = false
                self.logger.info("accepting resumed", metadata: ["conn.open": "\(budget.openConnections)"])
                self.source?.resume()
            }
        }
        source = s
        s.resume()
    }

    private func acceptBatch(perWakeup: Int, group: LoopGroup, budget: ConnectionBudget, onAccept: @escaping @Sendable (Loop, Int32) -> Void) {
        // Linux reports no backlog size for a listener (data is always 1): accept until EAGAIN, capped.
        for _ in 0..<perWakeup {
            if budget.openConnections >= budget.pauseAt {
                pauseAccepting(budget)
                return
            }
            let cfd = parley_accept_nonblocking(fd)
            if cfd < 0 {
                let e = errno
                switch e {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR, ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE:
                    // The spare-fd trick: free one descriptor, accept and drop the connection, so the
                    // level-triggered listener does not spin on a backlog we cannot take.
                    if spareFd >= 0 { Socket.close(spareFd); spareFd = -1 }
                    let victim = parley_accept_nonblocking(fd)
                    if victim >= 0 { Socket.close(victim) }
                    spareFd = open("/dev/null", O_RDONLY | O_CLOEXEC)
                    logger.warning("out of file descriptors: connection dropped")
                    return
                default:
                    logger.warning("accept failed", metadata: ["errno": "\(e)"])
                    return
                }
            }
            Sys.setNoDelay(cfd)
            budget.acquired()
            let loop = group.nextLoop()
            loop.queue.async { onAccept(loop, cfd) }
        }
    }

    private func pauseAccepting(_ budget: ConnectionBudget) {
        guard !suspended else { return }
        suspended = true
        source?.suspend()
        logger.warning("accepting paused: near the descriptor limit", metadata: ["conn.open": "\(budget.openConnections)", "conn.pause_at": "\(budget.pauseAt)"])
        budget.listenerPaused.store(true, ordering: .sequentiallyConsistent)
        // A close may have happened between the check and the flag: re-check.
        if budget.openConnections <= budget.resumeAt,
           budget.listenerPaused.compareExchange(expected: true, desired: false, ordering: .acquiringAndReleasing).exchanged {
            suspended = false
            source?.resume()
        }
    }

    /// Stops accepting and closes the listening socket (from its source's cancel handler).
    public func stop(completion: @escaping @Sendable () -> Void = {}) {
        queue.async {
            guard !self.stopped, let s = self.source else { completion(); return }
            self.stopped = true
            let fd = self.fd
            let spare = self.spareFd
            s.setCancelHandler { Socket.close(fd); if spare >= 0 { Socket.close(spare) }; completion() }
            s.cancel()
            if self.suspended { self.suspended = false; s.resume() }
        }
    }
}

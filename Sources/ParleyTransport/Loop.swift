import Dispatch
import CParleySys
import Logging
#if canImport(Glibc)
import Glibc
#endif

/// What a protocol layer does with a connection's bytes. Every call runs on the connection's loop.
public protocol ConnectionHandler: AnyObject {
    /// `bytes` are the connection's unconsumed input (mutable, so frames can be unmasked in place;
    /// at least 8 bytes past the end are writable padding only when noted by the caller: do not rely on it).
    /// Returns how many leading bytes were consumed; the rest is kept and offered again with more.
    /// A handler that replaces `connection.handler` is offered the remainder at once.
    func connectionRead(_ connection: Connection, _ bytes: UnsafeMutableRawBufferPointer) -> Int
    /// `connection.deadlineMs` has passed.
    func connectionDeadline(_ connection: Connection, nowMs: UInt64)
    /// Unsent output passed the hard limit: the peer is not reading.
    func connectionOverflow(_ connection: Connection)
    /// The connection is closed; called exactly once.
    func connectionClosed(_ connection: Connection)
}

public struct LoopCounters: Sendable {
    /// `epoll_ctl` refusals (ENOMEM, ENOSPC): connections closed or never adopted because of them.
    public var watchFailures: UInt64 = 0
    public var messagesIn: UInt64 = 0
    public var messagesOut: UInt64 = 0
    public var tlsHandshakes: UInt64 = 0
    public var tlsErrors: UInt64 = 0
    /// permessage-deflate: messages compressed (once per shared event), messages sent compressed,
    /// messages inflated.
    public var deflateRuns: UInt64 = 0
    public var compressedSent: UInt64 = 0
    public var inflateRuns: UInt64 = 0
    public init() {}
}

/// One serial DispatchQueue and every connection that lives on it. All of a connection's state
/// is touched only on its loop's queue.
/// `@unchecked Sendable`: a loop is handed between threads (the listener gives each accepted socket
/// to one) but everything it holds is touched only on its own serial `queue`, the discipline every
/// method documents; ThreadSanitizer (`scripts/tsan.sh`) checks it where the compiler cannot.
public final class Loop: @unchecked Sendable {
    /// For the rare failures of the loop itself (connections log through their handlers).
    static let logger = Logger(label: "parley.transport")
    public let index: Int
    public let queue: DispatchQueue
    public let mode: ReadinessMode
    public let limits: TransportLimits
    /// The loop's monotonic clock, refreshed at each wake-up and tick.
    @exclusivity(unchecked) public private(set) var nowMs: UInt64 = monotonicMs()
    @exclusivity(unchecked) public private(set) var connectionCount = 0
    /// Counters the protocol layers bump on this loop (no atomics on the hot path); the server adds
    /// them to its metrics on each tick and zeroes them. Loop-confined.
    @exclusivity(unchecked) public var counters = LoopCounters()

    static let readBufferBytes = 64 * 1024
    static let maxEventsPerWait: Int32 = 64
    static let maxIovecs = 64
    static let maxWaitsPerWakeup = 16

    /// The loop's one read buffer: connections read into it and keep only what they leave unconsumed.
    let readBuffer: UnsafeMutableRawBufferPointer
    let iovecs: UnsafeMutablePointer<iovec>
    private let epfd: Int32
    private var epollSource: DispatchSourceRead?
    private var timer: DispatchSourceTimer?
    private let events: UnsafeMutablePointer<UInt32>
    private let datas: UnsafeMutablePointer<UInt64>
    /// Connections by fd number (dense, small). A slot is cleared before its fd is closed.
    @exclusivity(unchecked) var table: [Connection?] = []
    private var nextId: UInt32 = 1
    let budget: ConnectionBudget?
    private var tickHandlers: [@Sendable (UInt64) -> Void] = []
    /// TLS scratch (memory BIO, plaintext buffer, deferred handshakes): made on first TLS use.
    private var tlsScratch: TLSIO?
    var tlsIO: TLSIO {
        if let io = tlsScratch { return io }
        let io = TLSIO()
        tlsScratch = io
        return io
    }
    /// Protocol layers' per-loop state (e.g. a shared compressor), by key; loop-confined.
    private var locals: [ObjectIdentifier: AnyObject] = [:]

    // Output corking: while one connection handles its input, its writes collect here and go out
    // as one write at the end of the turn. Only one connection is corked at a time (serial loop).
    @exclusivity(unchecked) var corkOwner: Connection?
    @exclusivity(unchecked) var corkBuffer: UnsafeMutableRawPointer
    @exclusivity(unchecked) var corkCapacity = 16 * 1024
    @exclusivity(unchecked) var corkCount = 0

    init(index: Int, mode: ReadinessMode, limits: TransportLimits, budget: ConnectionBudget?) {
        self.index = index
        self.mode = mode
        self.limits = limits
        self.budget = budget
        // Targeting a global queue instead of the overcommit root keeps the worker count at the
        // core count (notes/transport.md §A6: half the context switches, ~1.8x throughput).
        self.queue = DispatchQueue(label: "parley.loop.\(index)", target: .global(qos: .userInteractive))
        self.readBuffer = .allocate(byteCount: Loop.readBufferBytes + 16, alignment: 16)
        self.iovecs = .allocate(capacity: Loop.maxIovecs)
        self.events = .allocate(capacity: Int(Loop.maxEventsPerWait))
        self.datas = .allocate(capacity: Int(Loop.maxEventsPerWait))
        self.corkBuffer = .allocate(byteCount: corkCapacity, alignment: 16)
        self.epfd = mode == .epoll ? parley_epoll_create() : -1
        precondition(mode != .epoll || epfd >= 0, "epoll_create1 failed")
    }

    func start() {
        if mode == .epoll {
            let source = DispatchSource.makeReadSource(fileDescriptor: epfd, queue: queue)
            source.setEventHandler { [unowned self] in self.drainEpoll() }
            source.resume()
            epollSource = source
        }
        let t = DispatchSource.makeTimerSource(queue: queue)
        t.schedule(deadline: .now() + .milliseconds(250), repeating: .milliseconds(250), leeway: .milliseconds(50))
        t.setEventHandler { [unowned self] in self.tick() }
        t.resume()
        timer = t
    }

    /// Runs `body` on every tick (every 250 ms) on this loop.
    public func onTick(_ body: @escaping @Sendable (UInt64) -> Void) {
        queue.async { self.tickHandlers.append(body) }
    }

    /// Every open connection on this loop. Call on the loop's queue.
    public func forEachConnection(_ body: (Connection) -> Void) {
        for case let c? in table { body(c) }
    }

    /// This loop's instance of `T`, made by `make` on first use. Call on the loop's queue.
    public func local<T: AnyObject>(_ type: T.Type, _ make: () -> T) -> T {
        let key = ObjectIdentifier(type)
        if let v = locals[key] { return unsafeDowncast(v, to: T.self) }
        let v = make()
        locals[key] = v
        return v
    }

    /// Why a socket could not be adopted; it has been closed either way.
    public enum AdoptFailure: Error, Equatable, CustomStringConvertible {
        /// OpenSSL could not make a session.
        case tls
        /// The kernel would not watch the descriptor (`epoll_ctl` ADD: ENOMEM, or ENOSPC past
        /// `max_user_watches`), with its errno.
        case watch(Int32)

        public var description: String {
            switch self {
            case .tls: return "cannot make a TLS session"
            case .watch(let e): return "epoll_ctl ADD failed: \(String(cString: strerror(e)))"
            }
        }
    }

    /// Takes ownership of a connected, non-blocking socket; with `tls`, the connection speaks TLS
    /// (server or client side as the context says; `serverName` is the client's SNI and the name
    /// its certificate must carry). On failure the socket is closed and the error says why. Call on
    /// the loop's queue.
    @discardableResult
    public func adopt(fd: Int32, handler: ConnectionHandler, tls: TLSContext?, serverName: String? = nil) throws(AdoptFailure) -> Connection {
        guard let tls else { return try adopt(fd: fd, handler: handler) }
        guard let state = TLSState(context: tls, io: tlsIO, serverName: serverName) else {
            counters.tlsErrors &+= 1
            Socket.close(fd)
            budget?.released()
            throw .tls
        }
        let c = try adopt(fd: fd, handler: handler)
        c.tls = state
        if !tls.isServer { c.startClientHandshake() }
        return c
    }

    /// Takes ownership of a connected, non-blocking socket. On failure the socket is closed and
    /// the error says why. Call on the loop's queue.
    @discardableResult
    public func adopt(fd: Int32, handler: ConnectionHandler) throws(AdoptFailure) -> Connection {
        nowMs = monotonicMs()
        let c = Connection(fd: fd, loop: self, id: nextId, handler: handler)
        nextId &+= 1
        if nextId == 0 { nextId = 1 }
        switch mode {
        case .epoll:
            if parley_epoll_add(epfd, fd, interestBits(c), key(c)) != 0 {
                let e = errno
                counters.watchFailures &+= 1
                c.abandon()
                Socket.close(fd)
                budget?.released()
                throw .watch(e)
            }
        case .sources:
            break
        }
        let slot = Int(fd)
        if slot >= table.count { table.append(contentsOf: repeatElement(nil, count: slot - table.count + 1 + table.count / 2)) }
        table[slot] = c
        connectionCount += 1
        if mode == .sources { c.makeSources() }
        return c
    }

    @inline(__always) private func key(_ c: Connection) -> UInt64 {
        UInt64(UInt32(bitPattern: c.fd)) | (UInt64(c.id) << 32)
    }

    private func interestBits(_ c: Connection) -> UInt32 {
        var bits: UInt32 = 0
        if !c.readBlocked { bits |= UInt32(parley_EPOLLIN()) | UInt32(parley_EPOLLRDHUP()) }
        if c.wantsWrite { bits |= UInt32(parley_EPOLLOUT()) }
        return bits
    }

    /// The connection's read pause or write interest changed.
    func updateInterest(_ c: Connection) {
        switch mode {
        case .epoll:
            if parley_epoll_mod(epfd, c.fd, interestBits(c), key(c)) != 0 {
                // The kernel would not change what it watches (ENOMEM): the connection cannot be
                // served as asked. Closed on the next turn, out of the caller's state change.
                counters.watchFailures &+= 1
                queue.async { c.close(.resources) }
            }
        case .sources:
            c.syncSources()
        }
    }

    /// Removes the connection; the fd is closed here (epoll) or by the last cancel handler (sources).
    func remove(_ c: Connection) {
        let slot = Int(c.fd)
        if slot < table.count, table[slot] === c { table[slot] = nil }
        connectionCount -= 1
        if corkOwner === c { corkOwner = nil; corkCount = 0 }
        switch mode {
        case .epoll:
            _ = parley_epoll_del(epfd, c.fd)
            Socket.close(c.fd)
            budget?.released()
        case .sources:
            c.cancelSources()  // budget released when the fd is really closed
        }
    }

    /// Refreshes the loop clock (per-connection source handlers call this per event).
    @inline(__always) func refreshClock() { nowMs = monotonicMs() }

    private func drainEpoll() {
        nowMs = monotonicMs()
        tlsScratch?.handshakesThisTurn = 0
        let inBits = UInt32(parley_EPOLLIN()) | UInt32(parley_EPOLLRDHUP())
        let errBits = UInt32(parley_EPOLLERR()) | UInt32(parley_EPOLLHUP())
        let outBit = UInt32(parley_EPOLLOUT())
        // Bounded (16 x 64 events), so timers and queued work still get their turn; the epoll fd
        // stays readable if more is pending and Dispatch fires again. Each return to Dispatch costs
        // a re-arm (epoll_ctl on the manager thread) and a thread hand-off, so drain generously.
        for _ in 0..<Loop.maxWaitsPerWakeup {
            let n = Int(parley_epoll_wait(epfd, events, datas, Loop.maxEventsPerWait, 0))
            if n <= 0 { break }
            for i in 0..<n {
                let d = datas[i]
                let slot = Int(d & 0xffff_ffff)
                guard slot < table.count, let c = table[slot], c.id == UInt32(d >> 32) else { continue }
                let ev = events[i]
                if ev & outBit != 0 { c.handleWritable() }
                guard c.isAlive else { continue }
                if ev & (inBits | errBits) != 0 {
                    if c.readBlocked {
                        // Not reading, yet the socket reports hang-up or error: nothing more will flow.
                        if ev & errBits != 0 { c.close(.reset) }
                    } else {
                        c.handleReadable()
                    }
                }
            }
            if n < Int(Loop.maxEventsPerWait) { break }
        }
    }

    private func tick() {
        let now = monotonicMs()
        nowMs = now
        for case let c? in table {
            c.tick(now)
        }
        for h in tickHandlers { h(now) }
    }

    // MARK: TLS handshakes beyond the per-turn budget

    /// Queues a connection whose handshake step must wait; the queue is worked off in later turns,
    /// `handshakesPerTurn` at a time, with other work (established sessions) in between.
    func deferHandshake(_ c: Connection) {
        let io = tlsIO
        io.deferred.append(c)
        scheduleDeferredHandshakes()
    }

    private func scheduleDeferredHandshakes() {
        let io = tlsIO
        guard !io.resumeScheduled else { return }
        io.resumeScheduled = true
        queue.async { [unowned self] in
            io.resumeScheduled = false
            nowMs = monotonicMs()
            io.handshakesThisTurn = 0
            while io.deferredHead < io.deferred.count, io.handshakesThisTurn < limits.handshakesPerTurn {
                let c = io.deferred[io.deferredHead]
                io.deferredHead += 1
                c.resumeDeferredHandshake()
            }
            if io.deferredHead == io.deferred.count {
                io.deferred = []
                io.deferredHead = 0
            } else {
                if io.deferredHead > 1024 { io.deferred.removeFirst(io.deferredHead); io.deferredHead = 0 }
                scheduleDeferredHandshakes()
            }
        }
    }

    // MARK: corking

    func corkAppend(_ bytes: UnsafeRawBufferPointer) {
        if corkCount + bytes.count > corkCapacity {
            let newCapacity = max(corkCapacity * 2, corkCount + bytes.count)
            let nb = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
            nb.copyMemory(from: corkBuffer, byteCount: corkCount)
            corkBuffer.deallocate()
            corkBuffer = nb
            corkCapacity = newCapacity
        }
        if let src = bytes.baseAddress { (corkBuffer + corkCount).copyMemory(from: src, byteCount: bytes.count) }
        corkCount += bytes.count
    }

    /// Sends what the corked connection wrote during its turn, in one write.
    func uncork() {
        guard let c = corkOwner else { return }
        corkOwner = nil
        if corkCount > 0 {
            let n = corkCount
            corkCount = 0
            c.sendCorked(UnsafeRawBufferPointer(start: corkBuffer, count: n))
        }
        if corkCapacity > 256 * 1024 {  // one huge turn must not pin memory
            corkBuffer.deallocate()
            corkCapacity = 16 * 1024
            corkBuffer = .allocate(byteCount: corkCapacity, alignment: 16)
        }
    }
}

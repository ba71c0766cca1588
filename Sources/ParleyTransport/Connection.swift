import Dispatch
import CParleySys
import COpenSSL
#if canImport(Glibc)
import Glibc
#endif

/// One socket on one loop: its unconsumed input, its unsent output, backpressure and deadlines.
/// Every method must be called on `loop.queue` (hence `@unchecked Sendable`: it is passed to that
/// queue's closures, and confined to it by that rule, not by the compiler).
///
/// Hot properties are marked `@exclusivity(unchecked)`: they are touched only on the connection's
/// loop (a serial queue), so the runtime's dynamic exclusivity checks (measured ~2.5% of server CPU
/// in echo) cannot find anything; static checks still apply.
public final class Connection: @unchecked Sendable {
    public enum State: UInt8 { case open, closing, lingering, closed }
    public enum CloseReason: UInt8 { case normal, eof, reset, overflow, stalled, timeout, shutdown, tls, resources }

    public let fd: Int32
    /// Loops live as long as the process (`LoopGroup` keeps them), so no reference counting here.
    public unowned(unsafe) let loop: Loop
    public let id: UInt32
    public var handler: ConnectionHandler?
    @exclusivity(unchecked) public private(set) var state: State = .open
    public private(set) var closeReason: CloseReason = .normal
    /// When set (non-zero), the handler's `connectionDeadline` runs once the loop's clock passes it.
    @exclusivity(unchecked) public var deadlineMs: UInt64 = 0
    /// Free for the protocol layer (e.g. last inbound activity).
    @exclusivity(unchecked) public private(set) var lastReadMs: UInt64

    @exclusivity(unchecked) private(set) var readPaused = false
    /// The handler asked for no more input until it calls `resumeInput` (it cannot use more now).
    @exclusivity(unchecked) private(set) var inputPaused = false
    /// A TLS handshake waiting for the loop's next turn (handshakes per turn are bounded).
    @exclusivity(unchecked) var handshakeDeferred = false
    /// TLS session, when the connection is `wss://`/`https://` (nil: plain TCP).
    @exclusivity(unchecked) var tls: TLSState?
    /// Why TLS failed (OpenSSL's words), when the connection closed with reason `.tls`.
    public private(set) var tlsFailure: String?
    @exclusivity(unchecked) private(set) var wantsWrite = false
    /// Unconsumed input; empty (no allocation) in the common case where whole frames arrive.
    @exclusivity(unchecked) private var pending: [UInt8] = []
    /// Unsent output after EAGAIN; chunks may be shared with other connections.
    @exclusivity(unchecked) private var outbound: [ByteChunk] = []
    @exclusivity(unchecked) private var outHead = 0
    @exclusivity(unchecked) private var outHeadOffset = 0
    @exclusivity(unchecked) public private(set) var outboundBytes = 0
    @exclusivity(unchecked) private var lastProgressMs: UInt64 = 0
    private var lingerUntilMs: UInt64 = 0

    // .sources mode only
    private var readSource: DispatchSourceRead?
    private var writeSource: DispatchSourceWrite?
    private var readSourceSuspended = false
    private var writeSourceActive = false
    private var liveSources = 0

    init(fd: Int32, loop: Loop, id: UInt32, handler: ConnectionHandler) {
        self.fd = fd
        self.loop = loop
        self.id = id
        self.handler = handler
        self.lastReadMs = loop.nowMs
    }

    public var isOpen: Bool { state == .open }

    /// The loop could not take the socket on (and closed it): this connection never opened, and
    /// no handler callback will come.
    func abandon() {
        state = .closed
        handler = nil
    }
    var isAlive: Bool { state != .closed }
    public var isTLS: Bool { tls != nil }
    /// Reading is off: output backpressure, the handler's pause, or a TLS handshake deferred to
    /// the next turn.
    var readBlocked: Bool { readPaused || inputPaused || handshakeDeferred }

    // MARK: reading

    func handleReadable() {
        if tls != nil { handleReadableTLS(); return }
        let buf = loop.readBuffer
        switch Sys.read(fd, buf.baseAddress!, Loop.readBufferBytes) {
        case .bytes(let n):
            lastReadMs = loop.nowMs
            if state != .open { return }  // closing or lingering: input is discarded
            deliver(buf.baseAddress!, n)
        case .wouldBlock:
            return
        case .eof:
            close(state == .lingering ? .normal : .eof)
        case .error:
            close(.reset)
        }
    }

    /// Hands `n` bytes of input (raw, or decrypted) to the handler, keeping what it leaves.
    private func deliver(_ base: UnsafeMutableRawPointer, _ n: Int) {
        loop.corkOwner = self
        if pending.isEmpty {
            let used = feed(UnsafeMutableRawBufferPointer(start: base, count: n))
            if used < n, state == .open {
                pending.append(contentsOf: UnsafeRawBufferPointer(start: base + used, count: n - used))
            }
        } else {
            // Take the buffer out while handlers run: they may close the connection, which
            // resets `pending`, and that must not happen under our own access to it.
            var input = pending
            pending = []
            input.append(contentsOf: UnsafeRawBufferPointer(start: base, count: n))
            let used = input.withUnsafeMutableBytes { feed($0) }
            if state == .open, used < input.count {
                input.removeFirst(used)
                pending = input
            }  // else dropped: idle connections hold no input buffer
        }
        // A handler holding more unconsumed input than any message it takes needs is not going
        // to consume it: the peer is filling our memory.
        if pending.count > loop.limits.maxUnconsumedInputBytes, state == .open { close(.overflow) }
        if loop.corkOwner === self { loop.uncork() }
    }

    /// Runs `body` with this connection's writes collected and sent in one write at the end (as
    /// during its own input's turn): many small messages from one turn of work, one syscall.
    public func writingTogether(_ body: () -> Void) {
        guard loop.corkOwner == nil, state == .open else { return body() }
        loop.corkOwner = self
        body()
        if loop.corkOwner === self { loop.uncork() }
    }

    /// Stops reading until `resumeInput`: for a handler that cannot use more input now (an HTTP
    /// request whose answer is computed elsewhere), so a peer that keeps sending fills its own
    /// socket buffers, not the server's memory.
    public func pauseInput() {
        guard state == .open, !inputPaused else { return }
        inputPaused = true
        loop.updateInterest(self)
    }

    /// Reads again after `pauseInput`, and offers the input kept from earlier reads to the
    /// handler now.
    public func resumeInput() {
        guard state == .open else { return }
        if inputPaused {
            inputPaused = false
            loop.updateInterest(self)
        }
        guard !pending.isEmpty else { return }
        var input = pending
        pending = []
        loop.corkOwner = self
        let used = input.withUnsafeMutableBytes { feed($0) }
        if state == .open, used < input.count {
            input.removeFirst(used)
            pending = input
        }
        if loop.corkOwner === self { loop.uncork() }
    }

    private func feed(_ bytes: UnsafeMutableRawBufferPointer) -> Int {
        var offset = 0
        while offset < bytes.count, state == .open, let h = handler {
            let rest = UnsafeMutableRawBufferPointer(start: bytes.baseAddress! + offset, count: bytes.count - offset)
            let used = h.connectionRead(self, rest)
            precondition(used >= 0 && used <= rest.count, "handler consumed more than it was given")
            offset += used
            if handler === h { break }  // same handler: it took what it could
        }
        return offset
    }

    // MARK: writing

    /// Sends bytes (copied if they cannot go out at once).
    public func send(_ bytes: UnsafeRawBufferPointer) {
        guard state == .open, bytes.count > 0 else { return }
        if loop.corkOwner === self { loop.corkAppend(bytes); return }
        if tls != nil { tlsSend(bytes, nil); return }
        sendNow(bytes, nil)
    }

    /// Sends a frame header followed by a payload with one `writev` (payload not copied unless queued).
    public func send(header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) {
        guard state == .open else { return }
        if loop.corkOwner === self, payload.count <= 4096 {
            loop.corkAppend(header); loop.corkAppend(payload); return
        }
        if loop.corkOwner === self { loop.uncork() }
        if tls != nil { tlsSend(header, payload); return }
        sendNow(header, payload)
    }

    /// Sends a shared chunk (the same bytes may be queued on many connections).
    public func send(_ chunk: ByteChunk) {
        guard state == .open, chunk.count > 0 else { return }
        if loop.corkOwner === self {
            if chunk.count <= 4096 { loop.corkAppend(chunk.bytes); return }
            loop.uncork()
        }
        if tls != nil { tlsSend(chunk.bytes, nil); return }
        if outHead < outbound.count { enqueue(chunk); return }
        switch Sys.write(fd, chunk.base, chunk.count) {
        case .bytes(let n) where n == chunk.count:
            return
        case .bytes(let n):
            enqueue(chunk, offset: n)
        case .wouldBlock:
            enqueue(chunk)
        case .eof, .error:
            close(.reset)
        }
    }

    /// Sends what a corked turn collected (encrypted first on a TLS connection).
    func sendCorked(_ bytes: UnsafeRawBufferPointer) {
        if tls != nil { tlsSend(bytes, nil) } else { sendNow(bytes, nil) }
    }

    /// Direct write of `a` (+ `b`) to the socket, queuing what it does not take.
    func sendNow(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer?) {
        guard state == .open || state == .closing else { return }
        let total = a.count + (b?.count ?? 0)
        guard total > 0 else { return }
        var written = 0
        if outHead == outbound.count {
            let result: IOResult
            if let b, b.count > 0 {
                loop.iovecs[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: a.baseAddress), iov_len: a.count)
                loop.iovecs[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count)
                result = Sys.writev(fd, loop.iovecs, 2)
            } else {
                result = Sys.write(fd, a.baseAddress!, a.count)
            }
            switch result {
            case .bytes(let n): written = n
            case .wouldBlock: written = 0
            case .eof, .error: close(.reset); return
            }
            if written == total { return }
        }
        // Queue the remainder as one owned chunk.
        let remaining = total - written
        let chunk = ByteChunk(count: remaining) { dst in
            var d = 0
            if written < a.count {
                let n = a.count - written
                dst.baseAddress!.copyMemory(from: a.baseAddress! + written, byteCount: n)
                d = n
            }
            if let b, b.count > 0 {
                let skip = max(0, written - a.count)
                (dst.baseAddress! + d).copyMemory(from: b.baseAddress! + skip, byteCount: b.count - skip)
            }
        }
        enqueue(chunk)
    }

    private func enqueue(_ chunk: ByteChunk, offset: Int = 0) {
        if outHead == outbound.count { lastProgressMs = loop.nowMs }
        outbound.append(chunk)
        if outbound.count == outHead + 1 { outHeadOffset = offset }
        outboundBytes += chunk.count - offset
        if !wantsWrite { wantsWrite = true; loop.updateInterest(self) }
        if outboundBytes > loop.limits.hardLimitBytes {
            closeReason = .overflow
            if let h = handler { h.connectionOverflow(self) } else { close(.overflow) }
            return
        }
        if outboundBytes > loop.limits.highWaterBytes, !readPaused {
            readPaused = true
            loop.updateInterest(self)
        }
    }

    /// Drops queued output that has not started to go out (used before a last close frame to a peer
    /// that is not reading). A partially written chunk stays, so the byte stream remains well-formed.
    public func discardQueuedOutput() {
        guard outHead < outbound.count else { return }
        let keep = outHeadOffset > 0 ? outHead + 1 : outHead
        for i in keep..<outbound.count { outboundBytes -= outbound[i].count }
        outbound.removeSubrange(keep...)
    }

    func handleWritable() {
        flush()
    }

    private func flush() {
        while outHead < outbound.count {
            var n = 0
            var i = outHead
            while i < outbound.count, n < Loop.maxIovecs {
                let c = outbound[i]
                let off = i == outHead ? outHeadOffset : 0
                loop.iovecs[n] = iovec(iov_base: c.base + off, iov_len: c.count - off)
                n += 1
                i += 1
            }
            switch Sys.writev(fd, loop.iovecs, Int32(n)) {
            case .bytes(var w):
                lastProgressMs = loop.nowMs
                outboundBytes -= w
                while w > 0 {
                    let left = outbound[outHead].count - outHeadOffset
                    if w >= left { w -= left; outHead += 1; outHeadOffset = 0 } else { outHeadOffset += w; w = 0 }
                }
            case .wouldBlock:
                compactOutbound()
                return
            case .eof, .error:
                close(.reset)
                return
            }
        }
        outbound = []
        outHead = 0
        outHeadOffset = 0
        outboundBytes = 0
        var changed = false
        if wantsWrite { wantsWrite = false; changed = true }
        if readPaused, state == .open { readPaused = false; changed = true }
        if changed, state != .closed { loop.updateInterest(self) }
        if state == .closing { beginLinger() }
    }

    private func compactOutbound() {
        if outHead > 32 {
            outbound.removeFirst(outHead)
            outHead = 0
        }
        if readPaused, outboundBytes < loop.limits.lowWaterBytes, state == .open {
            readPaused = false
            loop.updateInterest(self)
        }
    }

    // MARK: closing

    /// Flushes what is queued, then sends FIN and waits (bounded) for the peer's FIN before closing:
    /// closing with unread input would send RST and could destroy our last frame in flight.
    public func closeAfterFlush() {
        guard state == .open else { return }
        if loop.corkOwner === self { loop.uncork() }
        if let t = tls, t.handshakeDone, !t.shutdownSent {
            t.shutdownSent = true
            // Queues close_notify; the peer's is not awaited. A refusal leaves errors on this thread's
            // queue, which the next connection served by the thread must not see.
            if SSL_shutdown(t.ssl) < 0 { _ = TLS.takeError() }
            drainTLSOutput()
            guard state == .open else { return }
        }
        state = .closing
        if outHead == outbound.count { beginLinger() }
    }

    private func beginLinger() {
        state = .lingering
        _ = shutdown(fd, Int32(SHUT_WR))
        lingerUntilMs = loop.nowMs + loop.limits.lingerMs
        pending = []
        if readPaused { readPaused = false; loop.updateInterest(self) }
    }

    /// Closes now. Safe to call more than once.
    public func close(_ reason: CloseReason = .normal) {
        guard state != .closed else { return }
        if closeReason == .normal { closeReason = reason }
        state = .closed
        tls = nil  // frees the SSL object (and its buffers) now
        handshakeDeferred = false
        pending = []
        outbound = []
        outHead = 0
        outboundBytes = 0
        loop.remove(self)
        let h = handler
        handler = nil
        h?.connectionClosed(self)
    }

    func tick(_ now: UInt64) {
        switch state {
        case .closed:
            return
        case .lingering:
            if now >= lingerUntilMs { close(.normal) }
            return
        case .open, .closing:
            if outHead < outbound.count, now &- lastProgressMs > loop.limits.writeStallMs {
                close(.stalled)
                return
            }
            if deadlineMs != 0, now >= deadlineMs {
                deadlineMs = 0
                if let h = handler { h.connectionDeadline(self, nowMs: now) } else { close(.timeout) }
            }
        }
    }

    // MARK: per-connection Dispatch sources (.sources mode)

    func makeSources() {
        let rs = DispatchSource.makeReadSource(fileDescriptor: fd, queue: loop.queue)
        let ws = DispatchSource.makeWriteSource(fileDescriptor: fd, queue: loop.queue)
        // Strong captures: the cycle is broken when libdispatch drops the handlers after cancel.
        rs.setEventHandler { [self] in if state != .closed { loop.refreshClock(); handleReadable() } }
        ws.setEventHandler { [self] in if state != .closed { loop.refreshClock(); handleWritable() } }
        rs.setCancelHandler { [self] in sourceCancelled() }
        ws.setCancelHandler { [self] in sourceCancelled() }
        liveSources = 2
        readSource = rs
        writeSource = ws
        rs.resume()  // the write source starts suspended: resumed only after EAGAIN
    }

    func syncSources() {
        guard let rs = readSource, let ws = writeSource else { return }
        if readBlocked != readSourceSuspended {
            if readBlocked { rs.suspend() } else { rs.resume() }
            readSourceSuspended = readBlocked
        }
        if wantsWrite != writeSourceActive {
            if wantsWrite { ws.resume() } else { ws.suspend() }
            writeSourceActive = wantsWrite
        }
    }

    func cancelSources() {
        guard let rs = readSource, let ws = writeSource else { return }
        // A suspended source never runs its cancel handler: cancel, then balance the suspension.
        rs.cancel()
        ws.cancel()
        if readSourceSuspended { rs.resume(); readSourceSuspended = false }
        if !writeSourceActive { ws.resume(); writeSourceActive = true }
    }

    /// The fd is closed in exactly one place: the last cancel handler of its two sources.
    private func sourceCancelled() {
        liveSources -= 1
        if liveSources == 0 {
            Socket.close(fd)
            readSource = nil
            writeSource = nil
            loop.budget?.released()
        }
    }
}

// MARK: - TLS over the connection's own queue (memory BIO on the loop)

extension Connection {
    /// Reads ciphertext, runs the handshake (bounded per loop turn) and hands plaintext up.
    private func handleReadableTLS() {
        guard let t = tls else { return }
        let io = loop.tlsIO
        if !t.handshakeDone, io.handshakesThisTurn >= loop.limits.handshakesPerTurn {
            deferHandshake()
            return
        }
        let buf = loop.readBuffer
        switch Sys.read(fd, buf.baseAddress!, Loop.readBufferBytes) {
        case .bytes(let n):
            lastReadMs = loop.nowMs
            if state != .open { return }
            if !t.sawInput {
                t.sawInput = true
                if t.context.isServer, Connection.looksLikePlainHTTP(UnsafeRawBufferPointer(start: buf.baseAddress, count: n)) {
                    refusePlainHTTP()
                    return
                }
            }
            decryptAndDeliver(t, UnsafeRawPointer(buf.baseAddress!), n)
        case .wouldBlock:
            return
        case .eof:
            close(state == .lingering ? .normal : .eof)
        case .error:
            close(.reset)
        }
    }

    private func decryptAndDeliver(_ t: TLSState, _ input: UnsafeRawPointer, _ n: Int) {
        let io = loop.tlsIO
        io.input = input
        io.inputCount = n
        io.inputUsed = 0
        defer { io.input = nil; io.inputCount = 0; io.inputUsed = 0 }
        if !t.handshakeDone {
            io.handshakesThisTurn += 1
            let r = SSL_do_handshake(t.ssl)
            if r == 1 {
                t.handshakeDone = true
                loop.counters.tlsHandshakes &+= 1
            } else {
                let e = SSL_get_error(t.ssl, r)
                drainTLSOutput()
                if e != SSL_ERROR_WANT_READ, e != SSL_ERROR_WANT_WRITE { tlsFailed(); return }
                return  // more of the handshake to come
            }
            drainTLSOutput()
            guard state == .open, tls === t else { return }
            if !t.early.isEmpty {
                let early = t.early
                t.early = []
                early.withUnsafeBytes { tlsSend($0, nil) }
                guard state == .open, tls === t else { return }
            }
        }
        // Plaintext never exceeds the ciphertext just read plus one record held back, so this loop
        // normally runs once; it stays correct if a read ever fills the buffer.
        while true {
            var produced = 0
            var peerClosed = false
            var failed = false
            while produced < io.plainCapacity {
                let r = SSL_read(t.ssl, io.plain + produced, Int32(min(io.plainCapacity - produced, Int(Int32.max))))
                if r > 0 { produced += Int(r); continue }
                let e = SSL_get_error(t.ssl, r)
                if e == SSL_ERROR_WANT_READ { break }
                if e == SSL_ERROR_ZERO_RETURN { peerClosed = true; break }
                failed = true
                break
            }
            drainTLSOutput()  // KeyUpdate answers, alerts
            if produced > 0, state == .open { deliver(io.plain, produced) }
            if failed { if state != .closed { tlsFailed() }; return }
            if peerClosed {
                // close_notify: nothing more will come. Let what we queued go out, then close.
                if state == .open { closeAfterFlush() }
                return
            }
            if produced < io.plainCapacity || state != .open || tls !== t { return }
        }
    }

    /// Encrypts and queues plaintext; before the handshake is done it waits in `early`.
    func tlsSend(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer?) {
        guard let t = tls, state == .open || state == .closing else { return }
        if !t.handshakeDone {
            t.early.append(contentsOf: a)
            if let b { t.early.append(contentsOf: b) }
            return
        }
        let io = loop.tlsIO
        if let b, b.count > 0 {
            // One record for header + payload (two would cost ~22 bytes and an AEAD call more).
            let total = a.count + b.count
            let j = io.joinBuffer(total)
            if a.count > 0 { j.copyMemory(from: a.baseAddress!, byteCount: a.count) }
            (j + a.count).copyMemory(from: b.baseAddress!, byteCount: b.count)
            tlsWrite(t, UnsafeRawBufferPointer(start: j, count: total))
        } else if a.count > 0 {
            tlsWrite(t, a)
        }
        drainTLSOutput()
        io.shrinkIfHuge()
    }

    private func tlsWrite(_ t: TLSState, _ bytes: UnsafeRawBufferPointer) {
        // The BIO always takes everything, so SSL_write completes (no WANT_WRITE, no partial write).
        let r = SSL_write(t.ssl, bytes.baseAddress, Int32(bytes.count))
        if r <= 0 { _ = TLS.takeError() }
    }

    /// Moves the ciphertext OpenSSL just produced into this connection's outbound path.
    func drainTLSOutput() {
        let io = loop.tlsIO
        guard io.outCount > 0 else { return }
        let n = io.outCount
        io.outCount = 0
        sendNow(UnsafeRawBufferPointer(start: io.out, count: n), nil)
    }

    /// Client side: sends the ClientHello.
    func startClientHandshake() {
        guard let t = tls, !t.context.isServer else { return }
        let r = SSL_do_handshake(t.ssl)
        let e = SSL_get_error(t.ssl, r)
        drainTLSOutput()
        if r != 1, e != SSL_ERROR_WANT_READ, e != SSL_ERROR_WANT_WRITE { tlsFailed() }
    }

    private func tlsFailed() {
        var why = TLS.takeError()
        if let t = tls, !t.context.isServer {
            let v = SSL_get_verify_result(t.ssl)
            if v != Int(X509_V_OK) { why = "certificate verification failed: " + String(cString: X509_verify_cert_error_string(v)) }
        }
        tlsFailure = why
        tls?.shutdownSent = true  // no close_notify after a fatal error (OpenSSL would refuse it)
        loop.counters.tlsErrors &+= 1
        if state == .open, outHead < outbound.count || loop.tlsIO.outCount > 0 {
            closeReason = .tls
            closeAfterFlush()  // the alert goes out first
        } else {
            close(.tls)
        }
    }

    private func deferHandshake() {
        handshakeDeferred = true
        loop.updateInterest(self)
        loop.deferHandshake(self)
    }

    /// The loop's next turn: read again.
    func resumeDeferredHandshake() {
        guard handshakeDeferred, state != .closed else { return }
        handshakeDeferred = false
        loop.updateInterest(self)
        handleReadable()
    }

    static func looksLikePlainHTTP(_ b: UnsafeRawBufferPointer) -> Bool {
        // A TLS record starts with content type 22 (handshake); an HTTP request with a method name.
        guard b.count >= 4 else { return false }
        for m in ["GET ", "POST", "PUT ", "HEAD", "DELE", "OPTI", "PATC"] {
            if m.utf8.elementsEqual(b[0..<4]) { return true }
        }
        return false
    }

    /// Plain HTTP on the TLS port: answer in plain HTTP so a human sees why, then close.
    private func refusePlainHTTP() {
        loop.counters.tlsErrors &+= 1
        tlsFailure = "plain HTTP request on the TLS port"
        let body = "This port speaks TLS: use https:// or wss://\n"
        let text = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        tls = nil
        closeReason = .tls
        Array(text.utf8).withUnsafeBytes { sendNow($0, nil) }
        closeAfterFlush()
    }
}

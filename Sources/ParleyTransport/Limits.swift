/// Transport limits and defaults, one place. Every value says why it is what it is.
public struct TransportLimits: Sendable {
    /// Stop reading a connection whose unsent output passes this (NIO's default high mark).
    public var highWaterBytes = 64 * 1024
    /// Resume reading once unsent output drops below this.
    public var lowWaterBytes = 32 * 1024
    /// Past this much unsent output the peer is not reading: close (1008 for WebSockets).
    /// Raised automatically to fit twice the largest message a server may echo.
    public var hardLimitBytes = 1 << 20
    /// A non-empty outbound queue that makes no progress for this long is a stalled peer.
    public var writeStallMs: UInt64 = 10_000
    /// After a graceful close, how long to wait for the peer's FIN before dropping it.
    public var lingerMs: UInt64 = 2_000
    /// Connections accepted per listener wake-up, so a connect storm cannot starve the loops.
    public var acceptsPerWakeup = 64
    /// TLS handshake steps per loop turn. A server ECDSA P-256 handshake costs a few hundred µs of
    /// CPU; past this many in one turn the rest wait for the next, so a handshake flood cannot
    /// starve established sessions on the same loop.
    public var handshakesPerTurn = 16
    /// Input read but not yet consumed by the handler, at most (past it the connection closes):
    /// above the largest unit a handler waits for whole (an HTTP head of 64 KiB and body of
    /// 1 MiB); WebSocket frames and TLS records are consumed as they stream in.
    public var maxUnconsumedInputBytes = 2 << 20
    /// Descriptors held back from connections for the log, Dispatch and the spare-fd trick.
    public var reservedDescriptors = 256

    public init() {}
}

/// How readiness reaches a loop. Both drive non-blocking sockets through Dispatch sources.
public enum ReadinessMode: String, CaseIterable, Sendable {
    /// One DispatchSourceRead per loop over a private epoll fd (default: ~100 B per connection,
    /// never touches libdispatch's manager thread per socket).
    case epoll
    /// One read and one write DispatchSource per connection, created at accept, never re-created.
    case sources
}

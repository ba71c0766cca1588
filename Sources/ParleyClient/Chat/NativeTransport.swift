import ParleyTransport
import ParleyWebSocket

/// `ChatTransport` on Parley's own WebSocket client: non-blocking sockets on one event loop,
/// `ws://` and `wss://` (system trust store), permessage-deflate, and keep-alive pings so a dead
/// network is noticed within `pingIntervalMs + pongTimeoutMs`. The transport of Linux apps and of
/// the SDK's tests; on Apple platforms `URLSessionTransport` is the default.
public final class NativeTransport: ChatTransport, @unchecked Sendable {
    /// One event loop for every client that does not bring its own transport (an app has one or a
    /// few connections; a loop per client would only cost threads and descriptors).
    public static let shared = NativeTransport()

    private let group: LoopGroup
    private let keepAlive: KeepAlive
    private let compression: Bool

    /// A transport on its own event loop (a thread's worth of work, an epoll descriptor): kept for
    /// the life of the process, so make one per configuration, not one per connection.
    public init(keepAlive: KeepAlive = KeepAlive(pingIntervalMs: 20_000, pongTimeoutMs: 10_000), compression: Bool = true) {
        group = LoopGroup(count: 1)
        self.keepAlive = keepAlive
        self.compression = compression
    }

    public func open(_ url: String, subprotocol: String, events: @escaping @Sendable (TransportEvent) -> Void) -> any ChatSocket {
        let socket = NativeSocket(loop: group.loops[0], events: events)
        guard let parsed = WebSocketURL(url) else {
            socket.loop.queue.async { events(.closed(code: abnormalClosure, reason: "not a ws:// or wss:// URL: \(url)")) }
            return socket
        }
        socket.loop.queue.async { [keepAlive, compression] in
            do {
                socket.client = try WebSocketClient.connect(parsed, on: socket.loop, subprotocols: [subprotocol], compression: compression,
                                                            keepAlive: keepAlive, delegate: socket)
            } catch {
                events(.closed(code: abnormalClosure, reason: "\(error)"))
            }
        }
        return socket
    }
}

/// One native WebSocket; everything runs on its loop's queue.
final class NativeSocket: ChatSocket, WebSocketClientDelegate, @unchecked Sendable {
    let loop: Loop
    private let events: @Sendable (TransportEvent) -> Void
    /// Loop-confined. Strong while open: the connection's handler reference is the client itself.
    var client: WebSocketClient?
    private var closing = false

    init(loop: Loop, events: @escaping @Sendable (TransportEvent) -> Void) {
        self.loop = loop
        self.events = events
    }

    func send(_ text: [UInt8]) {
        loop.queue.async { [self] in text.withUnsafeBytes { client?.sendText($0) } }
    }

    func close() {
        loop.queue.async { [self] in
            closing = true
            client?.close()
        }
    }

    func clientOpened(_ client: WebSocketClient) {
        if closing { client.close(); return }
        events(.opened)
    }

    func client(_ client: WebSocketClient, text: UnsafeRawBufferPointer) { events(.text(Array(text))) }
    func client(_ client: WebSocketClient, binary: UnsafeRawBufferPointer) {}

    func clientClosed(_ client: WebSocketClient, code: UInt16?, error: String?) {
        self.client = nil
        events(.closed(code: code ?? abnormalClosure, reason: error ?? ""))
    }
}

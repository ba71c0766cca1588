/// What a chat transport reports about one WebSocket, in order.
public enum TransportEvent: Sendable {
    /// The handshake completed: the socket takes messages.
    case opened
    /// A whole text message.
    case text([UInt8])
    /// The socket is gone: the server's close code if it sent one (1006 stands for none), and why.
    case closed(code: UInt16, reason: String)
}

/// One WebSocket opened by a `ChatTransport`. Calls may come from any thread.
public protocol ChatSocket: AnyObject, Sendable {
    /// Queues one text message.
    func send(_ text: [UInt8])
    /// Starts the closing handshake (1000); `closed` follows.
    func close()
}

/// The small seam between `ChatClient` and the platform's WebSocket: Parley's own client on
/// Linux (`NativeTransport`), `URLSessionWebSocketTask` on Apple platforms (`URLSessionTransport`),
/// or anything else that can open a WebSocket with a subprotocol.
public protocol ChatTransport: Sendable {
    /// Opens a WebSocket to `url` offering `subprotocol`. Events arrive through `events`, in order,
    /// ending with exactly one `closed` (also when opening fails).
    func open(_ url: String, subprotocol: String, events: @escaping @Sendable (TransportEvent) -> Void) -> any ChatSocket
}

/// The code a transport reports when the connection ended without a close frame.
public let abnormalClosure: UInt16 = 1006

#if canImport(Darwin)
import Foundation

/// `ChatTransport` on `URLSessionWebSocketTask`: the default on iOS and macOS. Kept thin: the
/// chat logic is `ChatClient`'s, shared with every platform. (Not testable on Linux, where
/// Foundation's libcurl has no WebSocket support.)
public final class URLSessionTransport: ChatTransport, @unchecked Sendable {
    private let session: URLSession

    public init(configuration: URLSessionConfiguration = .default) {
        session = URLSession(configuration: configuration)
    }

    public func open(_ url: String, subprotocol: String, events: @escaping @Sendable (TransportEvent) -> Void) -> any ChatSocket {
        guard let u = URL(string: url) else {
            let s = URLSessionSocket(task: nil, events: events)
            events(.closed(code: abnormalClosure, reason: "bad URL: \(url)"))
            return s
        }
        let task = session.webSocketTask(with: u, protocols: [subprotocol])
        let socket = URLSessionSocket(task: task, events: events)
        socket.start()
        return socket
    }
}

final class URLSessionSocket: ChatSocket, @unchecked Sendable {
    private let task: URLSessionWebSocketTask?
    private let events: @Sendable (TransportEvent) -> Void
    private let lock = NSLock()
    private var finished = false

    init(task: URLSessionWebSocketTask?, events: @escaping @Sendable (TransportEvent) -> Void) {
        self.task = task
        self.events = events
    }

    func start() {
        guard let task else { return }
        task.resume()
        // URLSession reports the open through its delegate; the first successful receive (the
        // server's welcome follows every hello) or a send completing both prove it, so `opened`
        // is reported as soon as the task runs, and failures end in `closed`.
        events(.opened)
        receive()
    }

    private func receive() {
        task?.receive { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(.string(let s)): self.events(.text(Array(s.utf8))); self.receive()
            case .success(.data(let d)): self.events(.text(Array(d))); self.receive()
            case .success: self.receive()
            case .failure(let e): self.finish(code: UInt16(clamping: self.task?.closeCode.rawValue ?? 0), reason: e.localizedDescription)
            }
        }
    }

    private func finish(code: UInt16, reason: String) {
        lock.lock()
        let first = !finished
        finished = true
        lock.unlock()
        if first { events(.closed(code: code == 0 ? abnormalClosure : code, reason: reason)) }
    }

    func send(_ text: [UInt8]) {
        task?.send(.string(String(decoding: text, as: UTF8.self))) { [weak self] error in
            if let error { self?.task?.cancel(with: .abnormalClosure, reason: nil); self?.finish(code: abnormalClosure, reason: error.localizedDescription) }
        }
    }

    func close() { task?.cancel(with: .normalClosure, reason: nil) }
}
#endif

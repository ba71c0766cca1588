import Foundation
import ParleyClient
import ParleyTransport

/// Opens N WebSocket connections (at a target rate, or as fast as the window allows), holds them
/// idle, and reports connect rate, failures and the server's RSS growth per connection.
final class ConnectScenario: WebSocketClientDelegate {
    let dialer: Dialer
    let group: LoopGroup
    private var opened: [Int]
    private var failed: [Int]
    private var clients: [[WebSocketClient]]
    private var firstError: String?

    init(dialer: Dialer, loops: Int) {
        self.dialer = dialer
        self.group = LoopGroup(count: loops)
        opened = group.loops.map { _ in 0 }
        failed = group.loops.map { _ in 0 }
        clients = group.loops.map { _ in [] }
    }

    func totals() -> (opened: Int, failed: Int, error: String?) {
        var o = 0, f = 0
        var e: String?
        for l in group.loops { l.queue.sync { o += opened[l.index]; f += failed[l.index]; if e == nil { e = firstError } } }
        return (o, f, e)
    }

    /// Issues `count` connects, at most `window` unanswered at once, paced to `rate` per second (0 = unpaced).
    func open(count: Int, rate: Double, window: Int, deadline: Date, tick: () -> Void = {}) {
        let start = Date()
        var issued = 0
        while issued < count, Date() < deadline, !Interrupt.requested {
            tick()
            let (o, f, _) = totals()
            let outstanding = issued - o - f
            var allowed = min(count - issued, max(0, window - outstanding))
            if rate > 0 {
                let due = Int(Date().timeIntervalSince(start) * rate) + 1
                allowed = min(allowed, max(0, due - issued))
            }
            if allowed == 0 { usleep(2_000); continue }
            for i in issued..<(issued + allowed) {
                let loop = group.loops[i % group.loops.count]
                loop.queue.async {
                    do {
                        self.clients[loop.index].append(try self.dialer.connect(on: loop, slot: i, delegate: self))
                    } catch {
                        self.failed[loop.index] += 1
                        if self.firstError == nil { self.firstError = "\(error)" }
                    }
                }
            }
            issued += allowed
        }
        while Date() < deadline, !Interrupt.requested {
            tick()
            let (o, f, _) = totals()
            if o + f >= issued { break }
            usleep(5_000)
        }
    }

    func closeAll() {
        for l in group.loops { l.queue.sync { for c in clients[l.index] { c.close() } } }
    }

    func clientOpened(_ client: WebSocketClient) { opened[client.connection.loop.index] += 1 }
    func client(_ client: WebSocketClient, text: UnsafeRawBufferPointer) {}
    func client(_ client: WebSocketClient, binary: UnsafeRawBufferPointer) {}
    func clientClosed(_ client: WebSocketClient, code: UInt16?, error: String?) {
        let i = client.connection.loop.index
        if client.state != .open, error != nil {
            failed[i] += 1
            if firstError == nil { firstError = error }
        }
    }
}

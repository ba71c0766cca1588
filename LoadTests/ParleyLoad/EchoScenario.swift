import Histogram
import Dispatch
import Foundation
import ParleyClient
import ParleyTransport

/// Closed-loop echo: every connection keeps `inflight` messages outstanding; each echo is timed
/// (the send time travels in the message as 16 hex digits) and answered with a new message.
final class EchoScenario: WebSocketClientDelegate {
    let dialer: Dialer
    let connections: Int
    let inflight: Int
    let size: Int
    let group: LoopGroup
    private var stats: [LoopStats]
    private var measuring: [Bool]
    private var clients: [[WebSocketClient]]

    init(dialer: Dialer, connections: Int, inflight: Int, size: Int, loops: Int) {
        self.dialer = dialer
        self.connections = connections
        self.inflight = inflight
        self.size = max(16, size)
        self.group = LoopGroup(count: loops)
        self.stats = group.loops.map { _ in LoopStats() }
        self.measuring = group.loops.map { _ in false }
        self.clients = group.loops.map { _ in [] }
    }

    /// Opens every connection; returns how many opened within the timeout.
    func connectAll(timeoutSeconds: Double) -> (opened: Int, failed: Int) {
        for i in 0..<connections {
            let loop = group.loops[i % group.loops.count]
            loop.queue.async {
                do {
                    let c = try self.dialer.connect(on: loop, slot: i, delegate: self)
                    self.clients[loop.index].append(c)
                } catch {
                    self.stats[loop.index].errors += 1
                    self.stats[loop.index].closed += 1
                }
            }
        }
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while Date() < deadline {
            let (o, f) = counts()
            if o + f >= connections { return (o, f) }
            usleep(20_000)
        }
        return counts()
    }

    private func counts() -> (Int, Int) {
        var o = 0, f = 0
        for l in group.loops { l.queue.sync { o += stats[l.index].opened; f += stats[l.index].closed } }
        return (o, f)
    }

    func setMeasuring(_ on: Bool) {
        for l in group.loops {
            l.queue.sync {
                measuring[l.index] = on
                if on { stats[l.index].reset() }
            }
        }
    }

    func collect() -> LoopStats {
        let total = LoopStats()
        for l in group.loops {
            l.queue.sync {
                total.histogram.add(stats[l.index].histogram)
                total.messages += stats[l.index].messages
                total.errors += stats[l.index].errors
            }
        }
        return total
    }

    /// Totals since the start and the latencies since the previous call (progress display).
    func sample() -> (total: UInt64, errors: UInt64, interval: Histogram<UInt64>) {
        var total: UInt64 = 0, errors: UInt64 = 0
        var h = latencyHistogram()
        for l in group.loops {
            l.queue.sync {
                total += stats[l.index].total
                errors += stats[l.index].errors
                h.add(stats[l.index].interval)
                stats[l.index].interval.reset()
            }
        }
        return (total, errors, h)
    }

    func closeAll() {
        for l in group.loops { l.queue.sync { for c in clients[l.index] { c.close() } } }
    }

    // MARK: messages

    @inline(__always)
    private func sendOne(_ c: WebSocketClient) {
        withUnsafeTemporaryAllocation(byteCount: size, alignment: 8) { buf in
            var t = monotonicNs()
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            for i in stride(from: 15, through: 0, by: -1) { buf[i] = hex[Int(t & 15)]; t >>= 4 }
            if size > 16 { for i in 16..<size { buf[i] = UInt8(ascii: "x") } }
            c.sendText(UnsafeRawBufferPointer(buf))
        }
    }

    func clientOpened(_ client: WebSocketClient) {
        let idx = client.connection.loop.index
        stats[idx].opened += 1
        for _ in 0..<inflight { sendOne(client) }
    }

    func client(_ client: WebSocketClient, text: UnsafeRawBufferPointer) {
        let now = monotonicNs()
        let idx = client.connection.loop.index
        if text.count >= 16 {
            var sent: UInt64 = 0
            for i in 0..<16 {
                let c = text[i]
                sent = sent << 4 | UInt64(c <= 57 ? c &- 48 : c &- 87)
            }
            let s = stats[idx]
            s.total += 1
            s.interval.recordClamped(now &- sent)
            if measuring[idx] {
                s.histogram.recordClamped(now &- sent)
                s.messages += 1
            }
        }
        sendOne(client)
    }

    func client(_ client: WebSocketClient, binary: UnsafeRawBufferPointer) {}

    func clientClosed(_ client: WebSocketClient, code: UInt16?, error: String?) {
        let idx = client.connection.loop.index
        stats[idx].closed += 1
        if error != nil { stats[idx].errors += 1 }
    }
}

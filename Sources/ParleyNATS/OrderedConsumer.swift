import Dispatch
import ParleyTransport

/// Reads a stream in order, from a sequence on, for as long as it runs: an ephemeral push consumer
/// (no acks, flow control, idle heartbeats) that is made again from the next sequence whenever
/// something may have been missed: a consumer sequence that skips, a heartbeat saying more was sent
/// than arrived, silence for three heartbeats, a reconnect (`reset()`), a failed create. So the
/// handler sees each stream sequence at most once, in ascending order, and none is skipped unless
/// the stream no longer has it. Loop-confined, like the client.
/// Loop-confined (`@unchecked Sendable`: its state is touched only on its loop's queue, which its
/// timers and callbacks hop onto first).
public final class OrderedConsumer: @unchecked Sendable {
    public let stream: String
    public let heartbeatMs: UInt64
    /// The next stream sequence wanted.
    public private(set) var next: UInt64
    /// How many times the consumer was made again.
    public private(set) var resets = 0

    private let js: JetStream
    private let handler: (UInt64, NATSMessage) -> Void
    private var generation = 0
    private var consumerSeq: UInt64 = 0
    private var consumerName: String?
    private var subscription: Int?
    private var lastHeardMs: UInt64 = 0
    private var running = false
    private let inboxRoot: String

    /// `handler` gets (stream sequence, message) for every stored message from `from` on.
    public init(js: JetStream, stream: String, from: UInt64, heartbeatMs: UInt64 = 1000, handler: @escaping (UInt64, NATSMessage) -> Void) {
        self.js = js
        self.stream = stream
        self.next = max(1, from)
        self.heartbeatMs = heartbeatMs
        self.handler = handler
        var g = SystemRandomNumberGenerator()
        inboxRoot = "_INBOX.oc\(String(g.next() as UInt64, radix: 36))"
    }

    var loop: Loop { js.client.loop }

    /// Starts consuming (call once the client is connected; on the client's loop).
    public func start() {
        guard !running else { return }
        running = true
        watch()
        reset()
    }

    public func stop() {
        running = false
        generation += 1
        drop()
    }

    /// Makes the consumer again from `next` (after a reconnect, or when the caller saw a gap).
    public func reset(from: UInt64? = nil) {
        guard running else { return }
        if let from { next = from }
        resets += 1
        generation += 1
        drop()
        let gen = generation
        let inbox = "\(inboxRoot).\(gen)"
        consumerSeq = 0
        lastHeardMs = monotonicMs()
        subscription = try? js.client.subscribe(inbox) { [weak self] m in
            guard let self, self.generation == gen else { return }
            self.received(m)
        }
        guard subscription != nil else { return }  // not connected: the watchdog tries again
        js.createOrderedConsumer(stream: stream, deliverSubject: inbox, startSeq: next, heartbeatMs: heartbeatMs) { [weak self] r in
            guard let self, self.generation == gen else { return }
            switch r {
            case .success(let name): self.consumerName = name
            case .failure: self.lastHeardMs = 0  // the watchdog makes it again at its next look
            }
        }
    }

    // MARK: internals

    private func drop() {
        if let s = subscription { js.client.unsubscribe(s) }
        subscription = nil
        if let name = consumerName { js.deleteConsumer(stream: stream, name: name) }
        consumerName = nil
    }

    private func received(_ m: NATSMessage) {
        lastHeardMs = monotonicMs()
        if let h = m.headers, h.status == 100 {
            // Flow control asks for an answer (on the message's reply subject, or for a stalled
            // consumer on the heartbeat's header); a heartbeat says how far the consumer got.
            if let r = m.replyTo { try? js.client.publish(r, payload: []) }
            if let r = h["Nats-Consumer-Stalled"] { try? js.client.publish(r, payload: []) }
            if let last = h["Nats-Last-Consumer"].flatMap({ UInt64($0) }), last > consumerSeq { reset() }
            return
        }
        guard let (sseq, cseq) = m.replyTo.flatMap(Self.sequences) else { return }
        guard cseq == consumerSeq + 1 else { return reset() }
        consumerSeq = cseq
        guard sseq >= next else { return }
        next = sseq + 1
        handler(sseq, m)
    }

    /// (stream sequence, consumer sequence) from a delivery's ack subject:
    /// `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`, or the form with
    /// domain and account hash in front (11 or 12 tokens).
    static func sequences(_ reply: String) -> (UInt64, UInt64)? {
        let t = reply.split(separator: ".", omittingEmptySubsequences: false)
        guard t.count >= 9, t[0] == "$JS", t[1] == "ACK" else { return nil }
        let at = t.count == 9 ? 5 : 7
        guard t.count > at + 1, let s = UInt64(t[at]), let c = UInt64(t[at + 1]) else { return nil }
        return (s, c)
    }

    private func watch() {
        loop.queue.asyncAfter(deadline: .now() + .milliseconds(Int(heartbeatMs))) { [weak self] in
            guard let self, self.running else { return }
            if monotonicMs() - self.lastHeardMs > 3 * self.heartbeatMs { self.reset() }
            self.watch()
        }
    }
}

import Foundation
import ParleyTransport

/// Who writes: a key in a JetStream KV bucket holding `{"node","until"}` (wall-clock ms), changed
/// only by revision-checked updates (`Nats-Expected-Last-Subject-Sequence`). The holder renews it
/// every quarter TTL; anyone may take it once `until` has passed; the holder gives it up on
/// shutdown by writing `until: 0`. The revision that won is the holder's term. A holder that
/// cannot renew within its TTL (counted from before it asked, on its own clock) considers it lost.
/// The lease only decides who tries to write: the chain rule keeps two writers from both counting.
/// Loop-confined.
/// Loop-confined (`@unchecked Sendable`: its state is touched only on its loop's queue, which its
/// timers and callbacks hop onto first).
public final class WriterLease: @unchecked Sendable {
    public let bucket: String
    public let key: String
    public let node: String
    public let ttlMs: UInt64
    public var stream: String { "KV_\(bucket)" }
    public var subject: String { "$KV.\(bucket).\(key)" }
    public private(set) var held = false
    public private(set) var term: UInt64 = 0

    private let js: JetStream
    private let onChange: (Bool, UInt64) -> Void
    private var revision: UInt64 = 0
    private var heldUntilMs: UInt64 = 0  // monotonic
    private var busy = false
    private var running = false

    /// `onChange(held, term)` runs when this node gains or loses the lease.
    public init(js: JetStream, bucket: String, key: String = "writer", node: String, ttlMs: UInt64, onChange: @escaping (Bool, UInt64) -> Void) {
        self.js = js
        self.bucket = bucket
        self.key = key
        self.node = node
        self.ttlMs = ttlMs
        self.onChange = onChange
    }

    /// Makes the bucket (or finds it) with `replicas`.
    public func createBucket(replicas: Int, reply: @escaping (Result<JetStream.StreamInfo, JetStream.Failure>) -> Void) {
        js.createStream(name: stream, subjects: ["$KV.\(bucket).>"], replicas: replicas,
                        extra: ["max_msgs_per_subject": 1, "allow_rollup_hdrs": true, "deny_delete": true, "duplicate_window": 2_000_000_000],
                        reply: reply)
    }

    public func start() {
        guard !running else { return }
        running = true
        step()
    }

    /// Gives the lease up (writes `until: 0` if held), then `done`.
    public func release(_ done: @escaping () -> Void) {
        running = false
        guard held else { return done() }
        put(untilMs: 0, expected: revision) { [weak self] _ in
            self?.lose()
            done()
        }
    }

    // MARK: internals

    static func wallMs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

    private func schedule() {
        guard running else { return }
        // Holder and contenders alike look every quarter TTL: a lapsed lease is taken within that.
        js.client.loop.queue.asyncAfter(deadline: .now() + .milliseconds(Int(max(50, ttlMs / 4)))) { [weak self] in self?.step() }
    }

    private func step() {
        guard running, !busy else { return schedule() }
        if held, monotonicMs() >= heldUntilMs { lose() }
        busy = true
        if held {
            let asked = monotonicMs()
            put(untilMs: Self.wallMs() + ttlMs, expected: revision) { [weak self] r in
                guard let self else { return }
                self.busy = false
                switch r {
                case .success(let rev):
                    self.revision = rev
                    self.heldUntilMs = asked + self.ttlMs
                case .failure(let f) where f.apiCode == JetStream.Failure.wrongLastSequence:
                    self.lose()  // someone took it
                case .failure:
                    break  // try again; lost once the TTL runs out
                }
                self.schedule()
            }
            return
        }
        js.lastMessage(stream: stream, subject: subject) { [weak self] r in
            guard let self else { return }
            var expected: UInt64? = nil
            switch r {
            case .success(let m):
                let v = Self.decode(m.payload)
                if v == nil || v!.until <= Self.wallMs() || v!.node == self.node { expected = m.seq }
            case .failure(let f) where f.apiCode == JetStream.Failure.messageNotFound:
                expected = 0
            case .failure:
                break
            }
            guard let expected, self.running else {
                self.busy = false
                return self.schedule()
            }
            let asked = monotonicMs()
            self.put(untilMs: Self.wallMs() + self.ttlMs, expected: expected) { [weak self] r in
                guard let self else { return }
                self.busy = false
                if case .success(let rev) = r, self.running {
                    self.revision = rev
                    self.heldUntilMs = asked + self.ttlMs
                    self.held = true
                    self.term = rev
                    self.onChange(true, rev)
                }
                self.schedule()
            }
        }
    }

    private func lose() {
        guard held else { return }
        held = false
        onChange(false, term)
    }

    private func put(untilMs: UInt64, expected: UInt64, _ done: @escaping (Result<UInt64, JetStream.Failure>) -> Void) {
        let body = Array(#"{"node":"\#(node)","until":\#(untilMs)}"#.utf8)
        js.publish(subject, payload: body, headers: [("Nats-Expected-Last-Subject-Sequence", String(expected))],
                   timeoutMs: max(200, ttlMs / 2)) { r in done(r.map(\.seq)) }
    }

    static func decode(_ p: [UInt8]) -> (node: String, until: UInt64)? {
        guard let o = (try? JSONSerialization.jsonObject(with: Data(p))) as? [String: Any],
              let node = o["node"] as? String, let until = JetStream.uint(o["until"]) else { return nil }
        return (node, until)
    }
}

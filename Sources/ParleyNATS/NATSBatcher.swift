import Foundation

/// Work for a NATS client's loop, handed over from any thread and run in batches: whatever was
/// queued while the loop was busy runs in one turn, its publishes written with one syscall (the
/// cluster's appends, forwarded requests and replies come many at a time from many queues).
public final class NATSBatcher: @unchecked Sendable {
    public let client: NATSClient
    private let lock = NSLock()
    private var work: [() -> Void] = []

    public init(client: NATSClient) { self.client = client }

    public func run(_ f: @escaping () -> Void) {
        lock.lock()
        let first = work.isEmpty
        work.append(f)
        lock.unlock()
        if first { client.loop.queue.async { [self] in drain() } }
    }

    private func drain() {
        lock.lock()
        let batch = work
        work = []
        lock.unlock()
        client.batch { for f in batch { f() } }
    }
}

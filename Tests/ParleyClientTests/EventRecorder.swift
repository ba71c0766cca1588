import Foundation
import ParleyClient

/// Everything a client reported, and a wait for the first event that matches (bounded: a test
/// that never sees what the protocol promised fails after `timeout` instead of hanging CI).
actor EventRecorder {
    private(set) var events: [ChatClientEvent] = []
    private var waiters: [Int: (match: @Sendable (ChatClientEvent) -> Bool, continuation: CheckedContinuation<ChatClientEvent, Error>)] = [:]
    private var nextWaiter = 0

    static func recording(_ client: ChatClient) async -> EventRecorder {
        let r = EventRecorder()
        let stream = await client.events()
        Task { for await e in stream { await r.add(e) } }
        return r
    }

    private func add(_ e: ChatClientEvent) {
        events.append(e)
        for (id, w) in waiters where w.match(e) {
            waiters[id] = nil
            w.continuation.resume(returning: e)
        }
    }

    struct Timeout: Error, CustomStringConvertible {
        var what: String
        var description: String { "timed out waiting for \(what)" }
    }

    /// The first event (already seen or still to come) that matches.
    @discardableResult
    func first(_ what: String, timeout: Double = 60, where match: @escaping @Sendable (ChatClientEvent) -> Bool) async throws -> ChatClientEvent {
        if let e = events.first(where: match) { return e }
        let id = nextWaiter
        nextWaiter += 1
        Task { [weak self] in
            try? await Task.sleep(nanoseconds: UInt64(timeout * 1e9))
            await self?.expire(id, what)
        }
        return try await withCheckedThrowingContinuation { waiters[id] = (match, $0) }
    }

    private func expire(_ id: Int, _ what: String) {
        waiters.removeValue(forKey: id)?.continuation.resume(throwing: Timeout(what: what))
    }
}

/// Runs `body`, failing with a timeout if it has not finished within `seconds`: a broken client
/// fails its test instead of hanging CI. (The body's task is cancelled and left to end.)
func within<T: Sendable>(_ what: String, seconds: Double = 60, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let once = Once<T>()
    let work = Task { await once.finish(await Result(catching: body)) }
    let timer = Task {
        try? await Task.sleep(nanoseconds: UInt64(seconds * 1e9))
        await once.finish(.failure(EventRecorder.Timeout(what: what)))
    }
    defer { work.cancel(); timer.cancel() }
    return try await once.value()
}

private actor Once<T: Sendable> {
    private var result: Result<T, Error>?
    private var waiter: CheckedContinuation<T, Error>?
    func finish(_ r: Result<T, Error>) {
        guard result == nil else { return }
        result = r
        waiter?.resume(with: r)
        waiter = nil
    }
    func value() async throws -> T {
        if let r = result { return try r.get() }
        return try await withCheckedThrowingContinuation { waiter = $0 }
    }
}

extension Result where Failure == Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

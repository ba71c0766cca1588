import Dispatch
import Foundation
import ParleyHTTP
import ParleyChat
import ParleyLog
import ParleyProtocol

/// Users' orders: written to the log, indexed in memory (user → order → placedAt and log offset),
/// rebuilt from the log on start. The order JSON itself stays in the log and is read on demand.
final class OrderStore: @unchecked Sendable {
    private struct Entry { var placedAtMs: Int64; var offset: UInt64 }
    private let lock = NSLock()
    private var byUser: [String: [String: Entry]] = [:]
    private let log: any EventStore
    /// Reading an order's JSON is a pread on the log: never on a connection loop.
    private let readers = DispatchQueue(label: "parley.orders.read", attributes: .concurrent)

    init(log: any EventStore) { self.log = log }

    /// Rebuilds the index from every order record in the log.
    func replay() -> Int {
        var next = log.firstOffset
        var n = 0
        while true {
            let batch = log.read(from: next, limit: 4096)
            guard let last = batch.last else { break }
            for r in batch where r.type == .order { if let o = OrderRecord.decode(r.payload) { apply(o, offset: r.offset); n += 1 } }
            next = last.offset + 1
        }
        return n
    }

    private func apply(_ o: OrderRecord, offset: UInt64) {
        lock.lock()
        byUser[o.userId, default: [:]][o.orderId] = Entry(placedAtMs: o.placedAtMs, offset: offset)
        lock.unlock()
    }

    /// The user's order with the latest placedAt (ties: the one written last).
    func last(userId: String) -> OrderRecord? {
        lock.lock()
        let best = byUser[userId]?.values.max { ($0.placedAtMs, $0.offset) < ($1.placedAtMs, $1.offset) }
        lock.unlock()
        return best.flatMap { log.read(offset: $0.offset) }.flatMap { OrderRecord.decode($0.payload) }
    }

    func order(userId: String, orderId: String) -> OrderRecord? {
        lock.lock()
        let e = byUser[userId]?[orderId]
        lock.unlock()
        return e.flatMap { log.read(offset: $0.offset) }.flatMap { OrderRecord.decode($0.payload) }
    }

    /// The order `conversation.open` asks for, read on the reader queue: the latest, a named one
    /// (not_found when the user has no such order), or none.
    func snapshot(userId: String, choice: OrderChoice, completion: @escaping @Sendable (Result<OrderSnapshot?, FrameError>) -> Void) {
        if case .none = choice { return completion(.success(nil)) }
        readers.async { [self] in
            switch choice {
            case .none: completion(.success(nil))
            case .last: completion(.success(last(userId: userId).map { OrderSnapshot(id: $0.orderId, json: $0.json) }))
            case .id(let id):
                guard let o = order(userId: userId, orderId: id) else {
                    return completion(.failure(FrameError(ref: nil, code: .notFound, message: "you have no order \(id)")))
                }
                completion(.success(OrderSnapshot(id: o.orderId, json: o.json)))
            }
        }
    }

    /// `GET /v1/users/{userId}/orders/last`, answered from the reader queue.
    func getLast(userId: String) -> HTTPServiceResult {
        .deferred { [self] reply in
            readers.async { [self] in
                guard let o = last(userId: userId) else {
                    return reply(.error(404, code: "not_found", message: "this user has no orders"))
                }
                reply(HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: o.json))
            }
        }
    }

    /// `PUT /v1/users/{userId}/orders/{orderId}`: 201 when new, 200 when replaced; answered once durable.
    func put(userId: String, orderId: String, body: [UInt8]) -> HTTPServiceResult {
        guard OrderValidation.validId(userId), OrderValidation.validId(orderId) else {
            return .respond(.error(400, code: "invalid_request", message: "user and order ids must be 1-128 bytes without spaces or control characters"))
        }
        if body.count > OrderValidation.maxOrderBytes {
            return .respond(.error(413, code: "too_large", message: "order larger than \(OrderValidation.maxOrderBytes) bytes"))
        }
        let rec: OrderRecord
        switch OrderValidation.validate(body: body, orderId: orderId) {
        case .failure(let why): return .respond(.error(400, code: "invalid_request", message: why.message))
        case .success(let v): rec = OrderRecord(userId: userId, orderId: orderId, placedAtMs: v.placedAtMs, json: v.json)
        }
        return .deferred { [self] reply in
            save(rec) { result in
                switch result {
                case .success(let existed):
                    reply(HTTPResponse(status: existed ? 200 : 201, headers: [("Content-Type", "application/json")], body: rec.json))
                case .failure(.noSpace):
                    reply(.error(503, code: "unavailable", message: "storage full: the order was not saved"))
                case .failure(.unavailable(let why)):
                    reply(.error(503, code: "unavailable", message: "the order was not saved (\(why)); retry"))
                case .failure(let e):
                    reply(.error(500, code: "internal", message: "the order was not saved: \(e)"))
                }
            }
        }
    }

    /// Stores a validated order here, or in cluster mode through the writer; `done` once durable.
    func save(_ rec: OrderRecord, _ done: @escaping @Sendable (Result<Bool, LogError>) -> Void) {
        if let forward { forward(rec, done) } else { store(rec, done) }
    }

    /// Cluster mode, on a node that does not write: hands the order to the writer and answers
    /// once this node has applied it. Nil: store here.
    var forward: ((OrderRecord, @escaping @Sendable (Result<Bool, LogError>) -> Void) -> Void)?

    /// Appends the order and indexes it; `done` says whether it replaced one (once durable).
    func store(_ rec: OrderRecord, _ done: @escaping (Result<Bool, LogError>) -> Void) {
        log.append([rec.record]) { [self] result in
            switch result {
            case .success(let offsets):
                lock.lock()
                let existed = byUser[rec.userId]?[rec.orderId] != nil
                byUser[rec.userId, default: [:]][rec.orderId] = Entry(placedAtMs: rec.placedAtMs, offset: offsets[0])
                lock.unlock()
                done(.success(existed))
            case .failure(let e):
                done(.failure(e))
            }
        }
    }

    /// Whether the user has this order (cluster mode: the writer says so to the node that asked).
    func has(userId: String, orderId: String) -> Bool {
        lock.lock(); defer { lock.unlock() }
        return byUser[userId]?[orderId] != nil
    }

    /// An order record another node appended (cluster mode), in log order.
    func applied(_ r: Record) {
        if let o = OrderRecord.decode(r.payload) { apply(o, offset: r.offset) }
    }
}

import Foundation
import Logging
import ParleyLog
@testable import ParleyNATS
import ParleyTransport
import XCTest

/// Two nodes on one real JetStream stream: one writes, the other applies what it wrote, in order;
/// the writer hands over on shutdown; a node restarted from its copy catches up from where it was.
final class ClusterLogTests: XCTestCase {
    static let group = LoopGroup(count: 2)
    let c1 = ConversationID(high: 9, low: 9)

    final class Applied: @unchecked Sendable {
        let lock = NSLock()
        var records: [Record] = []
        func add(_ r: Record) { lock.lock(); records.append(r); lock.unlock() }
        var count: Int { lock.lock(); defer { lock.unlock() }; return records.count }
    }

    func open(_ node: String, _ server: NATSServerProcess, dir: String, loop: Int) throws -> (ClusterLog, Applied) {
        var c = ClusterConfig(servers: [.init(host: "127.0.0.1", port: server.port)], node: node, cacheDirectory: dir + "/" + node)
        c.replicas = 1
        c.allowUnreplicated = true
        c.leaseTTLMs = 1000
        let log = try ClusterLog.open(c, loop: Self.group.loops[loop], logger: Logger(label: "test.\(node)"))
        let applied = Applied()
        log.onApplied = { applied.add($0) }
        log.resume()
        return (log, applied)
    }

    /// Polls a state no message announces, with a deadline far beyond what it needs.
    func eventually(_ what: String, _ cond: () -> Bool) {
        let deadline = Date().addingTimeInterval(30)
        while !cond() {
            if Date() > deadline { return XCTFail("never: \(what)") }
            usleep(10_000)
        }
    }

    func append(_ log: ClusterLog, _ r: Record) -> Result<[UInt64], LogError> {
        let done = DispatchSemaphore(value: 0)
        let box = Box()
        log.append([r]) { res in box.result = res; done.signal() }
        _ = done.wait(timeout: .now() + 30)
        return box.result
    }

    final class Box: @unchecked Sendable { var result: Result<[UInt64], LogError> = .failure(.closed) }

    func message(_ seq: UInt64) -> Record {
        Record(type: .message, timestampMs: 1000 + Int64(seq), conversation: c1, sequence: seq, key: Array("k\(seq)".utf8), payload: Array("m\(seq)".utf8))
    }

    func testOneWritesTheOtherAppliesAndTheLeaseMovesOnShutdown() throws {
        let server = try NATSServerProcess()
        defer { server.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-cluster-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var (a, aApplied) = try open("n1", server, dir: dir, loop: 0)
        eventually("n1 writes") { a.role == .writer }
        let (b, bApplied) = try open("n2", server, dir: dir, loop: 1)
        XCTAssertEqual(a.epoch, b.epoch, "one stream, one epoch")

        // 200 appends in flight at once: all land, in order, grouped into fewer stream messages.
        let done = DispatchGroup()
        let results = Applied()
        for s in 1...200 {
            done.enter()
            a.append([message(UInt64(s))]) { r in
                if case .success(let o) = r { results.add(Record(type: .message, offset: o[0], sequence: UInt64(s), payload: [])) }
                done.leave()
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 60), .success)
        XCTAssertEqual(results.count, 200)
        let bySeq = results.records.sorted { $0.sequence < $1.sequence }
        XCTAssertEqual(bySeq.map(\.offset), bySeq.map(\.offset).sorted(), "offsets in append order")
        for r in bySeq { XCTAssertEqual(a.read(offset: r.offset)?.sequence, r.sequence, "the acked offset holds the record") }
        XCTAssertLessThan(a.appliedSequence, 200, "appends made together share stream messages")
        XCTAssertEqual(aApplied.count, 0, "its own appends are not news to the writer")
        eventually("n2 applied 200") { bApplied.count == 200 }
        XCTAssertEqual(bApplied.records.map(\.sequence), Array(1...200), "in stream order")
        XCTAssertEqual(b.read(conversation: c1, afterSequence: 198, limit: 10).map(\.payload), [Array("m199".utf8), Array("m200".utf8)])
        XCTAssertEqual(b.lookup(conversation: c1, key: Array("k7".utf8))?.sequence, 7, "idempotency keys are found on every node")
        guard case .failure(.unavailable) = append(b, message(201)) else { return XCTFail("a follower must refuse appends") }
        // A stale sequence is refused by the book before it gets here; the chain rule fills it if
        // it does: the store never holds a conversation sequence twice.

        // n1 shuts down and gives the lease up: n2 takes over after applying everything.
        a.close()
        eventually("n2 writes") { b.role == .writer }
        guard case .success(let o) = append(b, message(201)) else { return XCTFail("the new writer appends") }
        XCTAssertEqual(b.read(offset: o[0])?.payload, Array("m201".utf8))

        // n1 comes back from its copy: it catches up with what n2 wrote and applies it.
        (a, aApplied) = try open("n1", server, dir: dir, loop: 0)
        XCTAssertEqual(a.durableOffset, b.durableOffset, "caught up before open returned: the same copy")
        XCTAssertEqual(a.read(offset: o[0])?.payload, Array("m201".utf8))
        guard case .success(let o2) = append(b, message(202)) else { return XCTFail("append") }
        XCTAssertGreaterThan(o2[0], o[0])
        eventually("n1 applies live") { aApplied.count == 1 }
        XCTAssertEqual(aApplied.records.first?.sequence, 202)
        a.close()
        b.close()
    }
}

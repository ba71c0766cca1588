import ParleyLog
@testable import ParleyNATS
import XCTest

/// The replicated log's decisions, driven the way JetStream can answer (in order, out of order,
/// refused, silent), checked by what a user would lose: nothing acknowledged may be missing,
/// doubled, or counted differently on two nodes.
final class ReplicaCoreTests: XCTestCase {
    let c1 = ConversationID(high: 1, low: 1)

    func message(_ seq: UInt64, _ text: String = "x") -> Record {
        Record(type: .message, timestampMs: 1, conversation: c1, sequence: seq, payload: Array(text.utf8))
    }

    func stored(_ out: [ReplicaCore.Output]) -> [String] {
        out.compactMap {
            switch $0 {
            case .store(let r, let seq, let origin): return "\(seq):\(r.type == .noop ? "noop" : "seq\(r.sequence)"):\(origin)"
            case .failed(let t): return "failed \(t)"
            default: return nil
            }
        }
    }

    /// A node that got the lease and caught up with an empty stream.
    func writer(_ node: String = "n1", term: UInt64 = 7) -> ReplicaCore {
        var core = ReplicaCore(node: node, applied: 0, lastValid: 0)
        XCTAssertEqual(core.leaseGained(term: term), [.role(.catchingUp), .queryEnd])
        XCTAssertEqual(core.end(0), [.role(.writer)])
        return core
    }

    func publishes(_ out: [ReplicaCore.Output]) -> [ReplicaCore.Append] {
        out.compactMap { if case .publish(let a) = $0 { return a } else { return nil } }
    }

    func testAFollowerKeepsTheChainAndFillsWhatBreaksIt() {
        var core = ReplicaCore(node: "n2", applied: 0, lastValid: 0)
        var out = core.consumed(seq: 1, .init(msgId: "a", after: 0, record: message(1)))
        out += core.consumed(seq: 2, .init(msgId: "b", after: 0, record: message(2)))  // decided without seeing 1
        out += core.consumed(seq: 3, .init(msgId: "c", after: 1, record: message(3)))  // skips seq 2 of c1
        out += core.consumed(seq: 4, .init(msgId: "d", after: 1, record: message(2)))
        out += core.consumed(seq: 5, .init(msgId: "e", after: 4, record: nil))  // not a record
        out += core.consumed(seq: 7, .init(msgId: "f", after: 5, record: message(3)))
        XCTAssertEqual(stored(out), ["1:seq1:foreign", "2:noop:filler", "3:noop:filler", "4:seq2:foreign", "5:noop:filler"])
        XCTAssertEqual(out.last, .resetConsumer(from: 6), "a skipped sequence makes the consumer again")
        XCTAssertEqual(core.lastValid, 4)
        XCTAssertEqual(core.append(token: 1, message(3)), [.failed(token: 1)], "a follower does not write")
    }

    func testPipelinedAppendsChainAndSettleInOrderWhateverOrderTheAcksComeIn() {
        var core = writer()
        let a = publishes(core.append(token: 1, message(1)) + core.append(token: 2, message(2)) + core.append(token: 3, message(3)))
        XCTAssertEqual(a.map(\.position), [1, 2, 3])
        XCTAssertEqual(a.map(\.after), [0, 1, 2])
        XCTAssertEqual(Set(a.map(\.msgId)).count, 3)
        XCTAssertTrue(a[0].msgId.hasPrefix("n1.7."))
        var out = core.pubAck(msgId: a[2].msgId, seq: 3)
        XCTAssertEqual(stored(out), [], "3 waits for 1 and 2")
        out = core.pubAck(msgId: a[0].msgId, seq: 1)
        out += core.consumed(seq: 2, .init(msgId: a[1].msgId, after: 1, record: a[1].record))  // the consumer was first for 2
        out += core.pubAck(msgId: a[1].msgId, seq: 2)
        XCTAssertEqual(stored(out), ["1:seq1:ours(1)", "2:seq2:ours(2)", "3:seq3:ours(3)"])
        XCTAssertEqual(stored(core.consumed(seq: 3, .init(msgId: a[2].msgId, after: 2, record: a[2].record))), [], "applied once")
        XCTAssertEqual(core.role, .writer)
        XCTAssertEqual(core.applied, 3)
    }

    /// A refusal in a pipeline: writing stops at once, and the stream decides each append that was
    /// in flight once every publish is answered: the first did land (its ack was lost), the later
    /// ones did not. Then writing resumes after what landed.
    func testAfterAFailureTheStreamDecidesWhatLanded() {
        var core = writer()
        let a = publishes(core.append(token: 1, message(1)) + core.append(token: 2, message(2)) + core.append(token: 3, message(3)))
        XCTAssertEqual(core.publishFailed(msgId: a[0].msgId), [.role(.suspended)], "no question before every publish is answered")
        XCTAssertEqual(core.append(token: 4, message(2)), [.failed(token: 4)], "new appends are refused while suspended")
        XCTAssertEqual(core.publishFailed(msgId: a[1].msgId), [])
        XCTAssertEqual(core.publishFailed(msgId: a[2].msgId), [.queryEnd])
        var out = core.consumed(seq: 1, .init(msgId: a[0].msgId, after: 0, record: a[0].record))
        out += core.end(1)
        XCTAssertEqual(stored(out), ["1:seq1:ours(1)", "failed 2", "failed 3"])
        XCTAssertEqual(out.last, .role(.writer))
        let b = publishes(core.append(token: 5, message(2)))
        XCTAssertEqual(b.map(\.position), [2])
        XCTAssertEqual(b.map(\.after), [1])
    }

    /// Two nodes both believe they write (a partition, a late lease): each sees the other's records
    /// in the stream. Whatever the interleaving, both count the same records, one chain, and each
    /// conversation sequence once.
    func testTwoWritersNeverBothCount() {
        var old = writer("n1", term: 1)
        var new = ReplicaCore(node: "n2", applied: 0, lastValid: 0)
        _ = new.leaseGained(term: 2)
        _ = new.end(0)
        let mine = publishes(old.append(token: 1, message(1, "old")) + old.append(token: 2, message(2, "old")))
        let theirs = publishes(new.append(token: 1, message(1, "new")))
        // The stream (had it no fence) took: old#1, new#1 (after 0), old#2 (after 1).
        let stream: [(String, UInt64, Record)] = [(mine[0].msgId, 0, mine[0].record), (theirs[0].msgId, 0, theirs[0].record), (mine[1].msgId, 1, mine[1].record)]
        var seenOld: [String] = [], seenNew: [String] = []
        for (i, m) in stream.enumerated() {
            seenOld += stored(old.consumed(seq: UInt64(i + 1), .init(msgId: m.0, after: m.1, record: m.2)))
            seenNew += stored(new.consumed(seq: UInt64(i + 1), .init(msgId: m.0, after: m.1, record: m.2)))
        }
        // The old writer gives up on its second append when a filler takes its place (with the
        // fence, JetStream refuses it); here it landed after all, valid: both nodes count it.
        XCTAssertEqual(seenOld, ["1:seq1:ours(1)", "2:noop:filler", "failed 2", "3:seq2:foreign"])
        XCTAssertEqual(seenNew, ["1:seq1:foreign", "failed 1", "2:noop:filler", "3:seq2:foreign"])
        XCTAssertEqual(old.lastValid, new.lastValid)
    }

    func testLosingTheLeaseStopsWritingAndSettles() {
        var core = writer()
        let a = publishes(core.append(token: 1, message(1)))
        XCTAssertEqual(core.leaseLost(), [.role(.suspended)])
        let out = core.pubAck(msgId: a[0].msgId, seq: 1)
        XCTAssertEqual(stored(out), ["1:seq1:ours(1)"], "what was in flight still lands")
        XCTAssertEqual(out.last, .queryEnd)
        XCTAssertEqual(core.tick(), [], "asked once")
        XCTAssertEqual(core.end(1), [.role(.follower)])
        XCTAssertEqual(core.applied, 1)
    }
}

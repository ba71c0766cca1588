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

    /// Each store as "streamSeq:[conversation seqs]:origin" (the marker left out, checked here:
    /// last, right after the records, naming the stream message).
    func stored(_ out: [ReplicaCore.Output], file: StaticString = #filePath, line: UInt = #line) -> [String] {
        out.compactMap {
            switch $0 {
            case .store(let records, let seq, let origin):
                let marker = records.last.flatMap(CopyMarker.read)
                XCTAssertEqual(marker?.streamSeq, seq, "a stream message's copy ends with its marker", file: file, line: line)
                let offsets = records.map(\.offset)
                XCTAssertEqual(offsets, offsets.first.map { Array($0..<($0 + UInt64(records.count))) }, "at the next offsets", file: file, line: line)
                return "\(seq):\(records.dropLast().map { "\($0.sequence)" }.joined(separator: ",")):\(origin)"
            case .failed(let t): return "failed \(t)"
            default: return nil
            }
        }
    }

    func copyOffsets(_ out: [ReplicaCore.Output]) -> [[UInt64]] {
        out.compactMap { if case .store(let r, _, _) = $0 { return r.map(\.offset) } else { return nil } }
    }

    /// A node that got the lease and caught up with an empty stream.
    func writer(_ node: String = "n1", term: UInt64 = 7) -> ReplicaCore {
        var core = ReplicaCore(node: node, applied: 0, lastValid: 0, copyTip: 0)
        XCTAssertEqual(core.leaseGained(term: term), [.role(.catchingUp), .queryEnd])
        XCTAssertEqual(core.end(0), [.role(.writer)])
        return core
    }

    func publishes(_ out: [ReplicaCore.Output]) -> [ReplicaCore.Append] {
        out.compactMap { if case .publish(let a) = $0 { return a } else { return nil } }
    }

    /// Appends each in its own flush: one stream message each.
    func each(_ core: inout ReplicaCore, _ records: [(UInt64, Record)]) -> [ReplicaCore.Append] {
        records.flatMap { t, r in publishes(core.append(token: t, r) + core.flush()) }
    }

    func consumed(_ seq: UInt64, _ id: String, after: UInt64, _ records: [Record]?) -> ReplicaCore.Consumed {
        .init(msgId: id, after: after, records: records)
    }

    func testAFollowerKeepsTheChainAndFillsWhatBreaksIt() {
        var core = ReplicaCore(node: "n2", applied: 0, lastValid: 0, copyTip: 0)
        var out = core.consumed(seq: 1, consumed(1, "a", after: 0, [message(1)]))
        out += core.consumed(seq: 2, consumed(2, "b", after: 0, [message(2)]))  // decided without seeing 1
        out += core.consumed(seq: 3, consumed(3, "c", after: 1, [message(3)]))  // skips seq 2 of c1
        out += core.consumed(seq: 4, consumed(4, "d", after: 1, [message(2), message(3)]))
        out += core.consumed(seq: 5, consumed(5, "e", after: 4, nil))  // not records
        out += core.consumed(seq: 6, consumed(6, "f", after: 4, [message(4), message(6)]))  // one misfit spoils the message
        out += core.consumed(seq: 8, consumed(8, "g", after: 4, [message(4)]))
        XCTAssertEqual(stored(out), ["1:1:foreign", "2::filler", "3::filler", "4:2,3:foreign", "5::filler", "6::filler"])
        XCTAssertEqual(copyOffsets(out), [[1, 2], [3], [4], [5, 6, 7], [8], [9]], "deterministic: the same on every node")
        XCTAssertEqual(out.last, .resetConsumer(from: 7), "a skipped sequence makes the consumer again")
        XCTAssertEqual(core.lastValid, 4)
        XCTAssertEqual(core.copyTip, 9)
        XCTAssertEqual(core.append(token: 1, message(4)), [.failed(token: 1)], "a follower does not write")
    }

    func testAppendsMadeTogetherGoOutAsOneStreamMessage() {
        var core = writer()
        XCTAssertEqual(core.append(token: 1, message(1)) + core.append(token: 2, message(2)) + core.append(token: 3, message(3)), [],
                       "nothing goes out before the flush")
        let a = publishes(core.flush())
        XCTAssertEqual(a.count, 1)
        XCTAssertEqual(a[0].tokens, [1, 2, 3])
        XCTAssertEqual(a[0].records.map(\.sequence), [1, 2, 3])
        XCTAssertEqual(a[0].position, 1)
        XCTAssertEqual(a[0].after, 0)
        let out = core.pubAck(msgId: a[0].msgId, seq: 1)
        XCTAssertEqual(stored(out), ["1:1,2,3:ours([1, 2, 3])"])
        XCTAssertEqual(copyOffsets(out), [[1, 2, 3, 4]])
        XCTAssertEqual(core.copyTip, 4)
        XCTAssertEqual(core.lastValid, 1)
    }

    func testPipelinedMessagesChainAndSettleInOrderWhateverOrderTheAcksComeIn() {
        var core = writer()
        let a = each(&core, [(1, message(1)), (2, message(2)), (3, message(3))])
        XCTAssertEqual(a.map(\.position), [1, 2, 3])
        XCTAssertEqual(a.map(\.after), [0, 1, 2])
        XCTAssertEqual(Set(a.map(\.msgId)).count, 3)
        XCTAssertTrue(a[0].msgId.hasPrefix("n1.7."))
        var out = core.pubAck(msgId: a[2].msgId, seq: 3)
        XCTAssertEqual(stored(out), [], "3 waits for 1 and 2")
        out = core.pubAck(msgId: a[0].msgId, seq: 1)
        out += core.consumed(seq: 2, consumed(2, a[1].msgId, after: 1, a[1].records))  // the consumer was first for 2
        out += core.pubAck(msgId: a[1].msgId, seq: 2)
        XCTAssertEqual(stored(out), ["1:1:ours([1])", "2:2:ours([2])", "3:3:ours([3])"])
        XCTAssertEqual(copyOffsets(out), [[1, 2], [3, 4], [5, 6]])
        XCTAssertEqual(stored(core.consumed(seq: 3, consumed(3, a[2].msgId, after: 2, a[2].records))), [], "applied once")
        XCTAssertEqual(core.role, .writer)
        XCTAssertEqual(core.applied, 3)
    }

    /// At most `maxInflight` messages in flight: what comes meanwhile waits, and goes out as one
    /// message when a slot frees.
    func testWhileTheWindowIsFullAppendsWaitAndThenGoTogether() {
        var core = writer()
        let n = ReplicaCore.Batching.maxInflight
        let a = each(&core, (1...n).map { (UInt64($0), message(UInt64($0))) })
        XCTAssertEqual(a.count, n)
        for s in (n + 1)...(n + 10) { XCTAssertEqual(core.append(token: UInt64(s), message(UInt64(s))), []) }
        XCTAssertEqual(core.flush(), [], "the window is full")
        XCTAssertEqual(core.pending.count, 10)
        let out = core.pubAck(msgId: a[0].msgId, seq: 1)
        XCTAssertEqual(stored(out), ["1:1:ours([1])"])
        let next = publishes(out)
        XCTAssertEqual(next.map(\.records.count), [10])
        XCTAssertEqual(next.map(\.position), [UInt64(n + 1)])
        XCTAssertEqual(next.map(\.after), [UInt64(n)])
    }

    func testWhatWaitsForASlotIsBounded() {
        var core = writer()
        _ = each(&core, (1...ReplicaCore.Batching.maxInflight).map { (UInt64($0), message(UInt64($0))) })
        let first = UInt64(ReplicaCore.Batching.maxInflight + 1)
        for t in first..<(first + UInt64(ReplicaCore.Batching.maxPending)) { XCTAssertEqual(core.append(token: t, message(t)), []) }
        XCTAssertEqual(core.append(token: 99_999, message(1)), [.failed(token: 99_999)], "refused at once, not queued")
        XCTAssertEqual(core.pending.count, ReplicaCore.Batching.maxPending)
    }

    func testAMessageHoldsAtMostItsLimitOfRecords() {
        var core = writer()
        let max = ReplicaCore.Batching.maxRecords
        for s in 1...(max + 44) { _ = core.append(token: UInt64(s), message(UInt64(s))) }
        let a = publishes(core.flush())
        XCTAssertEqual(a.map(\.records.count), [max, 44])
        XCTAssertEqual(a.map(\.after), [0, 1])
        let big = Record(type: .message, timestampMs: 1, conversation: c1, sequence: 1, payload: [UInt8](repeating: 1, count: ReplicaCore.Batching.maxBytes / 3))
        var core2 = writer()
        for s in 1...4 { _ = core2.append(token: UInt64(s), big) }
        XCTAssertEqual(publishes(core2.flush()).map(\.records.count), [2, 2], "and at most its limit of bytes")
    }

    /// The chat layer numbered a record wrongly (it never should): the whole stream message is
    /// filler on every node, and each of its appends fails rather than half of it counting.
    func testAMisfitRecordFailsItsWholeMessage() {
        var core = writer()
        _ = core.append(token: 1, message(1))
        _ = core.append(token: 2, message(3))
        let a = publishes(core.flush())
        let out = core.pubAck(msgId: a[0].msgId, seq: 1)
        XCTAssertEqual(stored(out), ["1::filler", "failed 1", "failed 2"])
        XCTAssertEqual(core.role, .suspended)
        XCTAssertEqual(core.lastValid, 0)
    }

    /// A refusal in a pipeline: writing stops at once, and the stream decides each append that was
    /// in flight once every publish is answered: the first did land (its ack was lost), the later
    /// ones did not. Then writing resumes after what landed.
    func testAfterAFailureTheStreamDecidesWhatLanded() {
        var core = writer()
        let a = each(&core, [(1, message(1)), (2, message(2)), (3, message(3))])
        _ = core.append(token: 9, message(4))  // pending when the refusal comes
        XCTAssertEqual(core.publishFailed(msgId: a[0].msgId), [.failed(token: 9), .role(.suspended)],
                       "what waits fails at once; no question before every publish is answered")
        XCTAssertEqual(core.append(token: 4, message(2)), [.failed(token: 4)], "new appends are refused while suspended")
        XCTAssertEqual(core.publishFailed(msgId: a[1].msgId), [])
        XCTAssertEqual(core.publishFailed(msgId: a[2].msgId), [.queryEnd])
        var out = core.consumed(seq: 1, consumed(1, a[0].msgId, after: 0, a[0].records))
        out += core.end(1)
        XCTAssertEqual(stored(out), ["1:1:ours([1])", "failed 2", "failed 3"])
        XCTAssertEqual(out.last, .role(.writer))
        let b = each(&core, [(5, message(2))])
        XCTAssertEqual(b.map(\.position), [2])
        XCTAssertEqual(b.map(\.after), [1])
    }

    /// Two nodes both believe they write (a partition, a late lease): each sees the other's records
    /// in the stream. Whatever the interleaving, both count the same records, one chain, and each
    /// conversation sequence once.
    func testTwoWritersNeverBothCount() {
        var old = writer("n1", term: 1)
        var new = ReplicaCore(node: "n2", applied: 0, lastValid: 0, copyTip: 0)
        _ = new.leaseGained(term: 2)
        _ = new.end(0)
        let mine = each(&old, [(1, message(1, "old")), (2, message(2, "old"))])
        let theirs = each(&new, [(1, message(1, "new"))])
        // The stream (had it no fence) took: old#1, new#1 (after 0), old#2 (after 1).
        let stream: [(String, UInt64, [Record])] = [(mine[0].msgId, 0, mine[0].records), (theirs[0].msgId, 0, theirs[0].records), (mine[1].msgId, 1, mine[1].records)]
        var seenOld: [ReplicaCore.Output] = [], seenNew: [ReplicaCore.Output] = []
        for (i, m) in stream.enumerated() {
            seenOld += old.consumed(seq: UInt64(i + 1), consumed(UInt64(i + 1), m.0, after: m.1, m.2))
            seenNew += new.consumed(seq: UInt64(i + 1), consumed(UInt64(i + 1), m.0, after: m.1, m.2))
        }
        // The old writer gives up on its second append when a filler takes its place (with the
        // fence, JetStream refuses it); here it landed after all, valid: both nodes count it.
        XCTAssertEqual(stored(seenOld), ["1:1:ours([1])", "2::filler", "failed 2", "3:2:foreign"])
        XCTAssertEqual(stored(seenNew), ["1:1:foreign", "failed 1", "2::filler", "3:2:foreign"])
        XCTAssertEqual(copyOffsets(seenOld), copyOffsets(seenNew), "the same copy on both")
        XCTAssertEqual(old.lastValid, new.lastValid)
    }

    func testLosingTheLeaseStopsWritingAndSettles() {
        var core = writer()
        let a = each(&core, [(1, message(1))])
        _ = core.append(token: 2, message(2))
        XCTAssertEqual(core.leaseLost(), [.failed(token: 2), .role(.suspended)], "what has not gone out fails at once")
        let out = core.pubAck(msgId: a[0].msgId, seq: 1)
        XCTAssertEqual(stored(out), ["1:1:ours([1])"], "what was in flight still lands")
        XCTAssertEqual(out.last, .queryEnd)
        XCTAssertEqual(core.tick(), [], "asked once")
        XCTAssertEqual(core.end(1), [.role(.follower)])
        XCTAssertEqual(core.applied, 1)
    }

    /// A restarted node resumes from its copy's last marker: the same chain as if it had not stopped.
    func testACopyResumesFromItsLastMarker() {
        var core = ReplicaCore(node: "n2", applied: 0, lastValid: 0, copyTip: 0)
        var out = core.consumed(seq: 1, consumed(1, "a", after: 0, [message(1), message(2)]))
        out += core.consumed(seq: 2, consumed(2, "b", after: 0, [message(3)]))
        guard case .store(let records, _, _)? = out.last, let m = records.last.flatMap(CopyMarker.read) else { return XCTFail("no marker") }
        XCTAssertEqual(m.streamSeq, 2)
        XCTAssertEqual(m.lastValid, 1)
        XCTAssertNil(CopyMarker.read(Record(type: .noop, offset: 1, payload: [])), "a plain no-op is not a marker")
        var again = ReplicaCore(node: "n2", applied: m.streamSeq, lastValid: m.lastValid, copyTip: records.last!.offset, knownSequence: { _ in 2 })
        XCTAssertEqual(stored(again.consumed(seq: 3, consumed(3, "c", after: 1, [message(3)]))), ["3:3:foreign"])
        XCTAssertEqual(again.copyTip, 6)
    }
}

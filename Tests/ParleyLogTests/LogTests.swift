import Dispatch
import Foundation
import XCTest
@testable import ParleyLog

final class LogTests: XCTestCase {
    func testAppendReadAndRestartRebuildsState() throws {
        let dir = TestDir.make()
        let a = ConversationID(high: 1, low: 1), b = ConversationID(high: 2, low: 2)
        var c = LogConfig(directory: dir)
        c.segmentBytes = 4096  // several segments
        do {
            let (log, report) = try Log.open(c)
            XCTAssertEqual(report.records, 0)
            for i in 1...100 {
                let offs = try log.appendAndWait([sampleRecord(i, conversation: i % 2 == 0 ? a : b, sequence: UInt64((i + 1) / 2))])
                XCTAssertEqual(offs, [UInt64(i)], "dense offsets from 1")
            }
            XCTAssertEqual(log.durableOffset, 100)
            log.close()
        }
        let (log, report) = try Log.open(c)
        defer { log.close() }
        XCTAssertEqual(report.records, 100)
        XCTAssertEqual(report.lastOffset, 100)
        XCTAssertGreaterThanOrEqual(report.segments, 3)
        XCTAssertEqual(log.read(from: 1, limit: .max).map(\.offset), Array(1...100))
        XCTAssertEqual(log.read(offset: 77)?.payload, sampleRecord(77).payload)
        XCTAssertEqual(log.lastSequence(of: a), 50)
        XCTAssertEqual(log.read(conversation: a, afterSequence: 45, limit: 10).map(\.sequence), [46, 47, 48, 49, 50])
        XCTAssertEqual(log.read(conversation: b, afterSequence: 0, limit: 3).map(\.offset), [1, 3, 5])
        XCTAssertEqual(log.lookup(conversation: a, key: Array("key-10".utf8))?.offset, 10)
        XCTAssertNil(log.lookup(conversation: b, key: Array("key-10".utf8)))
        // Appending continues after the last offset.
        XCTAssertEqual(try log.appendAndWait([sampleRecord(101, conversation: b, sequence: 51)]), [101])
        // Sealed segments have a sparse index file.
        XCTAssertFalse(((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".idx") }.isEmpty)
    }

    func testTornTailCutAtEveryByteOfTheLastRecordRecoversToTheRecordsBefore() throws {
        let dir = try writeLog(TestDir.make(), (1...5).map { sampleRecord($0) })
        let seg = TestDir.segments(dir)[0]
        let full = Data(file: seg)
        let lastSize = RecordCodec.encodedSize(sampleRecord(5))
        for cut in (full.count - lastSize)..<full.count {
            let copy = TestDir.copy(dir)
            try full.prefix(cut).write(to: URL(fileURLWithPath: TestDir.segments(copy)[0]))
            let (records, report) = try readAll(copy)
            XCTAssertEqual(records.map(\.offset), [1, 2, 3, 4], "cut at \(cut)")
            XCTAssertEqual(report.tornTailBytes, Int64(cut - (full.count - lastSize)), "cut at \(cut)")
            // And the log takes appends again at offset 5.
            XCTAssertEqual(try writeAndReturnOffset(copy), 5)
            try? FileManager.default.removeItem(atPath: copy)
        }
    }

    func testGarbageTailIsTruncatedToo() throws {
        let dir = try writeLog(TestDir.make(), (1...3).map { sampleRecord($0) })
        let h = FileHandle(forWritingAtPath: TestDir.segments(dir)[0])!
        h.seekToEndOfFile()
        h.write(Data((0..<200).map { UInt8(truncatingIfNeeded: $0 &* 37) }))
        h.closeFile()
        let (records, report) = try readAll(dir)
        XCTAssertEqual(records.count, 3)
        XCTAssertEqual(report.tornTailBytes, 200)
    }

    func testCorruptionInTheMiddleRefusesToOpenNamingFileAndOffset() throws {
        let dir = try writeLog(TestDir.make(), (1...5).map { sampleRecord($0) })
        let seg = TestDir.segments(dir)[0]
        var bytes = Data(file: seg)
        let second = 32 + RecordCodec.encodedSize(sampleRecord(1))
        bytes[second + 70] ^= 0x01  // a payload byte of record 2
        try bytes.write(to: URL(fileURLWithPath: seg))
        XCTAssertThrowsError(try readAll(dir)) { e in
            XCTAssertEqual(e as? LogError, .corrupt(file: seg, position: Int64(second), reason: "checksum mismatch"))
        }
        // Repair keeps every valid record and reports what it dropped.
        let (records, report) = try readAll(dir, repair: true)
        XCTAssertEqual(records.map(\.offset), [1, 3, 4, 5])
        XCTAssertEqual(report.dropped.count, 1)
        XCTAssertEqual(report.dropped.first?.position, Int64(second))
        // Afterwards it opens normally (with the gap reported) and appends after 5.
        let (again, r2) = try readAll(dir)
        XCTAssertEqual(again.count, 4)
        XCTAssertEqual(r2.offsetGaps, 1)
    }

    func testAnyBadRecordInASealedSegmentIsCorruption() throws {
        let dir = try writeLog(TestDir.make(), (1...40).map { sampleRecord($0) }, segmentBytes: 1024)
        let segs = TestDir.segments(dir)
        XCTAssertGreaterThan(segs.count, 2)
        // Cut the end off a sealed segment: not a torn tail, since later segments exist.
        let first = Data(file: segs[0])
        try first.prefix(first.count - 5).write(to: URL(fileURLWithPath: segs[0]))
        XCTAssertThrowsError(try readAll(dir)) { e in
            guard case .corrupt(let file, _, _) = e as? LogError else { return XCTFail("\(e)") }
            XCTAssertEqual(file, segs[0])
        }
    }

    func testBadSegmentHeaderIsRefused() throws {
        let dir = try writeLog(TestDir.make(), (1...3).map { sampleRecord($0) })
        let seg = TestDir.segments(dir)[0]
        var bytes = Data(file: seg)
        bytes[0] = UInt8(ascii: "X")
        try bytes.write(to: URL(fileURLWithPath: seg))
        XCTAssertThrowsError(try readAll(dir)) { e in XCTAssertEqual(e as? LogError, .badSegmentHeader(file: seg, reason: "bad magic")) }
    }

    func testBadSparseIndexIsRebuilt() throws {
        let dir = try writeLog(TestDir.make(), (1...40).map { sampleRecord($0) }, segmentBytes: 1024)
        let idx = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasSuffix(".idx") }.sorted()
        XCTAssertFalse(idx.isEmpty)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir + "/" + idx[0]))
        let (records, report) = try readAll(dir)
        XCTAssertEqual(records.count, 40)
        XCTAssertEqual(report.indexesRebuilt, 1)
        XCTAssertGreaterThan(Data(file: dir + "/" + idx[0]).count, 3)
    }

    func testConcurrentAppendersAreGroupCommittedInOrder() throws {
        let dir = TestDir.make()
        let (log, _) = try Log.open(LogConfig(directory: dir))
        // Hold the writer thread inside the first append's completion (completions run there), so
        // everything 16 concurrent appenders queue meanwhile is waiting when it is free again:
        // that must go out as one batch (one write, one fdatasync), each appender's records in its
        // own order. No timing: the gate decides when the writer moves.
        let inCompletion = DispatchSemaphore(value: 0), gate = DispatchSemaphore(value: 0)
        log.append([sampleRecord(0, conversation: ConversationID(high: 99, low: 0), sequence: 1)]) { _ in
            inCompletion.signal()
            gate.wait()
        }
        inCompletion.wait()
        let queued = DispatchGroup(), durable = DispatchGroup()
        let lock = NSLock()
        var acked: [UInt64] = []
        for w in 0..<16 {
            queued.enter()
            DispatchQueue.global().async {
                for i in 0..<50 {
                    durable.enter()
                    log.append([sampleRecord(w * 100 + i, conversation: ConversationID(high: UInt64(w + 1), low: 0), sequence: UInt64(i + 1))]) { r in
                        lock.lock(); acked += (try? r.get()) ?? []; lock.unlock()
                        durable.leave()
                    }
                }
                queued.leave()
            }
        }
        queued.wait()
        gate.signal()
        durable.wait()
        XCTAssertEqual(acked.sorted(), Array(2...801))
        XCTAssertEqual(log.statistics.batches, 2, "the first append, then the 800 queued while the writer was busy in one batch")
        log.close()
        let (records, _) = try readAll(dir)
        XCTAssertEqual(records.map(\.offset), Array(1...801))
        for w in 0..<16 {  // each writer's records are in its own order
            let mine = records.filter { $0.conversation.high == UInt64(w + 1) }.map(\.sequence)
            XCTAssertEqual(mine, Array(1...50))
        }
    }

    func testSubscriptionDeliversHistoryThenLiveWithNoGapOrRepeat() throws {
        let dir = TestDir.make()
        let (log, _) = try Log.open(LogConfig(directory: dir))
        defer { log.close() }
        for i in 1...30 { try log.appendAndWait([sampleRecord(i)]) }
        let q = DispatchQueue(label: "sub")
        var seen: [UInt64] = []
        let done = DispatchSemaphore(value: 0)
        let sub = log.subscribe(from: 11, queue: q) { batch in
            seen += batch.map(\.offset)
            if seen.last == 130 { done.signal() }
        }
        DispatchQueue.global().async { for i in 31...130 { try! log.appendAndWait([sampleRecord(i)]) } }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        q.sync { XCTAssertEqual(seen, Array(11...130)) }
        sub.cancel()
    }

    func testRecordsOverTheLimitsAreRefusedAtAppend() throws {
        let (log, _) = try Log.open(LogConfig(directory: TestDir.make()))
        defer { log.close() }
        XCTAssertThrowsError(try log.appendAndWait([Record(type: .message, key: [UInt8](repeating: 0, count: 65))])) { e in
            XCTAssertEqual(e as? LogError, .keyTooLong(65))
        }
        XCTAssertEqual(log.durableOffset, 0)
    }

    /// A log in `dir` of `records` records stamped long ago, in 1 KiB segments; returns the
    /// configuration that reopens it with a retention of one minute.
    private func logOfOldRecords(_ dir: String, _ records: Int) throws -> LogConfig {
        var c = LogConfig(directory: dir)
        c.segmentBytes = 1024
        let (log, _) = try Log.open(c)
        for i in 1...records { try log.appendAndWait([Record(type: .message, timestampMs: 1_000, payload: Array("old \(i)".utf8))]) }
        log.close()
        c.retentionMs = 60_000
        return c
    }

    func testRetentionDeletesWholeOldSealedSegments() throws {
        let dir = TestDir.make()
        let c = try logOfOldRecords(dir, 40)
        let before = TestDir.segments(dir).count
        let (log2, _) = try Log.open(c)
        try log2.appendAndWait([Record(type: .message, payload: Array("new".utf8))])
        log2.close()  // retention runs on the writer thread after a batch's acks: wait for it
        XCTAssertLessThan(TestDir.segments(dir).count, before)
        let (log3, _) = try Log.open(LogConfig(directory: dir))
        XCTAssertGreaterThan(log3.firstOffset, 1)
        XCTAssertEqual(log3.read(from: log3.firstOffset, limit: .max).last?.payload, Array("new".utf8))
        log3.close()
    }

    /// Deleted segments give their descriptors back at once (they count against the same limit
    /// as connections), and reads go on across the retention.
    func testRetentionClosesTheDescriptorsOfDeletedSegments() throws {
        let dir = TestDir.make()
        let (log, _) = try Log.open(try logOfOldRecords(dir, 120))
        defer { log.close() }
        func openOnDeletedFiles() -> Int {
            let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
            return fds.filter { fd in
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(fd)") else { return false }
                return target.hasPrefix(dir) && target.hasSuffix("(deleted)")
            }.count
        }
        let segmentsBefore = TestDir.segments(dir).count
        XCTAssertGreaterThan(segmentsBefore, 5)
        // Retention runs on the writer thread after a batch's acks; the next append's ack comes after it.
        try log.appendAndWait([Record(type: .message, payload: Array("new 1".utf8))])
        try log.appendAndWait([Record(type: .message, payload: Array("new 2".utf8))])
        XCTAssertLessThan(TestDir.segments(dir).count, segmentsBefore, "old segments deleted")
        XCTAssertEqual(openOnDeletedFiles(), 0, "no descriptor kept for a deleted segment")
        XCTAssertEqual(log.read(from: log.firstOffset, limit: .max).suffix(2).map(\.payload), [Array("new 1".utf8), Array("new 2".utf8)])
    }

    func testSequencesStayGaplessPerConversation() throws {
        let dir = TestDir.make()
        let conv = ConversationID(high: 9, low: 9)
        func rec(_ seq: UInt64) -> Record { Record(type: .message, conversation: conv, sequence: seq, payload: Array("s\(seq)".utf8)) }
        do {
            let (log, _) = try Log.open(LogConfig(directory: dir))
            XCTAssertEqual(try log.appendAndWait([rec(1), rec(2)]), [1, 2])
            XCTAssertThrowsError(try log.appendAndWait([rec(4)])) { e in
                XCTAssertEqual(e as? LogError, .sequenceConflict(expected: 3, got: 4))
            }
            // All or nothing: a good record beside a bad one is refused with it.
            XCTAssertThrowsError(try log.appendAndWait([rec(3), rec(5)]))
            XCTAssertEqual(log.durableOffset, 2)
            XCTAssertThrowsError(try log.appendAndWait([rec(2)]), "a repeated sequence is refused too")
            XCTAssertEqual(try log.appendAndWait([rec(3)]), [3])
            // Concurrent appends in one batch are checked against each other.
            let group = DispatchGroup()
            var results: [Result<[UInt64], LogError>] = []
            let lock = NSLock()
            for seq in [4, 5, 5] as [UInt64] {
                group.enter()
                log.append([rec(seq)]) { r in lock.lock(); results.append(r); lock.unlock(); group.leave() }
            }
            group.wait()
            XCTAssertEqual(results.filter { if case .success = $0 { return true }; return false }.count, 2)
            XCTAssertEqual(log.lastSequence(of: conv), 5)
            log.close()
        }
        // After a restart the next sequence is still enforced.
        let (log, _) = try Log.open(LogConfig(directory: dir))
        defer { log.close() }
        XCTAssertThrowsError(try log.appendAndWait([rec(7)]))
        XCTAssertEqual(try log.appendAndWait([rec(6)]).count, 1)
        XCTAssertEqual(log.read(conversation: conv, afterSequence: 0, limit: 10).map(\.sequence), [1, 2, 3, 4, 5, 6])
    }

    private func writeAndReturnOffset(_ dir: String) throws -> UInt64 {
        let (log, _) = try Log.open(LogConfig(directory: dir))
        defer { log.close() }
        return try log.appendAndWait([sampleRecord(5)])[0]  // the conversation's next sequence
    }
}

import Dispatch
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

public enum FsyncMode: Sendable, Equatable {
    /// Every batch is fdatasync'ed before its appends complete (the default; acks mean durable).
    case always
    /// fdatasync at most every `ms`; appends complete after write(2). For comparisons only.
    case interval(ms: Int)
}

public struct LogConfig: Sendable {
    public var directory: String
    /// A segment is sealed and a new one started once it passes this size (at a batch boundary).
    public var segmentBytes: Int64 = 64 << 20
    public var fsync: FsyncMode = .always
    /// Open a log with corruption anyway: keep every valid record, drop the bad bytes, report them.
    public var repair = false
    /// Whole sealed segments whose newest record is older than this are deleted (nil: keep all).
    public var retentionMs: Int64? = nil
    /// Called on the writer thread after each durable batch: (records, bytes, fdatasync nanoseconds).
    public var onBatch: (@Sendable (Int, Int, UInt64) -> Void)? = nil
    public init(directory: String) { self.directory = directory }
}

/// What opening the log found.
public struct RecoveryReport: Sendable, CustomStringConvertible {
    public var records = 0
    public var firstOffset: UInt64 = 0
    public var lastOffset: UInt64 = 0
    public var segments = 0
    public var bytes: Int64 = 0
    public var tornTailBytes: Int64 = 0
    public var offsetGaps = 0
    public var indexesRebuilt = 0
    /// (file, position, bytes) dropped by `repair`.
    public var dropped: [(file: String, position: Int64, bytes: Int64)] = []
    public var seconds = 0.0

    public var description: String {
        var s = "\(records) records, offsets \(firstOffset)...\(lastOffset), \(segments) segments, \(bytes) bytes, \(String(format: "%.3f", seconds)) s"
        if tornTailBytes > 0 { s += ", torn tail of \(tornTailBytes) bytes truncated" }
        if indexesRebuilt > 0 { s += ", \(indexesRebuilt) indexes rebuilt" }
        if offsetGaps > 0 { s += ", \(offsetGaps) offset gaps" }
        for d in dropped { s += "\nrepair dropped \(d.bytes) bytes of \(d.file) at byte \(d.position)" }
        return s
    }
}

/// Counters for benchmarks and metrics.
public struct LogStats: Sendable {
    public var batches: UInt64 = 0
    public var records: UInt64 = 0
    public var bytes: UInt64 = 0
    public var syncNanos: UInt64 = 0
    public var largestBatch = 0
}

/// The append-only log: segments on disk, group commit on its own thread, reads by offset and by
/// conversation, recovery on open. Thread-safe: append and read from any thread.
struct ConversationIndex {
    var first: UInt64
    var offsets: [UInt64]
    var last: UInt64 { first + UInt64(offsets.count) - 1 }
    func offset(of sequence: UInt64) -> UInt64? {
        guard sequence >= first, sequence <= last else { return nil }
        return offsets[Int(sequence - first)]
    }
}

public final class Log: @unchecked Sendable {
    public typealias Completion = (Result<[UInt64], LogError>) -> Void

    public let config: LogConfig
    private let logger: Logger
    private let lock = NSCondition()

    // Guarded by `lock`.
    private var segments: [Segment] = []
    private var pending: [(records: [Record], completion: Completion)] = []
    private var durable: UInt64 = 0
    private var first: UInt64 = 1
    /// Conversation → offsets of its sequenced records, from sequence `first` on (retention may have
    /// removed the earliest ones).
    private var conversations: [ConversationID: ConversationIndex] = [:]
    private var keys = KeyIndex()
    private var subscriptions: [Subscription] = []
    private var closing = false
    private var stats = LogStats()

    // Writer thread only.
    private var nextOffset: UInt64 = 1
    private var buffer: [UInt8] = []
    private var lastSyncNs: UInt64 = 0
    private let writerDone = DispatchSemaphore(value: 0)

    // MARK: opening

    /// Opens (or creates) the log in `config.directory`, recovering it first.
    public static func open(_ config: LogConfig, logger: Logger = Logger(label: "parley.log")) throws -> (Log, RecoveryReport) {
        let log = Log(config: config, logger: logger)
        let report = try log.recover()
        if case .interval(let ms) = config.fsync {
            logger.warning("log fsync=interval: acknowledged records may be lost on power failure (comparisons only)", metadata: ["log.fsync_interval_ms": "\(ms)"])
        }
        let t = Thread { log.writerLoop() }
        t.name = "parley.log.writer"
        t.start()
        return (log, report)
    }

    private init(config: LogConfig, logger: Logger) {
        self.config = config
        self.logger = logger
        buffer.reserveCapacity(1 << 20)
    }

    /// Stops the writer after what is queued, then closes the files.
    public func close() {
        lock.lock()
        if closing { lock.unlock(); return }
        closing = true
        lock.broadcast()
        lock.unlock()
        writerDone.wait()
        lock.lock()
        for s in segments { Glibc.close(s.fd) }
        segments = []
        lock.unlock()
    }

    // MARK: appending

    /// Queues records; `completion` runs (on the log's writer thread: hop to your own queue) once they
    /// are durable, with their offsets, or with the error that kept them out of the log.
    public func append(_ records: [Record], completion: @escaping Completion) {
        do throws(LogError) {
            for r in records { try RecordCodec.validate(r) }
        } catch {
            completion(.failure(error))
            return
        }
        lock.lock()
        guard !closing else { lock.unlock(); completion(.failure(.closed)); return }
        pending.append((records, completion))
        lock.signal()
        lock.unlock()
    }

    /// Appends and waits (for tools and tests; never call on a connection loop).
    @discardableResult
    public func appendAndWait(_ records: [Record]) throws -> [UInt64] {
        let done = DispatchSemaphore(value: 0)
        var result: Result<[UInt64], LogError> = .failure(.closed)
        append(records) { result = $0; done.signal() }
        done.wait()
        return try result.get()
    }

    public var durableOffset: UInt64 { lock.lock(); defer { lock.unlock() }; return durable }
    public var firstOffset: UInt64 { lock.lock(); defer { lock.unlock() }; return first }
    public var statistics: LogStats { lock.lock(); defer { lock.unlock() }; return stats }

    private func writerLoop() {
        while true {
            lock.lock()
            while pending.isEmpty && !closing { lock.wait() }
            if pending.isEmpty { lock.unlock(); break }
            // Everything queued while the previous fdatasync ran is the next batch: no timer.
            let batch = pending
            pending = []
            lock.unlock()
            writeBatch(batch)
        }
        writerDone.signal()
    }

    private func writeBatch(_ batch: [(records: [Record], completion: Completion)]) {
        lock.lock()
        var seg = segments[segments.count - 1]
        let wantSubscribers = !subscriptions.isEmpty
        lock.unlock()

        if seg.size >= config.segmentBytes, seg.last >= seg.base {
            switch roll(from: seg) {
            case .success(let s): seg = s
            case .failure(let e): fail(batch, e); return
            }
        }

        let batchFirst = nextOffset
        let startPos = seg.size
        let now = nowMs()
        buffer.removeAll(keepingCapacity: true)
        var frames: [(offset: UInt64, position: Int64, timestampMs: Int64, conversation: ConversationID, sequence: UInt64, keyFingerprint: UInt64)] = []
        var offsets: [[UInt64]] = []
        var published: [Record] = []
        offsets.reserveCapacity(batch.count)
        var nextSequence: [ConversationID: UInt64] = [:]  // within this batch
        nextSequence.reserveCapacity(batch.count)
        var refused: [Int: LogError] = [:]
        for (n, item) in batch.enumerated() {
            // All or nothing per append: every sequenced record must be its conversation's next.
            // `conversations` is only mutated on this thread: reading it here needs no lock.
            var conflict: LogError? = nil
            if item.records.count == 1 {  // the common case, without a dictionary per append
                let r = item.records[0]
                if !r.conversation.isNone, r.sequence > 0 {
                    let want = nextSequence[r.conversation] ?? conversations[r.conversation].map { $0.last + 1 }
                    if let want, r.sequence != want { conflict = .sequenceConflict(expected: want, got: r.sequence) }
                    else { nextSequence[r.conversation] = r.sequence + 1 }
                }
            } else {
                var local: [ConversationID: UInt64] = [:]
                for r in item.records where !r.conversation.isNone && r.sequence > 0 {
                    let want = local[r.conversation] ?? nextSequence[r.conversation] ?? conversations[r.conversation].map { $0.last + 1 }
                    if let want, r.sequence != want { conflict = .sequenceConflict(expected: want, got: r.sequence); break }
                    local[r.conversation] = r.sequence + 1
                }
                if conflict == nil { nextSequence.merge(local) { $1 } }
            }
            if let conflict { refused[n] = conflict; offsets.append([]); continue }
            var offs: [UInt64] = []
            offs.reserveCapacity(item.records.count)
            for var r in item.records {
                r.offset = nextOffset
                nextOffset += 1
                if r.timestampMs == 0 { r.timestampMs = now }
                let at = buffer.count
                buffer.append(contentsOf: repeatElement(0, count: RecordCodec.encodedSize(r)))
                buffer.withUnsafeMutableBytes { _ = RecordCodec.encode(r, into: $0.baseAddress! + at) }
                let fp = r.key.isEmpty ? 0 : r.key.withUnsafeBytes { keys.fingerprint(r.conversation, $0) }
                frames.append((r.offset, startPos + Int64(at), r.timestampMs, r.conversation, r.sequence, fp))
                offs.append(r.offset)
                if wantSubscribers { published.append(r) }
            }
            offsets.append(offs)
        }

        let writeError = buffer.withUnsafeBytes { FileIO.pwriteAll(seg.fd, $0, at: startPos) }
        if let e = writeError {
            // Leave no partial record: cut the file back to where this batch began.
            _ = ftruncate(seg.fd, off_t(startPos))
            nextOffset = batchFirst
            fail(batch, e == ENOSPC || e == EDQUOT ? .noSpace : .io("write \(seg.path)", errno: e))
            if e == ENOSPC { logger.error("log append failed: disk full", metadata: ["log.file": "\(seg.path)"]) }
            return
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        var synced = true
        switch config.fsync {
        case .always:
            syncOrDie(seg)
        case .interval(let ms):
            if t0 - lastSyncNs >= UInt64(ms) * 1_000_000 { syncOrDie(seg); lastSyncNs = t0 } else { synced = false }
        }
        let syncNs = synced ? DispatchTime.now().uptimeNanoseconds - t0 : 0

        lock.lock()
        for f in frames {
            seg.noteFrame(offset: f.offset, position: f.position, timestampMs: f.timestampMs)
            index(f.conversation, f.sequence, f.keyFingerprint, f.offset)
        }
        seg.size = startPos + Int64(buffer.count)
        durable = nextOffset - 1
        stats.batches += 1
        stats.records += UInt64(frames.count)
        stats.bytes += UInt64(buffer.count)
        stats.syncNanos += syncNs
        stats.largestBatch = max(stats.largestBatch, frames.count)
        let subs = subscriptions
        lock.unlock()

        config.onBatch?(frames.count, buffer.count, syncNs)
        for (i, item) in batch.enumerated() {
            if let e = refused[i] { item.completion(.failure(e)) } else { item.completion(.success(offsets[i])) }
        }
        if !published.isEmpty {
            for s in subs { s.offer(published) }
        }
        if let keep = config.retentionMs { applyRetention(olderThan: now - keep) }
    }

    /// An fsync error stops the process: retrying can falsely succeed after the kernel dropped the
    /// dirty pages (PostgreSQL's "fsyncgate"), and an ack after that would be a lie.
    private func syncOrDie(_ seg: Segment) {
        if fdatasync(seg.fd) != 0 {
            let e = errno
            logger.critical("fdatasync failed; stopping to protect acknowledged data", metadata: ["log.file": "\(seg.path)", "errno": "\(e)"])
            FileHandle.standardError.write("parley: fatal: fdatasync(\(seg.path)) failed with errno \(e) (\(String(cString: strerror(e))))\n".data(using: .utf8)!)
            exit(70)
        }
    }

    private func fail(_ batch: [(records: [Record], completion: Completion)], _ e: LogError) {
        for item in batch { item.completion(.failure(e)) }
    }

    /// Starts a new segment after `old` and seals `old` (fsync, sparse index file).
    private func roll(from old: Segment) -> Result<Segment, LogError> {
        let base = old.last + 1
        let path = config.directory + "/" + Segment.fileName(base: base)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return .failure(errno == ENOSPC ? .noSpace : .io("create \(path)", errno: errno)) }
        let header = Segment.encodeHeader(base: base, createdMs: nowMs())
        if let e = header.withUnsafeBytes({ FileIO.pwriteAll(fd, $0, at: 0) }) {
            Glibc.close(fd)
            unlink(path)
            return .failure(e == ENOSPC ? .noSpace : .io("write \(path)", errno: e))
        }
        syncOrDie(Segment(path: path, base: base, fd: fd, size: 0))
        FileIO.fsyncDirectory(config.directory)
        syncOrDie(old)
        let s = Segment(path: path, base: base, fd: fd, size: Int64(Segment.headerBytes))
        lock.lock()
        old.sealed = true
        segments.append(s)
        lock.unlock()
        _ = FileIO.writeAtomically(old.indexPath, old.encodeIndex(), directory: config.directory)  // a cache: rebuilt if lost
        return .success(s)
    }

    /// Deletes whole sealed segments whose newest record is older than `cutoffMs`. Writer thread.
    private func applyRetention(olderThan cutoffMs: Int64) {
        lock.lock()
        var removed: [Segment] = []
        while segments.count > 1, segments[0].sealed, segments[0].lastTimestampMs < cutoffMs {
            removed.append(segments.removeFirst())
        }
        if !removed.isEmpty { first = segments[0].base }
        for s in removed {
            s.deleted = true
            if s.readers == 0 { Glibc.close(s.fd) }  // else the last reader closes it (`release`)
        }
        lock.unlock()
        guard !removed.isEmpty else { return }
        for s in removed {
            unlink(s.path)
            unlink(s.indexPath)
            logger.info("log segment deleted by retention", metadata: ["log.file": "\(s.path)"])
        }
        FileIO.fsyncDirectory(config.directory)
    }

    /// Derived state: conversation sequence → offset, idempotency keys. Under `lock` (or during
    /// recovery, before the log is shared).
    private func index(_ conversation: ConversationID, _ sequence: UInt64, _ keyFingerprint: UInt64, _ offset: UInt64) {
        guard !conversation.isNone, sequence > 0 else { return }
        // Mutate in place: copying the array out and back would copy it on every append (O(n)).
        if conversations[conversation] == nil {
            conversations[conversation] = ConversationIndex(first: sequence, offsets: [offset])
        } else if conversations[conversation]!.last + 1 == sequence {
            conversations[conversation]!.offsets.append(offset)
        }
        if keyFingerprint != 0 { keys.insert(keyFingerprint, offset: offset) }
    }

    // MARK: reading

    /// The last sequence of a conversation (0 if it has no sequenced records).
    public func lastSequence(of conversation: ConversationID) -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        return conversations[conversation]?.last ?? 0
    }

    /// The durable record that carried this idempotency key in this conversation, if any.
    public func lookup(conversation: ConversationID, key: [UInt8]) -> (sequence: UInt64, offset: UInt64, timestampMs: Int64)? {
        guard !key.isEmpty else { return nil }
        lock.lock()
        let candidate = keys.find(key.withUnsafeBytes { keys.fingerprint(conversation, $0) })
        lock.unlock()
        // A fingerprint match is confirmed against the record itself.
        guard let offset = candidate, let r = read(offset: offset), r.conversation == conversation, r.key == key else { return nil }
        return (r.sequence, offset, r.timestampMs)
    }

    /// A conversation's records with `sequence > afterSeq`, in order, at most `limit`.
    public func read(conversation: ConversationID, afterSequence: UInt64, limit: Int) -> [Record] {
        guard limit > 0 else { return [] }
        lock.lock()
        guard let c = conversations[conversation], afterSequence < c.last else { lock.unlock(); return [] }
        let from = max(afterSequence + 1, c.first)
        let to = min(c.last, from + UInt64(limit) - 1)
        let offs = (from...to).compactMap { c.offset(of: $0) }
        lock.unlock()
        return offs.compactMap { read(offset: $0) }
    }

    /// One durable record by offset.
    public func read(offset: UInt64) -> Record? {
        read(from: offset, limit: 1).first.flatMap { $0.offset == offset ? $0 : nil }
    }

    /// Durable records with offset ≥ `from`, in order, at most `limit`.
    public func read(from: UInt64, limit: Int) -> [Record] {
        var out: [Record] = []
        var next = from
        while out.count < limit {
            lock.lock()
            guard next <= durable, let i = segmentIndex(for: next) else { lock.unlock(); break }
            let seg = segments[i]
            let start = seg.scanStart(for: next)
            let end = seg.size
            seg.readers += 1
            lock.unlock()
            defer { release(seg) }
            var pos = start
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            scan: while pos < end, out.count < limit {
                let want = Int(min(Int64(chunk.count), end - pos))
                let got = chunk.withUnsafeMutableBytes { FileIO.pread(seg.fd, $0.baseAddress!, want, at: pos) }
                if got <= 0 { break }
                var consumed = 0
                while consumed < got, out.count < limit {
                    let d = chunk.withUnsafeBytes { RecordCodec.decode(UnsafeRawBufferPointer(rebasing: $0[consumed..<got])) }
                    switch d {
                    case .record(let r, let size):
                        consumed += size
                        if r.offset >= next { out.append(r) }
                    case .truncated:
                        if consumed == 0 {  // a frame larger than the chunk
                            chunk = [UInt8](repeating: 0, count: chunk.count * 2)
                            continue scan
                        }
                        pos += Int64(consumed)
                        continue scan
                    case .invalid:
                        break scan  // not expected below `durable`; recovery verified these bytes
                    }
                }
                pos += Int64(consumed)
            }
            guard let lastRead = out.last?.offset, lastRead >= next else {
                // Nothing found in this segment at or after `next`: move to the next segment.
                lock.lock()
                let following = i + 1 < segments.count ? segments[i + 1].base : nil
                lock.unlock()
                guard let f = following else { break }
                next = f
                continue
            }
            next = lastRead + 1
        }
        return out
    }

    /// A reader is done with `seg`: the descriptor of a segment retention deleted meanwhile is
    /// closed by its last reader.
    private func release(_ seg: Segment) {
        lock.lock()
        seg.readers -= 1
        if seg.deleted, seg.readers == 0 { Glibc.close(seg.fd) }
        lock.unlock()
    }

    /// Index of the segment holding `offset`. Under `lock`.
    private func segmentIndex(for offset: UInt64) -> Int? {
        guard !segments.isEmpty, offset >= segments[0].base else { return segments.isEmpty ? nil : (offset < segments[0].base ? 0 : nil) }
        var lo = 0, hi = segments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if segments[mid].base <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    // MARK: subscriptions

    /// Delivers every durable record with offset ≥ `from`, in order, on `queue`: first what is
    /// already in the log, then each new batch as it becomes durable. No gap, no repeat.
    public func subscribe(from: UInt64, queue: DispatchQueue, _ handler: @escaping ([Record]) -> Void) -> Subscription {
        let s = Subscription(log: self, next: max(from, 1), queue: queue, handler: handler)
        queue.async { s.catchUp() }
        return s
    }

    /// Registers `s` as live if it has read everything durable; else says how far to read. Under lock.
    fileprivate func goLive(_ s: Subscription) -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard s.next > durable else { return false }
        subscriptions.append(s)
        return true
    }

    fileprivate func remove(_ s: Subscription) {
        lock.lock()
        subscriptions.removeAll { $0 === s }
        lock.unlock()
    }

    // MARK: recovery

    private func recover() throws -> RecoveryReport {
        let start = DispatchTime.now().uptimeNanoseconds
        var report = RecoveryReport()
        let dir = config.directory
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var names = try FileManager.default.contentsOfDirectory(atPath: dir)
        for n in names where n.hasSuffix(".tmp") { unlink(dir + "/" + n) }
        names = names.filter { $0.hasSuffix(".seg") && $0.count == 24 && UInt64($0.prefix(20)) != nil }.sorted()

        if names.isEmpty {
            let path = dir + "/" + Segment.fileName(base: 1)
            let fd = Glibc.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw LogError.io("create \(path)", errno: errno) }
            let header = Segment.encodeHeader(base: 1, createdMs: nowMs())
            if let e = header.withUnsafeBytes({ FileIO.pwriteAll(fd, $0, at: 0) }) { throw LogError.io("write \(path)", errno: e) }
            guard fdatasync(fd) == 0 else { throw LogError.io("fdatasync \(path)", errno: errno) }
            FileIO.fsyncDirectory(dir)
            segments = [Segment(path: path, base: 1, fd: fd, size: Int64(Segment.headerBytes))]
            nextOffset = 1
            durable = 0
            first = 1
            report.segments = 1
            return report
        }

        var previous: UInt64? = nil
        for (i, name) in names.enumerated() {
            let isLast = i == names.count - 1
            let path = dir + "/" + name
            let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else { throw LogError.io("open \(path)", errno: errno) }
            let fileSize = FileIO.fileSize(fd)
            let nameBase = UInt64(name.prefix(20))!
            var header = [UInt8](repeating: 0, count: Segment.headerBytes)
            let got = header.withUnsafeMutableBytes { FileIO.pread(fd, $0.baseAddress!, Segment.headerBytes, at: 0) }
            let decoded = got == Segment.headerBytes ? Segment.decodeHeader(header) : (nil, "shorter than a header")
            guard let base = decoded.base, base == nameBase else {
                if isLast, fileSize < Int64(Segment.headerBytes) * 2, i > 0 {
                    // A segment whose creation was cut short by a crash: it holds no record.
                    Glibc.close(fd)
                    unlink(path)
                    FileIO.fsyncDirectory(dir)
                    report.tornTailBytes += fileSize
                    continue
                }
                Glibc.close(fd)
                throw LogError.badSegmentHeader(file: path, reason: decoded.problem ?? "base offset \(decoded.base ?? 0) does not match the file name")
            }
            let seg = Segment(path: path, base: base, fd: fd, size: Int64(Segment.headerBytes))
            try scan(seg, fileSize: fileSize, isLast: isLast, previous: &previous, report: &report)
            seg.sealed = !isLast
            segments.append(seg)
            if seg.sealed { report.indexesRebuilt += ensureIndexFile(seg) ? 1 : 0 }
        }
        // A deleted torn segment may have left the previous one last: it becomes the active one.
        if let last = segments.last { last.sealed = false }
        let last = segments.last!
        nextOffset = last.last + 1
        durable = nextOffset - 1
        first = segments[0].base
        report.segments = segments.count
        report.firstOffset = first
        report.lastOffset = durable
        report.bytes = segments.reduce(0) { $0 + $1.size }
        report.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return report
    }

    /// Verifies every frame of a segment and rebuilds derived state from it. With `repair`, a pass
    /// that cut bad bytes out of the file is followed by a fresh pass over the rewritten file.
    private func scan(_ seg: Segment, fileSize: Int64, isLast: Bool, previous: inout UInt64?, report: inout RecoveryReport) throws {
        let previousAtStart = previous
        let recordsAtStart = report.records
        while true {
            let size = FileIO.fileSize(seg.fd)
            if try scanPass(seg, fileSize: size, isLast: isLast, previous: &previous, report: &report) { return }
            previous = previousAtStart
            report.records = recordsAtStart
            seg.index = []
            seg.lastIndexedPosition = -1 << 40
            seg.size = Int64(Segment.headerBytes)
            seg.last = seg.base &- 1
        }
    }

    /// One pass; returns false when the file was rewritten by repair and must be scanned again.
    private func scanPass(_ seg: Segment, fileSize: Int64, isLast: Bool, previous: inout UInt64?, report: inout RecoveryReport) throws -> Bool {
        var pos = Int64(Segment.headerBytes)
        var chunk = [UInt8](repeating: 0, count: 4 << 20)
        var chunkStart: Int64 = 0
        var chunkLen = 0

        func tornTail(at p: Int64) {
            report.tornTailBytes += fileSize - p
            _ = ftruncate(seg.fd, off_t(p))
            _ = fdatasync(seg.fd)
            logger.notice("log torn tail truncated", metadata: ["log.file": "\(seg.path)", "log.position": "\(p)", "log.bytes": "\(fileSize - p)"])
        }

        /// Nothing from `p` on can be used: a torn tail in the last segment (never acknowledged);
        /// anywhere else corruption, refused unless repairing (then cut off and reported).
        func cutTail(at p: Int64, _ reason: String) throws -> Bool {
            if isLast { tornTail(at: p); return true }
            guard config.repair else { throw LogError.corrupt(file: seg.path, position: p, reason: reason) }
            report.dropped.append((seg.path, p, fileSize - p))
            try rewrite(seg, keepingUpTo: p)
            return true
        }

        while pos < fileSize {
            if pos + 8 > chunkStart + Int64(chunkLen) || pos < chunkStart {
                chunkStart = pos
                chunkLen = chunk.withUnsafeMutableBytes { FileIO.pread(seg.fd, $0.baseAddress!, $0.count, at: pos) }
            }
            let rel = Int(pos - chunkStart)
            let res = chunk.withUnsafeBytes { RecordCodec.decodeHeader(UnsafeRawBufferPointer(rebasing: $0[rel..<chunkLen])) }
            switch res {
            case .truncated:
                if chunkStart + Int64(chunkLen) < fileSize {
                    if rel == 0 { chunk = [UInt8](repeating: 0, count: chunk.count * 2) }  // a frame larger than the chunk
                    chunkLen = 0  // refill from pos
                    continue
                }
                // The last frame runs past the end of the file.
                return try cutTail(at: pos, "record runs past the end of a sealed segment")
            case .invalid(let why):
                guard let next = nextValidFrame(seg, after: pos, fileSize: fileSize, previous: previous) else { return try cutTail(at: pos, why) }
                guard config.repair else { throw LogError.corrupt(file: seg.path, position: pos, reason: why) }
                report.dropped.append((seg.path, pos, next - pos))
                try rewrite(seg, dropping: pos..<next)
                return false
            case .header(let h) where pos + Int64(h.size) > fileSize && chunkStart + Int64(chunkLen) >= fileSize:
                // The frame checks out but its padding is cut off: the write that carried it was not
                // complete, so it was never acknowledged. Same as a truncated frame.
                return try cutTail(at: pos, "record runs past the end of a sealed segment")
            case .header(let h):
                if let p = previous, h.offset <= p {
                    guard config.repair else {
                        throw LogError.corrupt(file: seg.path, position: pos, reason: "offset \(h.offset) after \(p): out of order")
                    }
                    report.dropped.append((seg.path, pos, Int64(h.size)))
                    try rewrite(seg, dropping: pos..<(pos + Int64(h.size)))
                    return false
                }
                if let p = previous, h.offset != p + 1 { report.offsetGaps += 1 }
                let fp: UInt64 = h.keyRange.isEmpty ? 0 : chunk.withUnsafeBytes {
                    keys.fingerprint(h.conversation, UnsafeRawBufferPointer(rebasing: $0[(rel + h.keyRange.lowerBound)..<(rel + h.keyRange.upperBound)]))
                }
                seg.noteFrame(offset: h.offset, position: pos, timestampMs: h.timestampMs)
                index(h.conversation, h.sequence, fp, h.offset)
                previous = h.offset
                report.records += 1
                pos += Int64(h.size)
                seg.size = pos
            }
        }
        return true
    }

    /// Where the next valid frame (with an offset after `previous`) starts after `p`, if any: if there
    /// is one, the bad bytes at `p` are corruption in the middle, not a torn tail.
    private func nextValidFrame(_ seg: Segment, after p: Int64, fileSize: Int64, previous: UInt64?) -> Int64? {
        var pos = (p + 8) & ~7
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while pos + Int64(RecordCodec.headerBytes) <= fileSize {
            let n = buf.withUnsafeMutableBytes { FileIO.pread(seg.fd, $0.baseAddress!, $0.count, at: pos) }
            if n < RecordCodec.headerBytes { return nil }
            var rel = 0
            while rel + RecordCodec.headerBytes <= n {
                let r = buf.withUnsafeBytes { RecordCodec.decodeHeader(UnsafeRawBufferPointer(rebasing: $0[rel..<n])) }
                if case .header(let h) = r, previous.map({ h.offset > $0 }) ?? true { return pos + Int64(rel) }
                if case .truncated = r, rel > 0 { break }  // re-read from here with the frame whole
                rel += 8
            }
            if rel == 0 { rel = 8 }
            pos += Int64(rel)
        }
        return nil
    }

    /// Repair: rewrites the segment without the bytes in `drop` (via a temp file and rename).
    private func rewrite(_ seg: Segment, dropping drop: Range<Int64>) throws {
        guard let all = FileIO.readFile(seg.path) else { throw LogError.io("read \(seg.path)", errno: errno) }
        let kept = Array(all[0..<Int(drop.lowerBound)]) + Array(all[Int(drop.upperBound)...])
        try replace(seg, with: kept)
    }

    private func rewrite(_ seg: Segment, keepingUpTo end: Int64) throws {
        _ = ftruncate(seg.fd, off_t(end))
        guard fdatasync(seg.fd) == 0 else { throw LogError.io("fdatasync \(seg.path)", errno: errno) }
    }

    private func replace(_ seg: Segment, with bytes: [UInt8]) throws {
        guard FileIO.writeAtomically(seg.path, bytes, directory: config.directory) else { throw LogError.io("rewrite \(seg.path)", errno: errno) }
        let fd = Glibc.open(seg.path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw LogError.io("open \(seg.path)", errno: errno) }
        // dup2 keeps the Segment's fd number valid while pointing it at the new file.
        _ = dup2(fd, seg.fd)
        Glibc.close(fd)
        logger.warning("log segment repaired", metadata: ["log.file": "\(seg.path)"])
    }

    /// Writes the sealed segment's sparse index unless a valid, identical one is there. Returns true if written.
    private func ensureIndexFile(_ seg: Segment) -> Bool {
        let want = seg.encodeIndex()
        if let have = FileIO.readFile(seg.indexPath), have == want { return false }
        return FileIO.writeAtomically(seg.indexPath, want, directory: config.directory)
    }
}

/// A live reader of the log (see `Log.subscribe`). Cancel it to stop deliveries.
public final class Subscription: @unchecked Sendable {
    private weak var log: Log?
    fileprivate var next: UInt64
    private let queue: DispatchQueue
    private let handler: ([Record]) -> Void
    private var live = false
    private var cancelled = false

    fileprivate init(log: Log, next: UInt64, queue: DispatchQueue, handler: @escaping ([Record]) -> Void) {
        self.log = log
        self.next = next
        self.queue = queue
        self.handler = handler
    }

    /// On `queue`: read what is already durable, then go live.
    fileprivate func catchUp() {
        guard let log, !cancelled else { return }
        while true {
            let batch = log.read(from: next, limit: 1024)
            if !batch.isEmpty {
                next = batch.last!.offset + 1
                handler(batch)
                if cancelled { return }
                continue
            }
            if log.goLive(self) { live = true; return }
        }
    }

    /// Called by the writer with a newly durable batch.
    fileprivate func offer(_ records: [Record]) {
        queue.async { [self] in
            guard !cancelled, live else { return }
            if let firstNew = records.first?.offset, firstNew > next {
                // Should not happen (batches arrive in order), but never skip: read the gap.
                live = false
                log?.remove(self)
                catchUp()
                return
            }
            let fresh = records.filter { $0.offset >= next }
            guard let last = fresh.last else { return }
            next = last.offset + 1
            handler(fresh)
        }
    }

    public func cancel() {
        queue.async { [self] in
            cancelled = true
            log?.remove(self)
        }
    }
}

import CParleySys
import ArgumentParser
import Dispatch
import Foundation
import Histogram
import Logging
import ParleyLog

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Inspect, verify and benchmark a Parley log directory.",
        subcommands: [Verify.self, Inspect.self, Bench.self, Stress.self]
    )
}

private func quietLogger() -> Logger {
    var l = Logger(label: "parley.log")
    l.logLevel = .error
    return l
}

private func openForReading(_ dir: String, repair: Bool = false) throws -> (Log, RecoveryReport) {
    guard FileManager.default.fileExists(atPath: dir) else { throw ValidationError("no such directory: \(dir)") }
    var config = LogConfig(directory: dir)
    config.repair = repair
    do {
        return try Log.open(config, logger: quietLogger())
    } catch let e as LogError {
        FileHandle.standardError.write("parley log: \(e)\n".data(using: .utf8)!)
        throw ExitCode(2)
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every record of a log. Exit 0 and print the record count and last offset, or exit 2 naming the file and byte offset of the corruption.",
        discussion: "A torn tail (an incomplete last record, as a crash leaves it) is truncated, as the server would on start.")
    @Argument(help: "The log directory (e.g. ./parley-data/log).") var dir: String
    @Flag(help: "Keep every valid record and drop bad bytes (reports what was dropped). Rewrites the damaged segments.") var repair = false

    func run() throws {
        let (log, report) = try openForReading(dir, repair: repair)
        log.close()
        print("ok: \(report.records) records, last offset \(report.lastOffset), \(report.segments) segments, \(report.bytes) bytes")
        if report.tornTailBytes > 0 { print("torn tail: \(report.tornTailBytes) bytes truncated") }
        if report.offsetGaps > 0 { print("offset gaps: \(report.offsetGaps)") }
        for d in report.dropped { print("dropped: \(d.bytes) bytes of \(d.file) at byte \(d.position)") }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print records as JSON lines.")
    @Argument(help: "The log directory.") var dir: String
    @Option(help: "Only this conversation (UUID), in sequence order.") var conversation: String?
    @Option(help: "Start at this offset (or, with --conversation, after this sequence).") var from: UInt64 = 0
    @Option(help: "At most this many records.") var limit = Int.max

    func run() throws {
        let (log, _) = try openForReading(dir)
        defer { log.close() }
        var printed = 0
        let out = FileHandle.standardOutput
        func emit(_ r: Record) {
            var o: [String: Any] = [
                "offset": r.offset, "term": r.term, "type": r.type.description, "typeCode": r.type.rawValue, "flags": r.flags,
                "timestampMs": r.timestampMs, "sequence": r.sequence,
            ]
            if !r.conversation.isNone { o["conversation"] = r.conversation.description }
            if !r.key.isEmpty { o["key"] = String(decoding: r.key, as: UTF8.self) }
            if let text = String(validating: r.payload, as: UTF8.self) { o["payload"] = text } else { o["payloadBase64"] = Data(r.payload).base64EncodedString() }
            let data = (try? JSONSerialization.data(withJSONObject: o, options: [.sortedKeys])) ?? Data()
            out.write(data + Data("\n".utf8))
            printed += 1
        }
        if let c = conversation {
            guard let id = ConversationID(c) else { throw ValidationError("--conversation must be a UUID") }
            var after = from
            while printed < limit {
                let batch = log.read(conversation: id, afterSequence: after, limit: min(1000, limit - printed))
                if batch.isEmpty { break }
                batch.forEach(emit)
                after = batch.last!.sequence
            }
        } else {
            var next = max(from, log.firstOffset)
            while printed < limit {
                let batch = log.read(from: next, limit: min(1000, limit - printed))
                if batch.isEmpty { break }
                batch.forEach(emit)
                next = batch.last!.offset + 1
            }
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Append records from concurrent writers and report appends/s, MiB/s, append-to-durable latency and batch sizes.",
        discussion: "Each writer appends one record and waits until it is durable, then the next: the group commit makes every record queued during one fdatasync part of the next batch.")
    @Option(help: "Directory for the benchmark log (created; must be empty or absent).") var dir: String
    @Option(help: "Records in total.") var records = 200_000
    @Option(help: "Payload bytes per record.") var recordBytes = 200
    @Option(help: "Concurrent writers.") var writers = 64
    @Option(help: "Appends each writer keeps in flight (1: append, wait until durable, append again).") var inflight = 1
    @Option(help: "always (default) or interval:MS (comparisons only).") var fsync = "always"
    @Option(help: "Segment size in MiB.") var segmentMib = 64
    @Flag(help: "Keep the directory afterwards (default: remove it).") var keep = false

    func run() throws {
        guard records > 0, (1...4096).contains(writers), (1...1024).contains(inflight), (0...RecordCodec.maxPayloadBytes).contains(recordBytes) else {
            throw ValidationError("records > 0, writers 1...4096, inflight 1...1024, record-bytes 0...\(RecordCodec.maxPayloadBytes)")
        }
        if FileManager.default.fileExists(atPath: dir), !((try? FileManager.default.contentsOfDirectory(atPath: dir))?.isEmpty ?? true) {
            throw ValidationError("\(dir) is not empty")
        }
        var config = LogConfig(directory: dir)
        config.segmentBytes = Int64(segmentMib) << 20
        if fsync != "always" {
            guard fsync.hasPrefix("interval:"), let ms = Int(fsync.dropFirst(9)), ms > 0 else { throw ValidationError("--fsync always|interval:MS") }
            config.fsync = .interval(ms: ms)
        }
        let (log, _) = try Log.open(config, logger: quietLogger())
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: recordBytes)
        // Writers are completion-driven, as the server's chat partitions are: each completion (on the
        // log's writer thread) records the latency and issues that writer's next append at once.
        let perWriter = (records + writers - 1) / writers
        let state = (0..<writers).map { w in BenchWriter(id: w, total: max(0, min(perWriter, records - w * perWriter)), payload: payload) }
        let group = DispatchGroup()
        let start = DispatchTime.now().uptimeNanoseconds
        for w in state where w.total > 0 {
            group.enter()
            for _ in 0..<min(inflight, w.total) { w.next(log, group) }
        }
        group.wait()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let stats = log.statistics
        log.close()
        var all = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
        for w in state { all.add(w.histogram) }
        let failures = state.reduce(0) { $0 + $1.failures }
        func ms(_ p: Double) -> String { String(format: "%.3f", Double(all.valueAtPercentile(p)) / 1e6) }
        let appended = Double(stats.records)
        print("log bench: \(records) records of \(recordBytes) B, \(writers) writers x \(inflight) in flight, fsync=\(fsync)")
        print(String(format: "  %.0f appends/s, %.1f MiB/s (frames on disk), %.2f s", appended / elapsed, Double(stats.bytes) / elapsed / 1048576, elapsed))
        print("  append-to-durable ms: p50 \(ms(50))  p99 \(ms(99))  p99.9 \(ms(99.9))  max \(String(format: "%.3f", Double(all.max) / 1e6))")
        print(String(format: "  batches: %llu, mean %.1f records, largest %d; mean fdatasync %.3f ms", stats.batches,
                     appended / Double(max(1, stats.batches)), stats.largestBatch, Double(stats.syncNanos) / Double(max(1, stats.batches)) / 1e6))
        if failures > 0 { print("  failures: \(failures)") }
        if !keep { try? FileManager.default.removeItem(atPath: dir) }
        if failures > 0 { throw ExitCode(1) }
    }
}

/// One benchmark writer. Its mutable state is touched only in completions, which all run on the
/// log's single writer thread, and in the initial appends issued before any completion can run for it.
final class BenchWriter: @unchecked Sendable {
    let id: Int
    let total: Int
    let payload: [UInt8]
    let conversation: ConversationID
    let keyPrefix: [UInt8]
    var issued = 0
    var completed = 0
    var failures = 0
    var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000_000)
    private let lock = NSLock()

    init(id: Int, total: Int, payload: [UInt8]) {
        self.id = id
        self.total = total
        self.payload = payload
        self.conversation = ConversationID(high: UInt64(id + 1), low: 0xBE7C)
        self.keyPrefix = Array("w\(id)-".utf8)
    }

    func next(_ log: Log, _ group: DispatchGroup) {
        lock.lock()
        guard issued < total else { lock.unlock(); return }
        issued += 1
        let seq = UInt64(issued)
        lock.unlock()
        // Key "w<id>-<seq>" built from digits: String interpolation would cost more than the append.
        var key = keyPrefix
        var digits: (UInt64, UInt64) = (0, 0)
        var n = seq, len = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat { d[len] = UInt8(ascii: "0") + UInt8(n % 10); n /= 10; len += 1 } while n > 0
            for i in stride(from: len - 1, through: 0, by: -1) { key.append(d[i]) }
        }
        let r = Record(type: .message, conversation: conversation, sequence: seq, key: key, payload: payload)
        let t0 = DispatchTime.now().uptimeNanoseconds
        log.append([r]) { [self] res in
            let dt = DispatchTime.now().uptimeNanoseconds - t0
            lock.lock()
            histogram.record(dt)
            if case .failure = res { failures += 1 }
            completed += 1
            let finished = completed == total
            lock.unlock()
            if finished { group.leave() } else { next(log, group) }
        }
    }
}

/// For the crash test: appends until killed and prints `ack OFFSET CONVERSATION SEQUENCE PAYLOAD`
/// for every record once it is durable.
struct Stress: ParsableCommand {
    static let configuration = CommandConfiguration(shouldDisplay: false)
    @Option var dir: String
    @Option var writers = 4
    @Option var recordBytes = 100
    @Option var segmentKib = 256
    @Option var seconds = 60.0

    func run() throws {
        parley_line_buffer_stdout()  // progress lines appear as printed, also through a pipe
        var config = LogConfig(directory: dir)
        config.segmentBytes = Int64(segmentKib) << 10
        let (log, report) = try Log.open(config, logger: quietLogger())
        print("open \(report.records) \(report.lastOffset)")
        let outLock = NSLock()
        let deadline = Date().addingTimeInterval(seconds)
        let group = DispatchGroup()
        for w in 0..<writers {
            group.enter()
            Thread {
                let conv = ConversationID(high: 0x5157_0000 + UInt64(w), low: 1)
                var seq = log.lastSequence(of: conv)
                let done = DispatchSemaphore(value: 0)
                while Date() < deadline {
                    seq += 1
                    let body = "w\(w)s\(seq)-" + String(repeating: "abcdefghij", count: max(1, recordBytes / 10))
                    let r = Record(type: .message, conversation: conv, sequence: seq, key: Array("k\(w)-\(seq)".utf8), payload: Array(body.utf8))
                    var offset: UInt64 = 0
                    log.append([r]) { res in if case .success(let o) = res { offset = o[0] }; done.signal() }
                    done.wait()
                    guard offset > 0 else { break }
                    outLock.lock()
                    print("ack \(offset) \(conv) \(seq) \(body)")
                    outLock.unlock()
                }
                group.leave()
            }.start()
        }
        group.wait()
        log.close()
    }
}


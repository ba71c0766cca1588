import Dispatch
import Foundation
import Logging
import ParleyLog
import ParleyTransport

/// What cluster mode needs to know.
public struct ClusterConfig: Sendable {
    public var servers: [NATSClient.Server]
    /// This node's name: `[A-Za-z0-9_-]{1,64}`, unique in the cluster.
    public var node: String
    /// Where the node keeps its copy of the stream (a `Log`: each stream message's records, then a `CopyMarker`).
    public var cacheDirectory: String
    public var stream = "PARLEY"
    public var subject = "parley.events"
    public var leaseBucket = "parley_lease"
    public var replicas = 3
    public var allowUnreplicated = false
    public var leaseTTLMs: UInt64 = 2000
    /// How long a publish waits for its PubAck before writing is suspended and the stream decides.
    public var appendTimeoutMs: UInt64 = 2000
    /// How long start-up waits for a NATS server to answer.
    public var connectTimeoutMs: UInt64 = 30_000

    public init(servers: [NATSClient.Server], node: String, cacheDirectory: String) {
        self.servers = servers
        self.node = node
        self.cacheDirectory = cacheDirectory
    }

    public static func validNode(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95 }
    }
}

public struct ClusterError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// The event store of cluster mode: a JetStream stream (replicated, every write fsynced on a
/// majority) is the log; each node keeps a copy of it in an embedded `Log` (the same records at the
/// same offsets on every node), so reads, lookups and recovery are local and mean what they mean on
/// one machine. Appends go to JetStream (this node must be the writer), many records to a stream
/// message (group commit), and complete once stored there and in the copy; records other nodes
/// wrote reach `onApplied`, in stream order. The decisions are
/// `ReplicaCore`'s; this is its shell on one loop.
public final class ClusterLog: EventStore, @unchecked Sendable {
    public let config: ClusterConfig
    public let cache: Log
    /// The stream's identity (the same on every node): the welcome's epoch in cluster mode.
    public private(set) var epoch = ""
    /// Called (on the copy's writer thread) with each record another node wrote, in stream order,
    /// once the copy has it. Set before `resume()`.
    public var onApplied: ((Record) -> Void)?
    /// Called on the loop when this node's role changes.
    public var onRole: ((ReplicaCore.Role) -> Void)?

    let loop: Loop
    let client: NATSClient
    let js: JetStream
    private let batcher: NATSBatcher
    private let logger: Logger
    private var core: ReplicaCore
    private var consumer: OrderedConsumer!
    private var lease: WriterLease!
    private var completions: [UInt64: Log.Completion] = [:]
    private var nextToken: UInt64 = 1
    private var flushScheduled = false
    private var paused = true
    private var buffered: [(UInt64, NATSMessage)] = []
    private var caughtUp: (target: UInt64, signal: DispatchSemaphore)?
    private var closed = false
    private let roleBox = RoleBox()
    private let waitersLock = NSLock()
    private var waiters: [(seq: UInt64, run: () -> Void)] = []

    final class RoleBox: @unchecked Sendable {
        let lock = NSLock()
        var role = ReplicaCore.Role.follower
        var applied: UInt64 = 0
        var stats = Stats()
    }

    /// What this node did, since it started (for `/metrics`).
    public struct Stats: Sendable, Equatable {
        /// Stream messages this node published and the stream confirmed (group commit: each holds `recordsPublished / published` records on average).
        public var published: UInt64 = 0
        public var recordsPublished: UInt64 = 0
        /// Appends answered `unavailable` (not the writer, or the stream did not confirm).
        public var appendsFailed: UInt64 = 0
        public init() {}
    }

    public var stats: Stats { roleBox.lock.lock(); defer { roleBox.lock.unlock() }; return roleBox.stats }

    public var role: ReplicaCore.Role { roleBox.lock.lock(); defer { roleBox.lock.unlock() }; return roleBox.role }
    /// The highest stream sequence this node has applied.
    public var appliedSequence: UInt64 { roleBox.lock.lock(); defer { roleBox.lock.unlock() }; return roleBox.applied }

    private init(config: ClusterConfig, cache: Log, loop: Loop, logger: Logger, applied: UInt64, lastValid: UInt64) {
        let copyTip = cache.durableOffset
        self.config = config
        self.cache = cache
        self.loop = loop
        self.logger = logger
        client = NATSClient(servers: config.servers, on: loop, name: "parley-\(config.node)")
        js = JetStream(client: client)
        batcher = NATSBatcher(client: client)
        core = ReplicaCore(node: config.node, applied: applied, lastValid: lastValid, copyTip: copyTip, knownSequence: { cache.lastSequence(of: $0) })
    }

    /// Connects, makes (or checks) the stream and the lease bucket, and brings the local copy up to
    /// the stream's end. Blocks the caller (start-up; never on `loop`). Then: recover from `cache`,
    /// set `onApplied`, `resume()`.
    public static func open(_ config: ClusterConfig, loop: Loop, logger: Logger) throws -> ClusterLog {
        guard ClusterConfig.validNode(config.node) else { throw ClusterError("--node must be 1-64 letters, digits, '-' or '_'") }
        // Connect and set up the stream with a throwaway client first: the copy's identity depends on it.
        let setup = try Self.setUp(config, loop: loop)
        let dir = config.cacheDirectory
        let idFile = dir + "/stream-id"
        // The copy's format is part of its identity: a copy written another way is made again.
        let identity = "\(config.stream) \(setup.created) \(Self.copyFormat)"
        if let was = try? String(contentsOfFile: idFile, encoding: .utf8), was.trimmingCharacters(in: .whitespacesAndNewlines) != identity {
            logger.warning("the local copy is of another stream (made again?): starting it afresh", metadata: ["cluster.copy": "\(dir)"])
            try? FileManager.default.removeItem(atPath: dir)
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var lc = LogConfig(directory: dir + "/log")
        // The stream is what is durable; the copy is rebuilt from it after a crash.
        lc.fsync = .interval(ms: 1000)
        lc.repair = true
        // Its fsync=interval warning is about acks, which the copy never gives: keep errors only.
        var quiet = logger
        quiet.logLevel = .error
        var (cache, report) = try Log.open(lc, logger: quiet)
        // A copy ends with the marker of the last stream message it applied; anything else is a
        // message's records cut short (a crash mid-write).
        let tail = cache.durableOffset > 0 ? cache.read(offset: cache.durableOffset).flatMap(CopyMarker.read) : (0, 0)
        if !report.dropped.isEmpty || report.offsetGaps > 0 || tail == nil {
            logger.warning("the local copy was damaged: starting it afresh", metadata: ["cluster.copy": "\(dir)"])
            cache.close()
            try? FileManager.default.removeItem(atPath: dir + "/log")
            (cache, report) = try Log.open(lc, logger: quiet)
        }
        if let e = DurableFile.write(Array((identity + "\n").utf8), to: idFile, directory: dir) { throw LogError.io("write \(idFile)", errno: e) }
        // Just after the servers restart, a stream may not have applied all it committed yet:
        // its end moves up to what this copy holds within moments. Less than that for longer
        // would mean the stream lost what it acknowledged.
        let (applied, lastValid) = tail ?? (0, 0)
        var end = setup.lastSeq
        let deadline = Date().addingTimeInterval(Double(config.connectTimeoutMs) / 1000)
        while applied > end, Date() < deadline {
            Thread.sleep(forTimeInterval: 0.25)
            end = try Self.setUp(config, loop: loop).lastSeq
        }
        if applied > end {
            throw ClusterError("the local copy in \(dir) has applied \(applied) stream messages but stream \(config.stream) has only \(end): the stream lost records it had acknowledged, or is another one; remove the copy to start it afresh")
        }
        let log = ClusterLog(config: config, cache: cache, loop: loop, logger: logger, applied: applied, lastValid: lastValid)
        log.epoch = "js-" + String(Self.fnv(identity), radix: 16)
        try log.connectAndCatchUp(to: end)
        return log
    }

    /// Starts applying live (records reach `onApplied`) and competing for the lease.
    public func resume() {
        loop.queue.async { [self] in
            paused = false
            let held = buffered
            buffered = []
            for (seq, m) in held { consumedMessage(seq, m) }
            lease = WriterLease(js: js, bucket: config.leaseBucket, node: config.node, ttlMs: config.leaseTTLMs) { [weak self] held, term in
                guard let self else { return }
                self.logger.notice(held ? "writer lease gained" : "writer lease lost", metadata: ["cluster.term": "\(term)"])
                self.run(held ? self.core.leaseGained(term: term) : self.core.leaseLost())
            }
            lease.start()
            tick()
        }
    }

    /// Runs `body` once the local copy holds `seq` (at once if it does).
    public func whenApplied(_ seq: UInt64, _ body: @escaping () -> Void) {
        waitersLock.lock()
        if cache.durableOffset >= seq { waitersLock.unlock(); return body() }
        waiters.append((seq, body))
        waitersLock.unlock()
    }

    private func runWaiters(through seq: UInt64) {
        waitersLock.lock()
        guard !waiters.isEmpty else { return waitersLock.unlock() }
        let ready = waiters.filter { $0.seq <= seq }
        waiters.removeAll { $0.seq <= seq }
        waitersLock.unlock()
        for w in ready { w.run() }
    }

    // MARK: EventStore

    public func append(_ records: [Record], completion: @escaping Log.Completion) {
        guard records.count == 1 else { return completion(.failure(.unavailable("cluster appends take one record at a time"))) }
        do throws(LogError) { try RecordCodec.validate(records[0]) } catch { return completion(.failure(error)) }
        batcher.run { [self] in
            guard !closed else { return completion(.failure(.closed)) }
            let token = nextToken
            nextToken += 1
            completions[token] = completion
            run(core.append(token: token, records[0]))
            // Everything appended in this turn goes out together, in the next.
            if !flushScheduled {
                flushScheduled = true
                batcher.run { [self] in
                    flushScheduled = false
                    run(core.flush())
                }
            }
        }
    }

    public func read(from offset: UInt64, limit: Int) -> [Record] { cache.read(from: offset, limit: limit) }
    public func read(offset: UInt64) -> Record? { cache.read(offset: offset) }
    public func read(conversation: ConversationID, afterSequence: UInt64, limit: Int) -> [Record] {
        cache.read(conversation: conversation, afterSequence: afterSequence, limit: limit)
    }
    public func lookup(conversation: ConversationID, key: [UInt8]) -> (sequence: UInt64, offset: UInt64, timestampMs: Int64)? {
        cache.lookup(conversation: conversation, key: key)
    }
    public var firstOffset: UInt64 { cache.firstOffset }
    public var durableOffset: UInt64 { cache.durableOffset }

    public func close() {
        let done = DispatchSemaphore(value: 0)
        loop.queue.async { [self] in
            closed = true
            let finish = { [self] in
                consumer?.stop()
                client.stop()
                for (_, c) in completions { c(.failure(.closed)) }
                completions = [:]
                done.signal()
            }
            if let lease { lease.release(finish) } else { finish() }
        }
        _ = done.wait(timeout: .now() + .seconds(5))
        cache.close()
    }

    // MARK: internals

    /// How the local copy lays the stream out (see `CopyMarker`).
    static let copyFormat = "copy-v2"

    private struct SetUp { var lastSeq: UInt64; var created: String }

    /// Runs `body` on the loop with a connected throwaway client and waits for its answer.
    private static func setUp(_ config: ClusterConfig, loop: Loop) throws -> SetUp {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<SetUp>()
        let client = NATSClient(servers: config.servers, on: loop, name: "parley-\(config.node)-setup")
        loop.queue.async {
            let deadline = monotonicMs() + config.connectTimeoutMs
            var started = false
            // A cluster that is still electing its JetStream leader refuses for a moment: ask
            // again until the start-up deadline, then say what it answered last.
            @Sendable func attempt() {
                let js = JetStream(client: client)
                js.createStream(name: config.stream, subjects: [config.subject], replicas: config.replicas) { r in
                    switch r {
                    case .failure(let f):
                        if monotonicMs() + 250 < deadline {
                            loop.queue.asyncAfter(deadline: .now() + .milliseconds(250)) { attempt() }
                        } else {
                            box.result = .failure(ClusterError("cannot make stream \(config.stream) with \(config.replicas) replicas: \(f)"))
                            done.signal()
                        }
                    case .success(let info):
                        if let why = JetStream.checkReplicas(info, allowUnreplicated: config.allowUnreplicated) {
                            box.result = .failure(ClusterError(why))
                            done.signal()
                            return
                        }
                        let lease = WriterLease(js: js, bucket: config.leaseBucket, node: config.node, ttlMs: config.leaseTTLMs) { _, _ in }
                        lease.createBucket(replicas: info.replicas) { b in
                            switch b {
                            case .failure(let f): box.result = .failure(ClusterError("cannot make the lease bucket \(lease.stream): \(f)"))
                            case .success: box.result = .success(SetUp(lastSeq: info.lastSeq, created: info.created))
                            }
                            done.signal()
                        }
                    }
                }
            }
            client.onEvent = { event in
                guard case .connected = event, !started else { return }
                started = true
                attempt()
            }
            client.start()
        }
        let answered = done.wait(timeout: .now() + .milliseconds(Int(config.connectTimeoutMs)))
        loop.queue.sync { client.stop() }
        guard answered == .success, let r = box.result else {
            throw ClusterError("no NATS server answered within \(config.connectTimeoutMs / 1000) s at \(config.servers.map(\.description).joined(separator: ","))")
        }
        return try r.get()
    }

    final class ResultBox<T>: @unchecked Sendable { var result: Result<T, ClusterError>? }

    private func connectAndCatchUp(to target: UInt64) throws {
        let signal = DispatchSemaphore(value: 0)
        loop.queue.sync {
            if core.applied >= target { signal.signal() } else { caughtUp = (target, signal) }
            var first = true
            consumer = OrderedConsumer(js: js, stream: config.stream, from: core.applied + 1) { [weak self] seq, m in
                guard let self else { return }
                if self.paused && self.caughtUp == nil { self.buffered.append((seq, m)) } else { self.consumedMessage(seq, m) }
            }
            client.onEvent = { [weak self] e in
                guard let self else { return }
                switch e {
                case .connected:
                    if first { first = false; self.consumer.start() } else { self.consumer.reset(from: self.core.applied + 1) }
                case .disconnected(let s, let why):
                    self.logger.warning("NATS connection lost", metadata: ["nats.server": "\(s)", "reason": "\(why)"])
                }
            }
            client.start()
        }
        let t0 = Date()
        while signal.wait(timeout: .now() + .seconds(5)) == .timedOut {
            logger.info("catching up with the stream", metadata: ["cluster.applied": "\(appliedSequence)", "cluster.target": "\(target)",
                                                                 "seconds": "\(Int(Date().timeIntervalSince(t0)))"])
        }
    }

    private func consumedMessage(_ seq: UInt64, _ m: NATSMessage) {
        let msgId = m.headers?["Nats-Msg-Id"]
        // This node's own message: it has the records already.
        let records = msgId != nil && core.inflight.first?.msgId == msgId ? core.inflight.first?.records : Self.records(in: m.payload)
        let c = ReplicaCore.Consumed(msgId: msgId, after: m.headers?["Parley-After"].flatMap { UInt64($0) }, records: records)
        run(core.consumed(seq: seq, c))
    }

    /// The records a stream message holds, back to back; nil unless all of it is records.
    static func records(in payload: [UInt8]) -> [Record]? {
        payload.withUnsafeBytes { b -> [Record]? in
            var out: [Record] = []
            var at = 0
            while at < b.count {
                guard case .record(let r, let size) = RecordCodec.decode(UnsafeRawBufferPointer(rebasing: b[at...])), at + size <= b.count else { return nil }
                out.append(r)
                at += size
            }
            return out.isEmpty ? nil : out
        }
    }

    static func payload(of records: [Record]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: records.reduce(0) { $0 + RecordCodec.encodedSize($1) })
        out.withUnsafeMutableBytes { b in
            var at = 0
            for r in records { at += RecordCodec.encode(r, into: b.baseAddress! + at) }
        }
        return out
    }

    private func tick() {
        guard !closed else { return }
        run(core.tick())
        loop.queue.asyncAfter(deadline: .now() + .milliseconds(250)) { [weak self] in self?.tick() }
    }

    /// Carries out the core's outputs, in order (on the loop).
    private func run(_ outputs: [ReplicaCore.Output]) {
        for o in outputs {
            switch o {
            case .publish(let a):
                js.publish(config.subject, payload: Self.payload(of: a.records), msgId: a.msgId, expectedLastSeq: a.position - 1,
                           headers: [("Parley-After", String(a.after))], timeoutMs: config.appendTimeoutMs) { [weak self] result in
                    guard let self else { return }
                    switch result {
                    case .success(let ack):
                        self.run(self.core.pubAck(msgId: a.msgId, seq: ack.seq))
                        // Counted once the stream confirmed it (and after `applied` moved past it).
                        self.roleBox.lock.lock()
                        self.roleBox.stats.published += 1
                        self.roleBox.stats.recordsPublished += UInt64(a.records.count)
                        self.roleBox.lock.unlock()
                    case .failure(let f):
                        self.logger.warning("append not acknowledged: the stream decides", metadata: ["cluster.position": "\(a.position)", "error": "\(f)"])
                        self.run(self.core.publishFailed(msgId: a.msgId))
                    }
                }
            case .store(let records, let seq, let origin):
                store(records, streamSeq: seq, origin)
            case .failed(let token):
                roleBox.lock.lock(); roleBox.stats.appendsFailed += 1; roleBox.lock.unlock()
                completions.removeValue(forKey: token)?(.failure(.unavailable("this node could not append (not the writer, or the stream did not confirm)")))
            case .queryEnd:
                js.streamInfo(config.stream) { [weak self] r in
                    guard let self else { return }
                    switch r {
                    case .success(let info): self.run(self.core.end(info.lastSeq))
                    case .failure: self.run(self.core.endUnknown())
                    }
                }
            case .resetConsumer(let from):
                consumer.reset(from: from)
            case .role(let role):
                logger.notice("cluster role", metadata: ["cluster.role": "\(role.rawValue)", "cluster.applied": "\(core.applied)"])
                roleBox.lock.lock(); roleBox.role = role; roleBox.lock.unlock()
                onRole?(role)
            }
        }
        roleBox.lock.lock(); roleBox.applied = core.applied; roleBox.lock.unlock()
    }

    /// Appends one stream message's copy (its records, then its marker) to the local copy, then
    /// completes this node's appends or hands the others' records on.
    private func store(_ records: [Record], streamSeq: UInt64, _ origin: ReplicaCore.Origin) {
        var completions: [Log.Completion] = []
        if case .ours(let tokens) = origin { completions = tokens.map { self.completions.removeValue(forKey: $0) ?? { _ in } } }
        let caught = caughtUp
        if let c = caught, streamSeq >= c.target { caughtUp = nil }
        let expected = records.map(\.offset)
        cache.append(records) { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let offsets) where offsets == expected:
                switch origin {
                case .ours: for (c, r) in zip(completions, records) { c(.success([r.offset])) }
                case .foreign: if let onApplied { for r in records.dropLast() { onApplied(r) } }
                case .filler: break
                }
            default:
                // The copy no longer mirrors the stream: serving on would be wrong.
                self.logger.critical("the local copy of the stream failed", metadata: ["cluster.seq": "\(streamSeq)", "result": "\(result)"])
                FileHandle.standardError.write("parley: fatal: the local copy of the stream failed at \(streamSeq): \(result)\n".data(using: .utf8)!)
                exit(70)
            }
            if let c = caught, streamSeq >= c.target { c.signal.signal() }
            self.runWaiters(through: expected.last ?? 0)
        }
    }

    static func fnv(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }
}

import ParleyLog

/// The replicated log's decisions, free of I/O: which stream messages count, which of this node's
/// appends landed, when this node may write. The shell (`ClusterLog`) feeds it what JetStream says
/// and carries out what it returns.
///
/// **Group commit.** One stream message carries a batch of records: appends made while the
/// previous publishes are in flight wait in `pending` and go out together (`flush`), at most
/// `Batching.maxInflight` messages at a time. A message counts or not as a whole: every record in it
/// must be its conversation's next. In the local copy each message's records are followed by a
/// `CopyMarker`, so copy offsets are deterministic but not stream sequences.
///
/// **The chain rule.** Every message carries `after`: the stream sequence of the record its writer
/// had last applied or appended when it decided this one. A message at sequence `t` is *valid* when
/// its `after` is the sequence of the last valid message before `t`; anything else is filler, the
/// same on every node. A record that carries a conversation sequence must also be that
/// conversation's next one to be valid. So the valid records form one chain, each decided with everything before it
/// in view, whoever wrote them and however their appends interleaved: a deposed or partitioned
/// writer's late appends are filler, and correctness does not rest on lease timing. JetStream's own
/// fence (`Nats-Expected-Last-Sequence` = position − 1 on every append) keeps filler from being
/// stored in the first place, but is not what the rule trusts.
///
/// **Writing.** A node writes only while it holds the lease, and only after it applied the stream
/// to the end it read when it got the lease. Appends are pipelined: each gets the next position,
/// `after` = the position of the one before. A PubAck at the expected position settles an append
/// once everything before it is applied (the fence proves the chain). Anything else (a refusal, a
/// timeout, a foreign record) suspends writing: new appends are refused at once, the stream's end
/// is read once every publish is answered, and the stream itself decides each append still in
/// flight: in it (by message id) means landed; not in it by that end means failed. Then writing
/// resumes if the lease is still held.
public struct ReplicaCore {
    public enum Role: String, Equatable, Sendable {
        /// Applies what others write; refuses appends.
        case follower
        /// Holds the lease; applying the stream to the end it read before writing.
        case catchingUp
        case writer
        /// Writing stopped after a surprise; settling what is in flight before going on.
        case suspended
    }

    /// How appends are grouped into stream messages: limits as values.
    public enum Batching {
        /// Stream messages published and not yet settled, at most.
        public static let maxInflight = 4
        /// Records in one stream message, at most.
        public static let maxRecords = 256
        /// Encoded bytes in one stream message, at most (NATS refuses payloads over its
        /// `max_payload`, 1 MiB by default); a single larger record still goes, alone.
        public static let maxBytes = 512 * 1024
        /// Appends waiting for a slot, at most: beyond it the stream is not keeping up, and the
        /// requester hears `unavailable` at once rather than the queue growing.
        public static let maxPending = 8192
    }

    /// One stream message of this node's: its records, one append token each.
    public struct Append: Equatable, Sendable {
        public var tokens: [UInt64]
        public var msgId: String
        /// The stream sequence it must land at.
        public var position: UInt64
        public var after: UInt64
        public var records: [Record]
        var acked = false
        var answered = false
    }

    /// What a consumed message said, decoded by the shell (`records` nil: not Parley records).
    public struct Consumed: Equatable, Sendable {
        public var msgId: String?
        public var after: UInt64?
        public var records: [Record]?
        public init(msgId: String?, after: UInt64?, records: [Record]?) { self.msgId = msgId; self.after = after; self.records = records }
    }

    public enum Origin: Equatable, Sendable {
        /// This node's appends, one token per record stored (the marker has none).
        case ours([UInt64])
        /// Valid records this node did not write (or no longer waits for).
        case foreign
        /// Not part of the chain: only the marker is stored.
        case filler
    }

    public enum Output: Equatable, Sendable {
        /// Publish with `Nats-Expected-Last-Sequence: position - 1`.
        case publish(Append)
        /// Append these records to the local copy (offsets set: the next ones; a `CopyMarker`
        /// last), the copy of stream message `streamSeq`, then act on `origin`.
        case store([Record], streamSeq: UInt64, Origin)
        /// This append did not land (and will not be waited for): the requester retries.
        case failed(token: UInt64)
        /// Ask JetStream for the stream's last sequence; answer with `end(_:)` or `endUnknown()`.
        case queryEnd
        /// The consumer missed something: make it again from this sequence.
        case resetConsumer(from: UInt64)
        case role(Role)
    }

    public let node: String
    public private(set) var role: Role = .follower
    /// The highest stream sequence in the local copy.
    public private(set) var applied: UInt64
    /// The local copy's last offset (that of the marker of `applied`).
    public private(set) var copyTip: UInt64
    /// The sequence of the last valid record (0: none yet).
    public private(set) var lastValid: UInt64
    public private(set) var term: UInt64 = 0
    public private(set) var inflight: [Append] = []
    /// Appends waiting for the next `flush`.
    public private(set) var pending: [(token: UInt64, record: Record)] = []
    private var leaseHeld = false
    private var endTarget: UInt64?
    private var endAsked = false
    private var counter: UInt64 = 0
    private var nextPosition: UInt64 = 0
    private var chainTip: UInt64 = 0
    /// Conversations' last sequences among the valid records applied since start; before that,
    /// `knownSequence` (the local copy) says.
    private var sequences: [ConversationID: UInt64] = [:]
    private let knownSequence: (ConversationID) -> UInt64

    public init(node: String, applied: UInt64, lastValid: UInt64, copyTip: UInt64,
                knownSequence: @escaping (ConversationID) -> UInt64 = { _ in 0 }) {
        self.node = node
        self.applied = applied
        self.lastValid = lastValid
        self.copyTip = copyTip
        self.knownSequence = knownSequence
    }

    /// The conversations' new last sequences if every record of `records`, in order, is its
    /// conversation's next; nil if one is not.
    func fit(_ records: [Record]) -> [ConversationID: UInt64]? {
        var scratch: [ConversationID: UInt64] = [:]
        for r in records where !r.conversation.isNone && r.sequence > 0 {
            let last = scratch[r.conversation] ?? sequences[r.conversation] ?? knownSequence(r.conversation)
            guard r.sequence == last + 1 else { return nil }
            scratch[r.conversation] = r.sequence
        }
        return scratch
    }

    /// The copy of stream message `seq`: `records` (valid: `took` their sequences) at the next
    /// offsets, then its marker.
    private mutating func place(_ records: [Record], seq: UInt64, took: [ConversationID: UInt64]?) -> [Record] {
        var out: [Record] = []
        out.reserveCapacity(records.count + 1)
        if let took {
            sequences.merge(took) { _, new in new }
            for var r in records {
                copyTip += 1
                r.offset = copyTip
                out.append(r)
            }
            lastValid = seq
        }
        applied = seq
        copyTip += 1
        out.append(CopyMarker.record(offset: copyTip, streamSeq: seq, lastValid: lastValid))
        return out
    }

    // MARK: inputs

    /// Queues a record for the next `flush` (the shell calls it once the current batch of work is in).
    public mutating func append(token: UInt64, _ record: Record) -> [Output] {
        guard role == .writer, pending.count < Batching.maxPending else { return [.failed(token: token)] }
        pending.append((token, record))
        return []
    }

    /// Publishes what is pending, as few stream messages as the limits allow, while fewer than
    /// `Batching.maxInflight` are in flight.
    public mutating func flush() -> [Output] {
        guard role == .writer else { return failPending() }
        var out: [Output] = []
        var i = 0
        while i < pending.count, inflight.count < Batching.maxInflight {
            var tokens: [UInt64] = [], records: [Record] = [], bytes = 0
            while i < pending.count, records.count < Batching.maxRecords {
                let size = RecordCodec.encodedSize(pending[i].record)
                if !records.isEmpty, bytes + size > Batching.maxBytes { break }
                tokens.append(pending[i].token)
                records.append(pending[i].record)
                bytes += size
                i += 1
            }
            counter += 1
            let a = Append(tokens: tokens, msgId: "\(node).\(term).\(counter)", position: nextPosition, after: chainTip, records: records)
            nextPosition += 1
            chainTip = a.position
            inflight.append(a)
            out.append(.publish(a))
        }
        pending.removeFirst(i)
        return out
    }

    public mutating func pubAck(msgId: String, seq: UInt64) -> [Output] {
        guard let i = inflight.firstIndex(where: { $0.msgId == msgId }) else { return [] }  // settled already
        inflight[i].answered = true
        guard seq == inflight[i].position, seq > applied else {
            // Stored somewhere else than fenced for (a duplicate of an earlier try): the stream decides.
            return suspend()
        }
        inflight[i].acked = true
        var out = drain()
        out += settle()
        out += flush()
        return out
    }

    /// A publish was refused, timed out, or could not be sent.
    public mutating func publishFailed(msgId: String) -> [Output] {
        guard let i = inflight.firstIndex(where: { $0.msgId == msgId }) else { return [] }
        inflight[i].answered = true
        return suspend()
    }

    public mutating func consumed(seq: UInt64, _ m: Consumed) -> [Output] {
        guard seq > applied else { return [] }
        guard seq == applied + 1 else { return [.resetConsumer(from: applied + 1)] }
        var out: [Output] = []
        let took = m.after == lastValid ? m.records.flatMap(fit) : nil
        if took != nil, let head = inflight.first, head.msgId == m.msgId {
            inflight.removeFirst()
            out.append(.store(place(head.records, seq: seq, took: took), streamSeq: seq, .ours(head.tokens)))
        } else if took != nil, let records = m.records {
            out.append(.store(place(records, seq: seq, took: took), streamSeq: seq, .foreign))
            if !inflight.isEmpty || role == .writer {
                // Someone else extended the chain: nothing of ours in flight can follow it.
                out += failAll()
                out += suspend()
            }
        } else {
            out.append(.store(place([], seq: seq, took: nil), streamSeq: seq, .filler))
            if let head = inflight.first, head.position <= seq {
                out += failAll()
                out += suspend()
            }
        }
        out += drain()
        out += settle()
        out += flush()
        return out
    }

    /// The stream's last sequence, as JetStream said after the question was asked.
    public mutating func end(_ lastSeq: UInt64) -> [Output] {
        endAsked = false
        guard role == .catchingUp || role == .suspended else { return [] }
        endTarget = lastSeq
        return settle()
    }

    public mutating func endUnknown() -> [Output] {
        endAsked = false
        return []
    }

    public mutating func leaseGained(term: UInt64) -> [Output] {
        leaseHeld = true
        self.term = term
        guard role == .follower else { return [] }
        role = .catchingUp
        endTarget = nil
        return [.role(.catchingUp)] + askEnd()
    }

    public mutating func leaseLost() -> [Output] {
        leaseHeld = false
        switch role {
        case .follower, .suspended: return []
        case .catchingUp:
            role = .follower
            return [.role(.follower)]
        case .writer:
            return suspend()
        }
    }

    /// Periodically: asks again what was not answered.
    public mutating func tick() -> [Output] {
        guard role == .catchingUp || role == .suspended, endTarget == nil else { return [] }
        return askEnd()
    }

    // MARK: internals

    /// Settles acked appends at the head once they are next in the local copy.
    private mutating func drain() -> [Output] {
        var out: [Output] = []
        while let head = inflight.first, head.acked, head.position == applied + 1 {
            inflight.removeFirst()
            guard let took = fit(head.records) else {
                // Stored, but a record is not its conversation's next: filler for everyone, and ours failed.
                out.append(.store(place([], seq: head.position, took: nil), streamSeq: head.position, .filler))
                out += head.tokens.map { .failed(token: $0) }
                out += failAll()
                out += suspend()
                break
            }
            out.append(.store(place(head.records, seq: head.position, took: took), streamSeq: head.position, .ours(head.tokens)))
        }
        return out
    }

    private mutating func failAll() -> [Output] {
        let out = inflight.flatMap { $0.tokens.map { Output.failed(token: $0) } }
        inflight = []
        return out
    }

    private mutating func failPending() -> [Output] {
        let out = pending.map { Output.failed(token: $0.token) }
        pending = []
        return out
    }

    private mutating func suspend() -> [Output] {
        var out = failPending()
        if role == .writer {
            role = .suspended
            out.append(.role(.suspended))
        }
        endTarget = nil
        return out + askEnd()
    }

    private mutating func askEnd() -> [Output] {
        guard role == .catchingUp || role == .suspended, endTarget == nil, !endAsked,
              inflight.allSatisfy(\.answered) else { return [] }
        endAsked = true
        return [.queryEnd]
    }

    /// Catching up or suspended, with the end applied: what is still in flight did not land by
    /// then; write (lease held) or follow.
    private mutating func settle() -> [Output] {
        guard role == .catchingUp || role == .suspended else { return [] }
        guard let target = endTarget else { return askEnd() }
        guard applied >= target else { return [] }
        var out = failAll()
        endTarget = nil
        if leaseHeld {
            role = .writer
            nextPosition = applied + 1
            chainTip = lastValid
        } else {
            role = .follower
        }
        out.append(.role(role))
        return out
    }
}

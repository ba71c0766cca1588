import ParleyLog

/// The replicated log's decisions, free of I/O: which stream messages count, which of this node's
/// appends landed, when this node may write. The shell (`ClusterLog`) feeds it what JetStream says
/// and carries out what it returns.
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

    public struct Append: Equatable, Sendable {
        public var token: UInt64
        public var msgId: String
        /// The stream sequence it must land at.
        public var position: UInt64
        public var after: UInt64
        public var record: Record
        var acked = false
        var answered = false
    }

    /// What a consumed message said, decoded by the shell (`record` nil: not a Parley record).
    public struct Consumed: Equatable, Sendable {
        public var msgId: String?
        public var after: UInt64?
        public var record: Record?
        public init(msgId: String?, after: UInt64?, record: Record?) { self.msgId = msgId; self.after = after; self.record = record }
    }

    public enum Origin: Equatable, Sendable {
        /// This node's append `token`.
        case ours(UInt64)
        /// A valid record this node did not write (or no longer waits for).
        case foreign
        /// Not part of the chain: kept as a no-op so local offsets stay stream sequences.
        case filler
    }

    public enum Output: Equatable, Sendable {
        /// Publish with `Nats-Expected-Last-Sequence: position - 1`.
        case publish(Append)
        /// Put this record into the local copy at `seq` (always the next one), then act on `origin`.
        case store(Record, seq: UInt64, Origin)
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
    /// The sequence of the last valid record (0: none yet).
    public private(set) var lastValid: UInt64
    public private(set) var term: UInt64 = 0
    public private(set) var inflight: [Append] = []
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

    public init(node: String, applied: UInt64, lastValid: UInt64, knownSequence: @escaping (ConversationID) -> UInt64 = { _ in 0 }) {
        self.node = node
        self.applied = applied
        self.lastValid = lastValid
        self.knownSequence = knownSequence
    }

    func fits(_ r: Record) -> Bool {
        r.conversation.isNone || r.sequence == 0 || r.sequence == (sequences[r.conversation] ?? knownSequence(r.conversation)) + 1
    }

    private mutating func took(_ r: Record) {
        if !r.conversation.isNone, r.sequence > 0 { sequences[r.conversation] = r.sequence }
    }

    // MARK: inputs

    public mutating func append(token: UInt64, _ record: Record) -> [Output] {
        guard role == .writer else { return [.failed(token: token)] }
        counter += 1
        let a = Append(token: token, msgId: "\(node).\(term).\(counter)", position: nextPosition, after: chainTip, record: record)
        nextPosition += 1
        chainTip = a.position
        inflight.append(a)
        return [.publish(a)]
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
        let valid = m.record.map(fits) == true && m.after == lastValid
        if valid, let r = m.record { took(r) }
        if valid, let head = inflight.first, head.msgId == m.msgId {
            inflight.removeFirst()
            out.append(.store(head.record, seq: seq, .ours(head.token)))
        } else if valid, var r = m.record {
            r.offset = seq
            out.append(.store(r, seq: seq, .foreign))
            if !inflight.isEmpty || role == .writer {
                // Someone else extended the chain: nothing of ours in flight can follow it.
                out += failAll()
                out += suspend()
            }
        } else {
            out.append(.store(Record(type: .noop, offset: seq, payload: []), seq: seq, .filler))
            if let head = inflight.first, head.position <= seq {
                out += failAll()
                out += suspend()
            }
        }
        applied = seq
        if valid { lastValid = seq }
        out += drain()
        out += settle()
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
            applied = head.position
            var r = head.record
            r.offset = head.position
            guard fits(r) else {
                // Stored, but not the conversation's next: filler for everyone, and ours failed.
                out.append(.store(Record(type: .noop, offset: head.position, payload: []), seq: head.position, .filler))
                out.append(.failed(token: head.token))
                out += failAll()
                out += suspend()
                break
            }
            took(r)
            lastValid = head.position
            out.append(.store(r, seq: head.position, .ours(head.token)))
        }
        return out
    }

    private mutating func failAll() -> [Output] {
        let out = inflight.map { Output.failed(token: $0.token) }
        inflight = []
        return out
    }

    private mutating func suspend() -> [Output] {
        var out: [Output] = []
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

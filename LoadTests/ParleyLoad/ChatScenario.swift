import Dispatch
import Foundation
import HeapModule
import Histogram
import ParleyClient
import ParleyTransport

/// What one `chat` (or `reconnect`) run does.
struct ChatPlan {
    var dialer: Dialer
    var url: WebSocketURL { dialer.url }
    var customers: Int
    var agents: Int
    /// Messages per second per customer.
    var ratePerCustomer: Double
    var jitter: Double
    /// Share of customer messages an agent answers (at once, on receipt).
    var replyRatio: Double
    var textBytes: Int
    var agentCapacity: Int
    var runId: String
    /// Whether customers have an order (put by the tool) that `conversation.created` must carry.
    var withOrders: Bool
    /// Reconnect storm: drops per second, how long a dropped user stays away, agents too.
    var dropsPerSecond: Double = 0
    var downMs: Int = 1000
    var dropAgents = false

    func userId(_ role: ChatUser.Role, _ i: Int) -> String { "\(runId)-\(role == .customer ? "c" : "a")\(i)" }
}

/// Counts and latencies gathered on one client loop (loop-confined: no locks on the hot path).
final class ChatLoopStats {
    /// Measured window only (between `setMeasuring(true)` and `setMeasuring(false)`).
    var ack = latencyHistogram(), c2a = latencyHistogram(), a2c = latencyHistogram(), resume = latencyHistogram()
    var measuring = false
    /// Every delivery (both directions) since the progress display last took it.
    var interval = latencyHistogram()

    // Monotonic totals (the driver takes differences).
    var sent: UInt64 = 0
    var acked: UInt64 = 0
    var deliveredC2A: UInt64 = 0
    var deliveredA2C: UInt64 = 0
    var live = 0
    var assigned = 0
    var agentsReady = 0
    var resolved = 0
    var reconnects = 0
    var resumed = 0

    /// Requests answered `unavailable` (nothing stored: a cluster failing over) and sent again.
    var retriedUnavailable: UInt64 = 0
    // Trouble, counted from the start.
    var errorFrames: UInt64 = 0
    var unexpectedCloses: UInt64 = 0
    var connectFailures: UInt64 = 0
    var gaps: UInt64 = 0
    var duplicates: UInt64 = 0
    var duplicateMessages: UInt64 = 0
    var resumeFailed: UInt64 = 0
    var orderMismatches: UInt64 = 0
    var malformed: UInt64 = 0
    var firstErrors: [String] = []

    func note(_ what: String) { if firstErrors.count < 8 { firstErrors.append(what) } }

    @inline(__always) func record(_ h: inout Histogram<UInt64>, _ ns: UInt64) { h.recordClamped(ns) }
}

/// One simulated person: a customer who opens a conversation and sends at a fixed rate, or an
/// agent who answers. Owns at most one WebSocket at a time; lives on one loop.
final class ChatUser: WebSocketClientDelegate {
    enum Role { case customer, agent }
    enum Phase { case down, connecting, hello, live }

    /// What one user knows of one conversation it receives.
    final class Track {
        /// The next sequence number this user must receive (0: not known yet).
        var next: UInt64 = 0
        /// Sequence numbers of this user's own messages, as acknowledged.
        var ackedSeqs: [UInt64] = []
        /// Message numbers of the other side already delivered (duplicate detection by clientMsgId).
        var seenPeer = Set<UInt64>()
        var mine = false

        enum Admission: Equatable { case inOrder, gap(missing: UInt64), startedLate, duplicateOrReordered }

        /// Checks one sequenced event against what this user received before: the next seq is
        /// the only good one (the first seen must be 1 unless a welcome or reply said where to start).
        func admit(_ seq: UInt64) -> Admission {
            if next == 0 {
                next = seq + 1
                return seq == 1 ? .inOrder : .startedLate
            }
            if seq == next { next = seq + 1; return .inOrder }
            if seq > next {
                let missing = seq - next
                next = seq + 1
                return .gap(missing: missing)
            }
            return .duplicateOrReordered
        }
    }

    let role: Role
    let index: Int
    let id: String
    let token: String
    unowned let loop: Loop
    /// Strong on purpose: callbacks still in flight on the loops when the run ends must find it.
    let scenario: ChatScenario
    let stats: ChatLoopStats
    let slot: Int32

    private(set) var phase = Phase.down
    private var client: WebSocketClient?
    private var dropping = false
    private var reconnectStartNs: UInt64 = 0
    var tracks: [ConversationID: Track] = [:]

    // Customer
    private(set) var conversation: ConversationID?
    private(set) var assignedAgent: String?
    private var pacer: Pacer?
    // Both: own messages not yet acknowledged, by number (their due time and conversation).
    private var pending: [UInt64: (due: UInt64, conversation: ConversationID)] = [:]
    private var nextNumber: UInt64 = 1
    private var rng: SplitMix64
    private var everWelcomed = false
    private var agentReady = false

    init(role: Role, index: Int, token: String, loop: Loop, slot: Int32, scenario: ChatScenario, stats: ChatLoopStats) {
        self.role = role
        self.index = index
        self.id = scenario.plan.userId(role, index)
        self.token = token
        self.loop = loop
        self.slot = slot
        self.scenario = scenario
        self.stats = stats
        rng = SplitMix64(seed: UInt64(index) &* 0x2545_F491_4F6C_DD1D ^ (role == .agent ? 0xA6E7 : 0xC057))
    }

    var pendingCount: Int { pending.count }
    /// Targets moved on from (a dead node): added to the slot.
    private var moves = 0

    // MARK: connection life

    func connect() {
        guard !scenario.stopping(loop.index) else { return }
        phase = .connecting
        let plan = scenario.plan
        do {
            // After a failed connect or an unexpected close, the next target (a cluster's next node).
            client = try plan.dialer.connect(on: loop, slot: index + (role == .agent ? 7 : 0) + moves, subprotocols: ["parley.v1"], delegate: self)
        } catch {
            moves += 1
            stats.connectFailures += 1
            stats.note("connect: \(error)")
            phase = .down
            retry(afterMs: 1000)
        }
    }

    private func retry(afterMs ms: Int) {
        loop.queue.asyncAfter(deadline: .now() + .milliseconds(ms)) { [weak self] in
            guard let self, self.phase == .down else { return }
            self.connect()
        }
    }

    /// Drops the connection abruptly (no close frame) and comes back after `downMs`, resuming.
    func drop(downMs: Int) {
        guard phase == .live, let c = client else { return }
        dropping = true
        stats.reconnects += 1
        c.connection.close(.reset)
        loop.queue.asyncAfter(deadline: .now() + .milliseconds(downMs)) { [weak self] in
            guard let self, self.phase == .down else { return }
            self.reconnectStartNs = monotonicNs()
            self.connect()
        }
    }

    func close() {
        if let c = client { c.close() }
    }

    /// The run is over: no more callbacks into this user.
    func detach() {
        client?.delegate = nil
        pacer = nil
    }

    func clientOpened(_ client: WebSocketClient) {
        phase = .hello
        var resume: [ConversationID: UInt64] = [:]
        for (cid, t) in tracks where t.next > 0 { resume[cid] = t.next - 1 }
        send(.hello(token: token, resume: resume, unknownResume: []))
    }

    func clientClosed(_ client: WebSocketClient, code: UInt16?, error: String?) {
        let wasLive = phase == .live
        phase = .down
        self.client = nil
        if wasLive { stats.live -= 1 }
        if dropping { dropping = false; return }
        if scenario.stopping(loop.index) { return }
        stats.unexpectedCloses += 1
        moves += 1
        stats.note("\(id): closed \(code.map { "with \($0)" } ?? "") \(error ?? "")")
        retry(afterMs: 500)
    }

    func client(_ client: WebSocketClient, binary: UnsafeRawBufferPointer) {
        stats.malformed += 1
        stats.note("\(id): binary frame from the server")
    }

    // MARK: frames in

    func client(_ client: WebSocketClient, text: UnsafeRawBufferPointer) {
        let now = monotonicNs()
        let frame: ServerFrame
        switch ServerFrames.decode(text) {
        case .success(let f): frame = f
        case .failure(let e):
            stats.malformed += 1
            stats.note("\(id): unreadable frame (\(e)): \(String(decoding: text.prefix(200), as: UTF8.self))")
            return
        }
        switch frame {
        case .reply(.ack(let ref, _, let seq, _, let clientMsgId)): ack(ref: ref, seq: seq, clientMsgId: clientMsgId, now)
        case .event(let e): event(e, now)
        case .welcome(let w): welcome(w, now)
        case .reply(.opened(_, let v)): opened(v)
        case .reply(.error(let ref, let code, let message)):
            if code == .unavailable, let ref { return retry(ref) }
            stats.errorFrames += 1
            stats.note("\(id): error \(code.rawValue): \(message)")
        case .resumeFailed(let c, let reason):
            stats.resumeFailed += 1
            stats.note("\(id): resume_failed \(c) \(reason)")
        case .history, .typing, .read, .presence, .queue:
            break  // nothing to check here
        }
    }

    private func welcome(_ w: Welcome, _ now: UInt64) {
        phase = .live
        stats.live += 1
        for v in w.conversations {
            let t = track(v.id)
            if t.next == 0 { t.next = v.lastSeq + 1 }
            if role == .customer, conversation == nil, v.status != .resolved { conversation = v.id }
        }
        if everWelcomed {
            stats.resumed += 1
            if stats.measuring, reconnectStartNs > 0 { stats.record(&stats.resume, now &- reconnectStartNs) }
        }
        switch role {
        case .customer:
            if conversation == nil { openConversation() }
        case .agent:
            send(ref: "status", .agentStatus(.available))
        }
        everWelcomed = true
        // Whatever was due while away, and whatever was sent but not acknowledged, goes now, in
        // order, with its original clientMsgId: the server answers a resend with the first ack.
        for n in pending.keys.sorted() { transmit(n) }
    }

    private func openConversation() {
        send(ref: "open", .open(order: scenario.plan.withOrders ? .last : .none))
    }

    private func opened(_ v: ConversationView) {
        let t = track(v.id)
        if t.next == 0 { t.next = v.lastSeq + 1 }
        conversation = v.id
        if v.status == .assigned, assignedAgent == nil, let a = v.agent { assigned(to: a.id) }
    }

    private func track(_ cid: ConversationID) -> Track {
        if let t = tracks[cid] { return t }
        let t = Track()
        tracks[cid] = t
        return t
    }

    private func event(_ e: SequencedEvent, _ now: UInt64) {
        let cid = e.conversation
        let t = track(cid)
        let expected = t.next
        switch t.admit(e.seq) {
        case .inOrder: break
        case .startedLate:
            stats.gaps += 1
            stats.note("\(id): \(cid) started at seq \(e.seq)")
        case .gap(let missing):
            stats.gaps += missing
            stats.note("\(id): \(cid) gap: expected \(expected), got \(e.seq)")
        case .duplicateOrReordered:
            stats.duplicates += 1
            stats.note("\(id): \(cid) duplicate or reordered: expected \(expected), got \(e.seq)")
            return
        }
        switch e.event {
        case .message(let from, let text, let clientMsgId):
            guard from.id != id else { return }
            guard let n = number(clientMsgId) else { stats.malformed += 1; return }
            if !t.seenPeer.insert(n).inserted {
                stats.duplicateMessages += 1
                stats.note("\(id): \(cid) message \(from.id)/\(n) delivered twice")
                return
            }
            var text = text
            if let due = text.withUTF8({ ChatText.due(UnsafeRawBufferPointer($0)) }) {
                let lat = now &- due
                switch role {
                case .agent:
                    stats.deliveredC2A += 1
                    if stats.measuring { stats.record(&stats.c2a, lat) }
                case .customer:
                    stats.deliveredA2C += 1
                    if stats.measuring { stats.record(&stats.a2c, lat) }
                }
                stats.record(&stats.interval, lat)
            }
            if role == .agent, t.mine, scenario.sending(loop.index),
               scenario.plan.replyRatio >= 1 || rng.nextUnit() < scenario.plan.replyRatio {
                newMessage(in: cid, due: now)
            }
        case .assigned(let agent):
            if role == .customer { assigned(to: agent.id) } else if agent.id == id { t.mine = true }
        case .created(_, let order):
            if role == .customer, scenario.plan.withOrders, order?.id != OrderSeeder.orderId(for: id) {
                stats.orderMismatches += 1
                stats.note("\(id): conversation.created carries order \(order?.id ?? "null")")
            }
        case .transferred(let from, let to):
            if role == .agent, from.id == id { t.mine = false }
            if role == .customer { assignedAgent = to?.id }
        case .orderAttached, .resolved, .csat:
            break
        }
    }

    private func assigned(to agent: String) {
        let first = assignedAgent == nil && pacer == nil
        assignedAgent = agent
        guard first, role == .customer else { return }
        stats.assigned += 1
        let p = Pacer(ratePerSecond: scenario.plan.ratePerCustomer, jitter: scenario.plan.jitter, startNs: monotonicNs(),
                      seed: rng.next())
        pacer = p
        scenario.scheduler(loop.index).add(p.nextDueNs, slot)
    }

    private func ack(ref: String?, seq: UInt64?, clientMsgId: String?, _ now: UInt64) {
        if let cm = clientMsgId {
            guard let n = number(cm), let p = pending.removeValue(forKey: n) else { return }
            stats.acked += 1
            if stats.measuring { stats.record(&stats.ack, now &- p.due) }
            if let seq { track(p.conversation).ackedSeqs.append(seq) }
            return
        }
        if ref == "status" {
            if role == .agent, !agentReady { agentReady = true; stats.agentsReady += 1 }
        } else if ref == "resolve" {
            stats.resolved += 1
        }
    }

    /// Nothing was stored (a cluster failing over): the same request again shortly, so a message
    /// keeps its clientMsgId and is stored once.
    private func retry(_ ref: String) {
        stats.retriedUnavailable += 1
        loop.queue.asyncAfter(deadline: .now() + .milliseconds(50)) { [weak self] in
            guard let self, self.phase == .live else { return }
            if ref == "open", self.conversation == nil {
                self.openConversation()
            } else if ref.hasPrefix("m"), let n = UInt64(ref.dropFirst()) {
                self.transmit(n)
            }
        }
    }

    // MARK: frames out

    /// One request, encoded by the protocol's one client-frame encoder.
    private func send(ref: String? = nil, _ r: ClientRequest) {
        guard let client else { return }
        ClientFrames.encode(ref: ref, r).withUnsafeBytes { client.sendText($0) }
    }

    /// The pacer says a message is due (the scheduler calls this on the loop).
    func due(_ dueNs: UInt64) -> UInt64? {
        guard var p = pacer, let cid = conversation else { return nil }
        _ = p.take()
        let next = p.nextDueNs
        pacer = p
        newMessage(in: cid, due: dueNs)
        return next
    }

    private func newMessage(in cid: ConversationID, due: UInt64) {
        let n = nextNumber
        nextNumber += 1
        pending[n] = (due, cid)
        stats.sent += 1
        if phase == .live { transmit(n) }
    }

    private func transmit(_ n: UInt64) {
        guard let p = pending[n] else { return }
        let text = ChatText.make(due: p.due, bytes: scenario.plan.textBytes)
        send(ref: "m\(n)", .send(p.conversation, clientMsgId: (role == .customer ? "c" : "a") + String(n), text: text))
    }

    /// Ends the run for this agent: resolves every conversation assigned to it.
    func resolveAll() -> Int {
        guard role == .agent, phase == .live else { return 0 }
        var n = 0
        for (cid, t) in tracks where t.mine {
            send(ref: "resolve", .resolve(cid))
            n += 1
        }
        return n
    }

    /// The number of one of the tool's own clientMsgIds (`c17`, `a4`).
    private func number(_ clientMsgId: String) -> UInt64? {
        var cm = clientMsgId
        return cm.withUTF8 { Self.number(UnsafeRawBufferPointer($0)) }
    }

    private static func number(_ cm: UnsafeRawBufferPointer) -> UInt64? {
        guard cm.count >= 2 else { return nil }
        var n: UInt64 = 0
        for c in cm.dropFirst() {
            guard c >= 48, c <= 57 else { return nil }
            n = n &* 10 &+ UInt64(c - 48)
        }
        return n
    }
}

/// The text of a load message: `L` + the due time (16 hex digits, this process's monotonic clock)
/// + padding to the requested size. Receivers read the due time back to time the delivery.
enum ChatText {
    static func make(due: UInt64, bytes: Int) -> String {
        var out = [UInt8](repeating: UInt8(ascii: "x"), count: max(17, bytes))
        out[0] = UInt8(ascii: "L")
        let hex = Array("0123456789abcdef".utf8)
        var t = due
        for i in stride(from: 16, through: 1, by: -1) { out[i] = hex[Int(t & 15)]; t >>= 4 }
        return String(decoding: out, as: UTF8.self)
    }

    static func due(_ text: UnsafeRawBufferPointer) -> UInt64? {
        guard text.count >= 17, text[0] == UInt8(ascii: "L") else { return nil }
        var v: UInt64 = 0
        for i in 1...16 {
            let c = text[i]
            let d: UInt8
            switch c {
            case 48...57: d = c - 48
            case 97...102: d = c - 87
            default: return nil
            }
            v = v << 4 | UInt64(d)
        }
        return v
    }
}

/// Fires each customer's sends at their due times on one loop: a min-heap of due times and one
/// timer re-armed for the earliest.
final class SendScheduler {
    struct Due: Comparable {
        var ns: UInt64
        var slot: Int32
        static func < (a: Due, b: Due) -> Bool { a.ns < b.ns }
    }

    private var heap = Heap<Due>()
    private let timer: DispatchSourceTimer
    private var armedFor: UInt64 = .max
    var users: [ChatUser] = []
    var enabled = true

    init(queue: DispatchQueue) {
        timer = DispatchSource.makeTimerSource(flags: .strict, queue: queue)
        timer.setEventHandler { [unowned self] in self.fire() }
        timer.schedule(deadline: .distantFuture, leeway: .nanoseconds(0))
        timer.resume()
    }

    func add(_ ns: UInt64, _ slot: Int32) {
        heap.insert(Due(ns: ns, slot: slot))
        arm()
    }

    private func arm() {
        guard let first = heap.min, first.ns < armedFor else { return }
        armedFor = first.ns
        let now = monotonicNs()
        let wait = first.ns > now ? first.ns - now : 0
        timer.schedule(deadline: .now() + .nanoseconds(Int(min(wait, 10_000_000_000))), leeway: .nanoseconds(0))
    }

    private func fire() {
        armedFor = .max
        let now = monotonicNs()
        while let first = heap.min, first.ns <= now {
            let d = heap.removeMin()
            guard enabled else { continue }
            if let next = users[Int(d.slot)].due(d.ns) { heap.insert(Due(ns: next, slot: d.slot)) }
        }
        if enabled { arm() } else { heap = Heap() }
    }

    func cancel() { timer.cancel() }
}

/// The users of a run spread over the client loops, and what the driver asks of them.
final class ChatScenario {
    let plan: ChatPlan
    let group: LoopGroup
    private var stats: [ChatLoopStats]
    private var schedulers: [SendScheduler]
    private var stoppingFlags: [Bool]
    private(set) var customers: [ChatUser] = []
    private(set) var agents: [ChatUser] = []

    init(plan: ChatPlan, loops: Int, customerTokens: [String], agentTokens: [String]) {
        self.plan = plan
        group = LoopGroup(count: loops)
        stats = group.loops.map { _ in ChatLoopStats() }
        schedulers = group.loops.map { SendScheduler(queue: $0.queue) }
        stoppingFlags = group.loops.map { _ in false }
        for (i, t) in agentTokens.enumerated() { agents.append(makeUser(.agent, i, t)) }
        for (i, t) in customerTokens.enumerated() { customers.append(makeUser(.customer, i, t)) }
    }

    private func makeUser(_ role: ChatUser.Role, _ i: Int, _ token: String) -> ChatUser {
        let loop = group.loops[(role == .agent ? i : i + plan.agents) % group.loops.count]
        let s = schedulers[loop.index]
        let u = ChatUser(role: role, index: i, token: token, loop: loop, slot: Int32(s.users.count), scenario: self, stats: stats[loop.index])
        s.users.append(u)
        return u
    }

    // Loop-confined accessors for the users.
    func stopping(_ loop: Int) -> Bool { stoppingFlags[loop] }
    func sending(_ loop: Int) -> Bool { schedulers[loop].enabled }
    func scheduler(_ loop: Int) -> SendScheduler { schedulers[loop] }

    // MARK: driver side (any thread but the loops')

    func connect(_ users: ArraySlice<ChatUser>) {
        for u in users { u.loop.queue.async { u.connect() } }
    }

    /// Runs `body` on every loop with its stats and waits.
    func onLoops(_ body: (Int, ChatLoopStats) -> Void) {
        for l in group.loops { l.queue.sync { body(l.index, stats[l.index]) } }
    }

    func setMeasuring(_ on: Bool) { onLoops { _, s in s.measuring = on } }

    func stopSending() { onLoops { i, _ in schedulers[i].enabled = false } }

    func drop(_ u: ChatUser) { u.loop.queue.async { u.drop(downMs: self.plan.downMs) } }

    /// Own messages not yet acknowledged, over all users.
    func pendingAcks() -> Int {
        var n = 0
        onLoops { i, _ in for u in schedulers[i].users { n += u.pendingCount } }
        return n
    }

    /// Asks every agent to resolve its conversations; returns how many were asked for.
    func resolveAll() -> Int {
        var n = 0
        onLoops { i, _ in for u in schedulers[i].users where u.role == .agent { n += u.resolveAll() } }
        return n
    }

    func closeAll() {
        onLoops { i, _ in
            stoppingFlags[i] = true
            for u in schedulers[i].users { u.close() }
        }
    }

    func shutdown() {
        onLoops { i, _ in
            schedulers[i].cancel()
            for u in schedulers[i].users { u.detach() }
        }
    }

    /// Acknowledged messages that the other side has not received (the run's "lost"), from what
    /// every user saw. Delivery is checked gapless per user and conversation as it happens, so a
    /// receiver that got through seq N got every acked message up to N exactly once.
    func lostMessages() -> (customerToAgent: Int, agentToCustomer: Int, unassigned: Int) {
        var received: [ConversationID: [String: UInt64]] = [:]  // conversation → user → last seq received
        var customerOf: [ConversationID: String] = [:]
        var acked: [(conv: ConversationID, role: ChatUser.Role, seqs: [UInt64], peer: String?)] = []
        onLoops { i, _ in
            for u in schedulers[i].users {
                if u.role == .customer, let c = u.conversation { customerOf[c] = u.id }
                for (cid, t) in u.tracks {
                    received[cid, default: [:]][u.id] = t.next > 0 ? t.next - 1 : 0
                    if !t.ackedSeqs.isEmpty { acked.append((cid, u.role, t.ackedSeqs, u.role == .customer ? u.assignedAgent : nil)) }
                }
            }
        }
        var c2a = 0, a2c = 0, unassigned = 0
        for a in acked {
            guard let peer = a.role == .customer ? a.peer : customerOf[a.conv] else { unassigned += a.seqs.count; continue }
            let through = received[a.conv]?[peer] ?? 0
            let lost = a.seqs.filter { $0 > through }.count
            if a.role == .customer { c2a += lost } else { a2c += lost }
        }
        return (c2a, a2c, unassigned)
    }

    /// Totals now. Only the progress display takes (and so resets) the interval latencies: the
    /// phases' own checks read counts and leave the latencies to it.
    func snapshot(takingLatencies: Bool = false) -> ChatSnapshot {
        var s = ChatSnapshot()
        onLoops { _, l in s.add(l, takingLatencies: takingLatencies) }
        return s
    }

    /// The measured histograms, merged over the loops.
    func histograms() -> (ack: Histogram<UInt64>, c2a: Histogram<UInt64>, a2c: Histogram<UInt64>, resume: Histogram<UInt64>) {
        var ack = latencyHistogram(), c2a = latencyHistogram(), a2c = latencyHistogram(), resume = latencyHistogram()
        onLoops { _, l in ack.add(l.ack); c2a.add(l.c2a); a2c.add(l.a2c); resume.add(l.resume) }
        return (ack, c2a, a2c, resume)
    }
}

/// Totals over the loops at one moment, plus the deliveries' latency since the previous snapshot.
struct ChatSnapshot {
    var sent: UInt64 = 0, acked: UInt64 = 0, deliveredC2A: UInt64 = 0, deliveredA2C: UInt64 = 0
    var live = 0, assigned = 0, agentsReady = 0, resolved = 0, reconnects = 0, resumed = 0
    var errorFrames: UInt64 = 0, unexpectedCloses: UInt64 = 0, connectFailures: UInt64 = 0, retriedUnavailable: UInt64 = 0
    var gaps: UInt64 = 0, duplicates: UInt64 = 0, duplicateMessages: UInt64 = 0, resumeFailed: UInt64 = 0
    var orderMismatches: UInt64 = 0, malformed: UInt64 = 0
    var firstErrors: [String] = []
    /// The deliveries' latencies since the last snapshot that took them (the progress display's).
    var interval = latencyHistogram()

    mutating func add(_ l: ChatLoopStats, takingLatencies: Bool) {
        sent += l.sent; acked += l.acked; deliveredC2A += l.deliveredC2A; deliveredA2C += l.deliveredA2C
        live += l.live; assigned += l.assigned; agentsReady += l.agentsReady; resolved += l.resolved
        reconnects += l.reconnects; resumed += l.resumed
        errorFrames += l.errorFrames; unexpectedCloses += l.unexpectedCloses; connectFailures += l.connectFailures
        retriedUnavailable += l.retriedUnavailable
        gaps += l.gaps; duplicates += l.duplicates; duplicateMessages += l.duplicateMessages; resumeFailed += l.resumeFailed
        orderMismatches += l.orderMismatches; malformed += l.malformed
        firstErrors += l.firstErrors.prefix(max(0, 8 - firstErrors.count))
        if takingLatencies {
            interval.add(l.interval)
            l.interval.reset()
        }
    }

    var delivered: UInt64 { deliveredC2A + deliveredA2C }
    var errors: UInt64 { errorFrames + unexpectedCloses + connectFailures + malformed }
    var violations: UInt64 { gaps + duplicates + duplicateMessages + resumeFailed + orderMismatches }
}

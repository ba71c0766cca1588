import ArgumentParser
import Foundation
import ParleyTransport

/// Options shared by `chat` and `reconnect`.
struct ChatOptions: ParsableArguments {
    @Option(help: "Customers (each opens one conversation).")
    var customers = 100
    @Option(help: "Agents (connected and available before the customers arrive).")
    var agents = 10
    @Option(help: "Messages per second per customer (open loop, from the schedule).")
    var rate: Double?
    @Option(help: "Messages per second over all customers (instead of --rate).")
    var totalRate: Double?
    @Option(help: "Jitter of the gaps between one customer's messages: 0 = fixed, 0.5 = each gap 50–150 % of the mean.")
    var jitter = 0.5
    @Option(help: "Share of customer messages an agent answers, at once (0…1).")
    var replyRatio = 1.0
    @Option(help: "Message text size in bytes (≥ 17: the due time travels in the text).")
    var size = 64
    @Option(help: "Conversations per agent (token claim; default: enough for every customer, at least 5).")
    var agentCapacity: Int?
    @Option(help: "Customer connects per second during ramp-up.")
    var connectRate = 2000.0
    @Option(help: "Seconds to wait for the drain after sending stops (acks and deliveries in flight).")
    var drain = 10.0
    @Option(help: "HS256 secret to mint client tokens locally (or PARLEY_JWT_SECRET).")
    var jwtSecret: String?
    @Option(help: "API key: tokens come from POST /v1/tokens when no secret is given, and orders are put with it (or PARLEY_API_KEY).")
    var apiKey: String?
    @Option(help: "The server's secrets.json (from its data dir) instead of --jwt-secret/--api-key.")
    var secrets: String?
    @Flag(help: "Put an order for every customer first (needs the API key); conversations must open on it.")
    var orders = false
    @Option(help: "Prefix of user ids (default: random, so runs do not share conversations).")
    var runId: String?
    func validate() throws {
        guard (1...1_000_000).contains(customers) else { throw ValidationError("--customers must be 1...1000000") }
        guard (1...100_000).contains(agents) else { throw ValidationError("--agents must be 1...100000") }
        guard (rate == nil) != (totalRate == nil) else { throw ValidationError("give exactly one of --rate (per customer) and --total-rate") }
        if let r = rate, !(r > 0 && r <= 100) { throw ValidationError("--rate must be within (0, 100] messages/s per customer (the server limits a session to 100/s)") }
        if let t = totalRate, !(t > 0 && t / Double(customers) <= 100) { throw ValidationError("--total-rate must be > 0 and at most 100/s per customer") }
        guard (0...1).contains(jitter) else { throw ValidationError("--jitter must be within [0, 1]") }
        guard (0...1).contains(replyRatio) else { throw ValidationError("--reply-ratio must be within [0, 1]") }
        guard (17...16_384).contains(size) else { throw ValidationError("--size must be 17...16384 (the server's text limit is 16 KiB)") }
        if let c = agentCapacity, !(1...100).contains(c) { throw ValidationError("--agent-capacity must be 1...100") }
        guard (customers + agents - 1) / agents <= 100 else {
            throw ValidationError("\(customers) customers need more than 100 conversations per agent (the most a token allows): add agents")
        }
        guard connectRate > 0, drain >= 0, drain <= 600 else { throw ValidationError("--connect-rate must be > 0 and --drain within [0, 600]") }
        if let r = runId, r.isEmpty || r.count > 32 || !r.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) {
            throw ValidationError("--run-id must be 1–32 letters, digits, - or _")
        }
        if orders, apiKey == nil, secrets == nil, ProcessInfo.processInfo.environment["PARLEY_API_KEY"] == nil {
            throw ValidationError("--orders needs the API key (--api-key, PARLEY_API_KEY or --secrets)")
        }
        if jwtSecret == nil, apiKey == nil, secrets == nil,
           ProcessInfo.processInfo.environment["PARLEY_JWT_SECRET"] == nil, ProcessInfo.processInfo.environment["PARLEY_API_KEY"] == nil {
            throw ValidationError("tokens need --jwt-secret, --api-key or --secrets (the server prints them on first start; they are in <data-dir>/secrets.json)")
        }
    }

    var perCustomerRate: Double { rate ?? (totalRate! / Double(customers)) }
    var capacity: Int { agentCapacity ?? max(5, (customers + agents - 1) / agents) }

    /// The secret and key in force: flags, then the secrets file, then the environment.
    func credentials() throws -> (jwtSecret: String?, apiKey: String?) {
        var j = jwtSecret, a = apiKey
        if let p = secrets {
            guard let d = FileManager.default.contents(atPath: p),
                  let o = try? JSONSerialization.jsonObject(with: d) as? [String: String] else { throw ValidationError("cannot read \(p)") }
            j = j ?? o["jwtSecret"]; a = a ?? o["apiKey"]
        }
        let env = ProcessInfo.processInfo.environment
        return (j ?? env["PARLEY_JWT_SECRET"], a ?? env["PARLEY_API_KEY"])
    }
}

struct Chat: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Customers and agents chatting on /v1/ws: ack and delivery latency, every delivery verified.",
        discussion: """
        Agents connect and go available; customers ramp up, open a conversation each (on the order the
        tool put for them with --orders) and, once assigned, send at a fixed rate with jitter; agents
        answer. Latency is measured from each message's scheduled time (no coordinated omission).
        Every delivery is checked: gapless, no duplicates, in order; after the drain every
        acknowledged message must have reached the other side. Exit status 2 when any check failed.
        """)

    @OptionGroup var chat: ChatOptions
    @OptionGroup var common: CommonOptions

    func run() throws {
        try ChatRun(chat: chat, common: common, scenario: "chat", drops: nil).run()
    }
}

struct Reconnect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "chat with a storm of abrupt disconnects: dropped users come back and resume from their last seq.",
        discussion: """
        During the measurement, --drops users per second lose their connection without a close frame,
        stay away --down-ms, reconnect with `resume` and resend what was not acknowledged (same
        clientMsgId). Verified: no gap, no duplicate, nothing acknowledged lost, across the resumes.
        Keep --down-ms under the server's --presence-grace, or agents' conversations are requeued.
        """)

    @OptionGroup var chat: ChatOptions
    @OptionGroup var common: CommonOptions
    @Option(help: "Disconnects per second during the measurement.")
    var drops = 10.0
    @Option(help: "Milliseconds a dropped user stays away before resuming.")
    var downMs = 500
    @Flag(help: "Drop agents too (not only customers).")
    var dropAgents = false

    func validate() throws {
        guard drops > 0, drops <= 10_000 else { throw ValidationError("--drops must be within (0, 10000] per second") }
        guard (0...60_000).contains(downMs) else { throw ValidationError("--down-ms must be 0...60000") }
    }

    func run() throws {
        try ChatRun(chat: chat, common: common, scenario: "reconnect", drops: (drops, downMs, dropAgents)).run()
    }
}

/// Everything a chat run measured.
struct ChatReport: Codable {
    var scenario: String
    var url: String
    var runId: String
    var startedAt: String
    var interrupted: Bool
    var customers: Int
    var agents: Int
    var agentCapacity: Int
    var ratePerCustomer: Double
    var targetMessagesPerSecond: Double
    var replyRatio: Double
    var textBytes: Int
    var orders: Bool
    var rampSeconds: Double
    var durationSeconds: Double
    var connected: Int
    var assigned: Int
    var sent: UInt64
    var acked: UInt64
    var deliveredCustomerToAgent: UInt64
    var deliveredAgentToCustomer: UInt64
    var messagesPerSecond: Double
    var latencyMs: [String: LatencySummary]
    var errors: [String: UInt64]
    /// Requests answered `unavailable` (nothing stored) and sent again: a cluster failing over.
    var retriedUnavailable: UInt64
    var violations: [String: UInt64]
    var lost: [String: Int]
    var reconnects: Int
    var resumed: Int
    var resolved: Int
    var toolCPUPercent: Double
    var serverCPUPercent: Double?
    var serverRSSBytes: UInt64?
    var toolRSSBytes: UInt64?
    var firstErrors: [String]
    var timeline: [TimelinePoint]

    var passed: Bool { violations.values.allSatisfy { $0 == 0 } && lost.values.allSatisfy { $0 == 0 } && errors.values.allSatisfy { $0 == 0 } }
}

/// The phases of a chat run: set-up, agents, ramp-up, warm-up, measurement (with drops), drain,
/// verification, resolve, close; then the summary and the files.
struct ChatRun {
    let chat: ChatOptions
    let common: CommonOptions
    let scenario: String
    let drops: (perSecond: Double, downMs: Int, agents: Bool)?

    func run() throws {
        Interrupt.install()
        let fdLimit = ProcessSetup.prepare(schedBatch: false)
        let users = chat.customers + chat.agents
        if users + 64 > fdLimit { throw ValidationError("the fd limit (\(fdLimit)) is below \(users) connections: raise it (ulimit -n)") }
        let target = common.target
        let runId = chat.runId ?? "load-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let started = ISO8601DateFormatter().string(from: Date())
        var plan = ChatPlan(dialer: try common.dialer(), customers: chat.customers, agents: chat.agents, ratePerCustomer: chat.perCustomerRate,
                            jitter: chat.jitter, replyRatio: chat.replyRatio, textBytes: chat.size, agentCapacity: chat.capacity,
                            runId: runId, withOrders: chat.orders)
        if let d = drops { plan.dropsPerSecond = d.perSecond; plan.downMs = d.downMs; plan.dropAgents = d.agents }

        // Set-up: tokens (and orders) before any WebSocket.
        let (secret, apiKey) = try chat.credentials()
        let source: TokenSource = secret.map { .local(secret: $0) } ?? .server(apiKey: apiKey!, host: common.restTarget.host, port: common.restTarget.port)
        let ttl = Int(common.warmup + common.duration + chat.drain) + 3600
        var requests = (0..<chat.agents).map { TokenSource.Request(sub: plan.userId(.agent, $0), role: "agent", capacity: plan.agentCapacity, ttlSeconds: ttl) }
        requests += (0..<chat.customers).map { TokenSource.Request(sub: plan.userId(.customer, $0), role: "customer", capacity: nil, ttlSeconds: ttl) }
        print("\(scenario)  \(target)  run \(runId): \(chat.customers) customers, \(chat.agents) agents (capacity \(plan.agentCapacity)), "
              + String(format: "%.3g msg/s per customer = %.0f msg/s", plan.ratePerCustomer, plan.ratePerCustomer * Double(chat.customers))
              + (chat.replyRatio > 0 ? String(format: " + %.0f%% answered", chat.replyRatio * 100) : ""))
        let tokens = try source.mint(requests)
        if chat.orders {
            try OrderSeeder.put(users: (0..<chat.customers).map { plan.userId(.customer, $0) }, apiKey: apiKey!, host: common.restTarget.host, port: common.restTarget.port)
        }

        let s = ChatScenario(plan: plan, loops: common.loops, customerTokens: Array(tokens[chat.agents...]), agentTokens: Array(tokens[..<chat.agents]))
        let progress = Progress()
        func sample() -> Sample {
            let x = s.snapshot(takingLatencies: true)
            return Sample(sent: x.sent, delivered: x.delivered, connections: x.live, errors: x.errors, violations: x.violations, interval: x.interval)
        }
        var interrupted = false
        // Nobody connected and a connection ended unexpectedly: the server is gone (the run has
        // failed), so the set-up waits below stop instead of running out their time.
        func serverGone() -> Bool { let x = s.snapshot(); return x.live == 0 && x.unexpectedCloses > 0 }

        // Agents first, available before any customer arrives.
        s.connect(s.agents[...])
        interrupted = !progress.run(phase: "agents", seconds: 30, interval: 0.2, sample: sample) { s.snapshot().agentsReady >= chat.agents || serverGone() }
        let agentsReady = s.snapshot().agentsReady
        if agentsReady < chat.agents, !interrupted {
            progress.finish()
            print("warning: \(agentsReady) of \(chat.agents) agents ready after 30 s")
        }

        // Ramp-up: customers at --connect-rate; each sends once assigned.
        let rampStart = Date()
        var issued = 0
        while issued < chat.customers, !interrupted {
            let due = min(chat.customers, Int(Date().timeIntervalSince(rampStart) * chat.connectRate) + 1)
            if due > issued { s.connect(s.customers[issued..<due]); issued = due }
            Thread.sleep(forTimeInterval: 0.01)
            if Interrupt.requested { interrupted = true }
            progress.tick(phase: "ramp-up", sample())
        }
        if !interrupted {
            interrupted = !progress.run(phase: "ramp-up", seconds: 60, interval: 0.5, sample: sample) { s.snapshot().assigned >= chat.customers || serverGone() }
        }
        let rampSeconds = Date().timeIntervalSince(rampStart)
        if !interrupted { interrupted = !progress.run(phase: "warm-up", seconds: common.warmup, sample: sample) }

        // Measurement.
        s.setMeasuring(true)
        let before = s.snapshot()
        let cpu = CPUWindow(serverPid: common.serverPid)
        let t0 = Date()
        if !interrupted {
            if let d = drops {
                var rng = SplitMix64(seed: UInt64(monotonicNs()))
                let pool = d.agents ? s.customers + s.agents : s.customers
                var dropped = 0
                interrupted = !progress.run(phase: "measure", seconds: common.duration, interval: 0.05, sample: {
                    let due = Int(Date().timeIntervalSince(t0) * d.perSecond)
                    while dropped < due { s.drop(pool[Int(rng.next() % UInt64(pool.count))]); dropped += 1 }
                    return sample()
                })
            } else {
                interrupted = !progress.run(phase: "measure", seconds: common.duration, sample: sample)
            }
        }
        let (elapsed, toolCPU, serverCPU) = cpu.finish()
        let after = s.snapshot()
        s.setMeasuring(false)

        // Ramp-down: no new messages; wait for what is in flight, then check nothing was lost.
        s.stopSending()
        var lost = s.lostMessages()
        let drainEnd = Date().addingTimeInterval(chat.drain)
        while Date() < drainEnd {
            // Done when nothing waits for an ack, every dropped user is back, and nothing is missing.
            if s.pendingAcks() == 0, s.snapshot().live >= users {
                lost = s.lostMessages()
                if lost.customerToAgent == 0 && lost.agentToCustomer == 0 { break }
            }
            progress.tick(phase: "drain", sample())
            Thread.sleep(forTimeInterval: 0.2)
        }
        lost = s.lostMessages()
        let unacked = s.pendingAcks()
        let serverRSS = common.serverPid.flatMap(processRSSBytes)
        let toolRSS = processRSSBytes(getpid())

        // Resolve every conversation so agents leave with free capacity, then close.
        let toResolve = s.resolveAll()
        progress.run(phase: "resolve", seconds: 10, interval: 0.2, sample: sample) { s.snapshot().resolved >= toResolve }
        let final = s.snapshot()
        s.closeAll()
        progress.run(phase: "close", seconds: 3, interval: 0.1, sample: sample) { s.snapshot().live == 0 }
        s.shutdown()
        progress.finish()

        let h = s.histograms()
        var latency: [String: LatencySummary] = [:]
        latency["ack"] = LatencySummary(h.ack)
        latency["customerToAgent"] = LatencySummary(h.c2a)
        latency["agentToCustomer"] = LatencySummary(h.a2c)
        latency["resume"] = LatencySummary(h.resume)
        let sentInWindow = after.sent - before.sent
        let report = ChatReport(
            scenario: scenario, url: target.description, runId: runId, startedAt: started, interrupted: interrupted,
            customers: chat.customers, agents: chat.agents, agentCapacity: plan.agentCapacity, ratePerCustomer: plan.ratePerCustomer,
            targetMessagesPerSecond: plan.ratePerCustomer * Double(chat.customers) * (1 + chat.replyRatio), replyRatio: chat.replyRatio,
            textBytes: chat.size, orders: chat.orders, rampSeconds: rampSeconds, durationSeconds: elapsed,
            connected: after.live, assigned: after.assigned, sent: sentInWindow, acked: after.acked - before.acked,
            deliveredCustomerToAgent: after.deliveredC2A - before.deliveredC2A, deliveredAgentToCustomer: after.deliveredA2C - before.deliveredA2C,
            messagesPerSecond: Double(sentInWindow) / max(elapsed, 0.001), latencyMs: latency,
            errors: ["errorFrames": final.errorFrames, "unexpectedCloses": final.unexpectedCloses, "connectFailures": final.connectFailures,
                     "malformedFrames": final.malformed],
            retriedUnavailable: final.retriedUnavailable,
            violations: ["gaps": final.gaps, "duplicateOrReordered": final.duplicates, "duplicateMessages": final.duplicateMessages,
                         "resumeFailed": final.resumeFailed, "orderMismatches": final.orderMismatches],
            lost: ["customerToAgent": lost.customerToAgent, "agentToCustomer": lost.agentToCustomer, "unacknowledgedAtEnd": unacked],
            reconnects: final.reconnects, resumed: final.resumed, resolved: final.resolved,
            toolCPUPercent: toolCPU, serverCPUPercent: serverCPU, serverRSSBytes: serverRSS, toolRSSBytes: toolRSS,
            firstErrors: final.firstErrors, timeline: progress.timeline)
        printSummary(report)
        if let j = common.json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(report).write(to: URL(fileURLWithPath: j))
        }
        if let path = common.html { try ChatRun.html(report).write(toFile: path, atomically: true, encoding: .utf8) }
        if !report.passed { throw ExitCode(2) }
    }

    static let latencyNames: [(String, String)] = [("ack", "ack (send → ack)"), ("customerToAgent", "customer → agent"),
                                                  ("agentToCustomer", "agent → customer"), ("resume", "reconnect → welcome")]

    func printSummary(_ r: ChatReport) {
        print("\(r.scenario)  \(r.url)  run \(r.runId)\(r.interrupted ? "  (interrupted)" : "")")
        print(String(format: "  users: %d customers, %d agents; connected %d, assigned %d; ramp-up %.1fs", r.customers, r.agents, r.connected, r.assigned, r.rampSeconds))
        print(String(format: "  measured %.1fs: sent %llu (%.0f msg/s, target %.0f), acked %llu, delivered c→a %llu, a→c %llu",
                     r.durationSeconds, r.sent, r.messagesPerSecond, r.targetMessagesPerSecond, r.acked, r.deliveredCustomerToAgent, r.deliveredAgentToCustomer))
        for (k, name) in ChatRun.latencyNames { if let l = r.latencyMs[k] { print("  \(name.padding(toLength: 22, withPad: " ", startingAt: 0)) \(l.line)") } }
        if r.reconnects > 0 { print("  reconnects: \(r.reconnects) dropped, \(r.resumed) resumed") }
        if r.retriedUnavailable > 0 { print("  retried after unavailable: \(r.retriedUnavailable)") }
        print("  errors: \(ChatRun.counts(r.errors))")
        print("  violations: \(ChatRun.counts(r.violations))")
        print("  lost: \(ChatRun.counts(r.lost))")
        print("  cpu: " + cpuText(tool: r.toolCPUPercent, server: r.serverCPUPercent, serverRSS: r.serverRSSBytes, toolRSS: r.toolRSSBytes))
        for e in r.firstErrors { print("  first problems: \(e)") }
        print(r.passed ? "  verdict: PASS (every delivery in order, none lost or duplicated, no errors)" : "  verdict: FAIL")
    }

    /// "gaps 0, duplicateMessages 0": a count table, keys sorted.
    static func counts(_ d: [String: some CustomStringConvertible]) -> String {
        d.keys.sorted().map { "\($0) \(d[$0]!)" }.joined(separator: ", ")
    }

    static func html(_ r: ChatReport) -> String {
        var facts: [(String, String)] = [
            ("scenario", r.scenario), ("target", r.url), ("run id", r.runId), ("started", r.startedAt),
            ("customers / agents", "\(r.customers) / \(r.agents) (capacity \(r.agentCapacity))"),
            ("rate", String(format: "%.3g msg/s per customer, %.0f msg/s target in all (replies included)", r.ratePerCustomer, r.targetMessagesPerSecond)),
            ("text", "\(r.textBytes) bytes"), ("orders", r.orders ? "yes" : "no"),
            ("measured", String(format: "%.1f s: %llu sent (%.0f msg/s), %llu acked", r.durationSeconds, r.sent, r.messagesPerSecond, r.acked)),
            ("delivered", "\(r.deliveredCustomerToAgent) customer → agent, \(r.deliveredAgentToCustomer) agent → customer"),
            ("connected / assigned", "\(r.connected) / \(r.assigned)"),
        ]
        if r.reconnects > 0 { facts.append(("reconnects", "\(r.reconnects) dropped, \(r.resumed) resumed")) }
        facts.append(("errors", counts(r.errors)))
        facts.append(("violations", counts(r.violations)))
        facts.append(("lost", counts(r.lost)))
        facts.append(("cpu", cpuText(tool: r.toolCPUPercent, server: r.serverCPUPercent, serverRSS: r.serverRSSBytes, toolRSS: r.toolRSSBytes)))
        facts.append(("verdict", r.passed ? "PASS" : "FAIL"))
        let lat = latencyNames.compactMap { k, name in r.latencyMs[k].map { (name, $0) } }
        var notes = ["Latency is measured from each message's scheduled send time (open loop), so stalls are not hidden by coordinated omission."]
        notes += r.firstErrors
        return HTMLReport.render(title: "parley-load \(r.scenario) — \(r.runId)", facts: facts, latencies: lat, timeline: r.timeline, notes: notes)
    }
}

import ArgumentParser
import Foundation
import ParleyClient
import ParleyTransport

@main
struct ParleyLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley-load",
        abstract: "Load generator for Parley: honest latency percentiles and throughput.",
        subcommands: [Echo.self, Connect.self, Chat.self, Reconnect.self]
    )
}

struct CommonOptions: ParsableArguments {
    @Option(help: "Target, e.g. ws://127.0.0.1:8080/v1/echo")
    var url: String
    @Option(help: "More targets (a cluster's other nodes), comma-separated: clients are spread over --url and these, round robin. Set-up requests go to --url.")
    var urls: String?
    @Option(help: "Client event loops (default 1: pin the tool to one core with taskset).")
    var loops = 1
    @Option(help: "Seconds to run before measuring.")
    var warmup = 1.0
    @Option(help: "Seconds to measure (every run stops by itself).")
    var duration = 10.0
    @Option(help: "PID of the server, to report its CPU and RSS beside the tool's.")
    var serverPid: Int32?
    @Option(help: "Write every figure as JSON to this file.")
    var json: String?
    @Option(help: "Write a self-contained HTML report (tables, latency and over-time charts) to this file.")
    var html: String?
    @Option(help: "Comma-separated local addresses to connect from (e.g. 127.0.0.2,127.0.0.3) for many connections.")
    var sourceAddresses: String?
    @Flag(help: "Allow a target that is not on this machine.")
    var allowRemote = false
    @Flag(help: "Offer permessage-deflate (no context takeover either way: one compressor per loop).")
    var compression = false
    @Option(help: "wss://: trust this CA or certificate (PEM), e.g. the server's DATA/tls/cert.pem, instead of the system store.")
    var tlsCa: String?
    @Flag(help: "wss://: accept any server certificate (throwaway test certificates only).")
    var insecure = false
    @Option(help: "Port of the server's plain REST API (tokens, orders) when --url is a TLS-only port; default: the --url port.")
    var restPort: Int?

    /// The parsed `--url` (valid once `validate()` passed).
    var target: WebSocketURL { WebSocketURL(url)! }

    /// How every client of the run connects: one TLS context for all (certificate loaded once).
    func dialer() throws -> Dialer {
        var tls: TLSContext? = nil
        if target.secure {
            do { tls = try TLSContext.client(verifyPeer: !insecure, caFile: tlsCa) } catch { throw ValidationError("\(error)") }
        }
        return Dialer(urls: [target] + extraTargets, tls: tls, compression: compression, sources: sources)
    }

    /// Where set-up requests go (plain HTTP).
    var restTarget: (host: String, port: Int) { (target.host, restPort ?? target.port) }

    func validate() throws {
        guard let url = WebSocketURL(url) else { throw ValidationError("--url must look like ws://HOST:PORT/PATH") }
        guard url.isLoopback || allowRemote else { throw ValidationError("\(url.host) is not a loopback address; pass --allow-remote to target it") }
        guard duration > 0, duration <= 3600 else { throw ValidationError("--duration must be within (0, 3600] seconds") }
        guard warmup >= 0, warmup <= 600 else { throw ValidationError("--warmup must be within [0, 600] seconds") }
        guard (1...256).contains(loops) else { throw ValidationError("--loops must be 1...256") }
        if tlsCa != nil || insecure { guard url.secure else { throw ValidationError("--tls-ca and --insecure are for wss:// targets") } }
        if let p = restPort { guard (1...65535).contains(p) else { throw ValidationError("--rest-port must be 1...65535") } }
        for u in (urls ?? "").split(separator: ",") {
            guard let w = WebSocketURL(String(u)) else { throw ValidationError("--urls takes ws://HOST:PORT/PATH targets, comma-separated") }
            guard w.isLoopback || allowRemote else { throw ValidationError("\(w.host) is not a loopback address; pass --allow-remote to target it") }
            guard w.secure == url.secure else { throw ValidationError("--urls must all be ws:// or all wss://, like --url") }
        }
    }

    var sources: [String] { sourceAddresses?.split(separator: ",").map(String.init) ?? [] }
    var extraTargets: [WebSocketURL] { (urls ?? "").split(separator: ",").compactMap { WebSocketURL(String($0)) } }
}

struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Raw WebSocket echo against /v1/echo (server: parley serve --echo).")

    @Option(help: "Concurrent connections.")
    var connections = 100
    @Option(help: "Messages in flight per connection.")
    var inflight = 1
    @Option(help: "Message size in bytes (at least 16: the send time travels in the message).")
    var size = 16
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (1...1_000_000).contains(connections) else { throw ValidationError("--connections must be 1...1000000") }
        guard (1...10_000).contains(inflight) else { throw ValidationError("--inflight must be 1...10000") }
        guard (16...(1 << 20)).contains(size) else { throw ValidationError("--size must be 16...1048576") }
    }

    func run() throws {
        // First: a Ctrl-C from the moment the tool runs is a summary, not lost or fatal.
        Interrupt.install()
        ProcessSetup.prepare(schedBatch: true)
        let target = common.target
        let scenario = EchoScenario(dialer: try common.dialer(), connections: connections, inflight: inflight, size: size, loops: common.loops)
        let (opened, failed) = scenario.connectAll(timeoutSeconds: 30)
        guard opened > 0 else {
            print("error: no connection opened (\(failed) failed)")
            throw ExitCode(1)
        }
        if opened < connections { print("warning: \(opened) of \(connections) connections opened, \(failed) failed") }
        let progress = Progress()
        let sample = { () -> Sample in
            let s = scenario.sample()
            return Sample(sent: s.total, delivered: s.total, connections: opened, errors: s.errors, violations: 0, interval: s.interval)
        }
        progress.run(phase: "warm-up", seconds: common.warmup, sample: sample)
        scenario.setMeasuring(true)
        let cpu = CPUWindow(serverPid: common.serverPid)
        let completed = progress.run(phase: "measure", seconds: common.duration, sample: sample)
        scenario.setMeasuring(false)
        progress.finish()
        let (elapsed, toolCPU, serverCPU) = cpu.finish()
        let serverRSS = common.serverPid.flatMap(processRSSBytes)
        let stats = scenario.collect()
        scenario.closeAll()
        let summary = Summary(
            scenario: "echo", url: target.description, connections: opened, inflight: inflight, messageBytes: size,
            durationSeconds: elapsed, messages: stats.messages, messagesPerSecond: Double(stats.messages) / elapsed,
            errors: stats.errors, latencyMicros: Summary.latency(stats.histogram), toolCPUPercent: toolCPU,
            serverCPUPercent: serverCPU, serverRSSBytes: serverRSS, interrupted: !completed, timeline: progress.timeline)
        summary.printText()
        if let h = common.html {
            let facts: [(String, String)] = [
                ("scenario", "echo"), ("target", target.description), ("connections × in flight", "\(opened) × \(inflight)"),
                ("message", "\(size) bytes"), ("measured", String(format: "%.1f s, %llu messages (%.0f msg/s)", elapsed, stats.messages, summary.messagesPerSecond)),
                ("errors", "\(stats.errors)"),
                ("cpu", cpuText(tool: toolCPU, server: serverCPU, serverRSS: serverRSS, toolRSS: nil)),
            ]
            let lat = LatencySummary(stats.histogram).map { [("round trip", $0)] } ?? []
            try HTMLReport.render(title: "parley-load echo", facts: facts, latencies: lat, timeline: progress.timeline,
                                  notes: ["Closed loop: each connection keeps its messages in flight; latency is the measured round trip."])
                .write(toFile: h, atomically: true, encoding: .utf8)
        }
        if let j = common.json { try summary.writeJSON(j) }
    }
}

struct Connect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Open N idle WebSocket connections, hold them, report connect rate and server memory per connection.")

    @Option(help: "Connections to open.")
    var connections = 1000
    @Option(help: "Connects per second (0: as fast as the window allows).")
    var rate = 0.0
    @Option(help: "Most connects outstanding at once.")
    var window = 1000
    @OptionGroup var common: CommonOptions

    func validate() throws {
        guard (1...1_000_000).contains(connections) else { throw ValidationError("--connections must be 1...1000000") }
        guard rate >= 0, (1...100_000).contains(window) else { throw ValidationError("--rate must be >= 0 and --window 1...100000") }
    }

    func run() throws {
        Interrupt.install()
        let fdLimit = ProcessSetup.prepare(schedBatch: true)
        if connections + 64 > fdLimit { print("warning: fd limit \(fdLimit) is below --connections; raise it (ulimit -n)") }
        let target = common.target
        let scenario = ConnectScenario(dialer: try common.dialer(), loops: common.loops)
        let progress = Progress()
        let sample = { () -> Sample in
            let (o, f, _) = scenario.totals()
            return Sample(sent: UInt64(o + f), delivered: UInt64(o), connections: o, errors: UInt64(f), violations: 0, interval: nil)
        }
        let rss0 = common.serverPid.flatMap(processRSSBytes)
        let t0 = Date()
        let cpu = CPUWindow(serverPid: common.serverPid)
        scenario.open(count: connections, rate: rate, window: window, deadline: t0.addingTimeInterval(common.duration + 60)) {
            progress.tick(phase: "connect", sample())
        }
        let connectSeconds = Date().timeIntervalSince(t0)
        let connectCPU = cpu.finish()
        let (opened, failed, err) = scenario.totals()
        progress.run(phase: "settle", seconds: max(1, common.warmup), sample: sample)  // let the server settle before reading its RSS
        let rss1 = common.serverPid.flatMap(processRSSBytes)
        let toolRSS = processRSSBytes(getpid())
        let completed = progress.run(phase: "hold", seconds: common.duration, sample: sample)
        progress.finish()
        let (stillOpen, _, _) = scenario.totals()
        scenario.closeAll()
        var report: [String: Double] = [
            "connectionsRequested": Double(connections), "opened": Double(opened), "failed": Double(failed),
            "connectSeconds": connectSeconds, "connectsPerSecond": Double(opened) / connectSeconds,
            "toolRSSBytes": Double(toolRSS ?? 0), "heldSeconds": common.duration, "openAtEnd": Double(stillOpen),
            "interrupted": completed ? 0 : 1, "toolCPUPercent": connectCPU.tool,
        ]
        if let s = connectCPU.server { report["serverCPUPercent"] = s }
        print("connect  \(target)  requested=\(connections) opened=\(opened) failed=\(failed)\(completed ? "" : "  (interrupted)")")
        print(String(format: "  connect rate: %.0f/s over %.2fs; open at the end of the hold: %d", Double(opened) / connectSeconds, connectSeconds, stillOpen))
        print("  cpu while connecting: " + cpuText(tool: connectCPU.tool, server: connectCPU.server, serverRSS: nil, toolRSS: nil))
        var facts: [(String, String)] = [
            ("scenario", "connect"), ("target", target.description), ("requested / opened / failed", "\(connections) / \(opened) / \(failed)"),
            ("connect rate", String(format: "%.0f/s over %.2f s", Double(opened) / connectSeconds, connectSeconds)),
            ("held", String(format: "%.0f s, %d open at the end", common.duration, stillOpen)),
        ]
        if let a = rss0, let b = rss1, opened > 0 {
            let per = (Double(b) - Double(a)) / Double(opened)
            report["serverRSSBeforeBytes"] = Double(a)
            report["serverRSSAfterBytes"] = Double(b)
            report["serverRSSPerConnectionBytes"] = per
            let line = String(format: "%.1f MiB -> %.1f MiB = %.0f bytes per connection (kernel buffers not included)", Double(a) / 1048576, Double(b) / 1048576, per)
            print("  server rss: " + line)
            facts.append(("server RSS", line))
        }
        if let e = err { print("  first error: \(e)"); facts.append(("first error", e)) }
        if let j = common.json {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: j))
        }
        if let h = common.html {
            try HTMLReport.render(title: "parley-load connect", facts: facts, latencies: [], timeline: progress.timeline, notes: [])
                .write(toFile: h, atomically: true, encoding: .utf8)
        }
        if opened == 0 { throw ExitCode(1) }
    }
}

/// Connects clients the way the run was told to (ws or wss, compression, source addresses).
struct Dialer {
    /// Clients go to these round robin by slot (a cluster's nodes); the first is the main target.
    let urls: [WebSocketURL]
    let tls: TLSContext?
    let compression: Bool
    let sources: [String]
    var url: WebSocketURL { urls[0] }

    func connect(on loop: Loop, slot: Int, subprotocols: [String] = [], delegate: WebSocketClientDelegate) throws -> WebSocketClient {
        let src = sources.isEmpty ? nil : sources[slot % sources.count]
        return try WebSocketClient.connect(urls[slot % urls.count], on: loop, sourceAddress: src, subprotocols: subprotocols, tls: tls,
                                           compression: compression, delegate: delegate)
    }
}

import ArgumentParser
import Dispatch
import Logging
import ParleyNATS
import ParleyServer
import ParleyTransport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

@main
struct Parley: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley",
        abstract: "Parley: in-app customer-support messaging server.",
        discussion: """
        Every option of `serve` can also be set by an environment variable named PARLEY_ and the \
        option in capitals (e.g. --max-message-bytes → PARLEY_MAX_MESSAGE_BYTES). A flag on the \
        command line wins over the environment.
        """,
        subcommands: [Serve.self, Token.self, LogCommand.self],
        defaultSubcommand: Serve.self
    )
}

/// Resolves an option: command line, then PARLEY_* environment variable, then the embedded default.
func resolve<T>(_ flag: T?, _ env: String, _ fallback: T, _ parse: (String) -> T?) throws -> T {
    if let flag { return flag }
    if let raw = getenv(env).map({ String(cString: $0) }), !raw.isEmpty {
        guard let v = parse(raw) else { throw ValidationError("\(env)=\(raw) is not a valid value") }
        return v
    }
    return fallback
}

func parseBool(_ s: String) -> Bool? {
    switch s.lowercased() {
    case "1", "true", "yes", "on": return true
    case "0", "false", "no", "off": return false
    default: return nil
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the server (the default command).")

    @Option(help: "Address to listen on (env PARLEY_HOST). Default 127.0.0.1.")
    var host: String?
    @Option(help: "TCP port; 0 picks a free one (env PARLEY_PORT). Default 8080.")
    var port: Int?
    @Option(help: "Event loops (serial queues), one per core by default (env PARLEY_LOOPS).")
    var loops: Int?
    @Option(help: "How socket readiness reaches the loops: epoll (one Dispatch source per loop over an epoll fd) or sources (two Dispatch sources per connection) (env PARLEY_READINESS). Default epoll.")
    var readiness: String?
    @Option(help: "Directory for the log and generated secrets (env PARLEY_DATA_DIR). Default ./parley-data.")
    var dataDir: String?
    @Flag(name: .customLong("echo"), help: "Enable GET /v1/echo, a WebSocket echo endpoint for conformance and benchmarks (env PARLEY_ECHO=1).")
    var echoFlag = false
    @Option(help: "Largest WebSocket message in bytes; larger ones close with 1009 (env PARLEY_MAX_MESSAGE_BYTES). Default 65536.")
    var maxMessageBytes: Int?
    @Option(help: "Seconds of silence before the server pings a WebSocket (env PARLEY_PING_INTERVAL). Default 30.")
    var pingInterval: Int?
    @Option(help: "Seconds a ping may go unanswered (no byte at all from the peer) before the connection is dropped (env PARLEY_PONG_TIMEOUT). Default 10.")
    var pongTimeout: Int?
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env PARLEY_LOG_LEVEL). Default info.")
    var logLevel: String?
    @Flag(help: "Do not switch the process to SCHED_BATCH (env PARLEY_NO_SCHED_BATCH=1).")
    var noSchedBatch = false
    @Option(help: "HS256 secret for client tokens (env PARLEY_JWT_SECRET). Default: generated on first start into <data-dir>/secrets.json (0600) and printed once.")
    var jwtSecret: String?
    @Option(help: "Bearer key for the REST API (env PARLEY_API_KEY). Default: generated like the JWT secret.")
    var apiKey: String?
    @Option(help: "Seconds a user stays online after their last session closes, so reconnects do not flap; also how long an agent's conversations wait for them before going back to the queue (env PARLEY_PRESENCE_GRACE). Default 5.")
    var presenceGrace: Double?
    @Option(help: "Conversation partitions (serial queues); 0 means one per loop (env PARLEY_CHAT_PARTITIONS). Default 0.")
    var chatPartitions: Int?
    @Option(help: "When an event is durable before its ack: always (fdatasync every group commit) or a number of milliseconds between syncs (env PARLEY_FSYNC). Default always.")
    var fsync: String?
    @Option(help: "TLS certificate chain, PEM (env PARLEY_TLS_CERT). With --tls-key the server speaks TLS (https://, wss://).")
    var tlsCert: String?
    @Option(help: "TLS private key, PEM (env PARLEY_TLS_KEY).")
    var tlsKey: String?
    @Option(help: "Serve TLS on this port and keep plain HTTP/WebSocket on --port (env PARLEY_TLS_PORT). Without it, --port itself is TLS.")
    var tlsPort: Int?
    @Flag(help: "Decline permessage-deflate offers (env PARLEY_NO_COMPRESSION=1). Compression is on by default.")
    var noCompression = false
    @Flag(help: "Development: make (or reuse) a self-signed P-256 certificate for localhost in <data-dir>/tls/ and serve TLS with it (env PARLEY_TLS_SELF_SIGNED=1).")
    var tlsSelfSigned = false
    @Option(help: "Cluster mode: the NATS JetStream servers holding the replicated log, comma-separated nats://host:port (env PARLEY_CLUSTER). Every node gets the same list, and the same --jwt-secret and --api-key.")
    var cluster: String?
    @Option(help: "Cluster mode: this node's name, unique in the cluster: letters, digits, - and _ (env PARLEY_NODE).")
    var node: String?
    @Option(help: "Cluster mode: replicas of the stream when Parley makes it (env PARLEY_STREAM_REPLICAS). Default 3.")
    var streamReplicas: Int?
    @Flag(help: "Cluster mode, development only: accept a stream with fewer than 3 replicas (env PARLEY_ALLOW_UNREPLICATED=1).")
    var allowUnreplicated = false
    @Flag(help: "Development: serve the demo shop at /demo (customer tokens for demo users) and print agent-console sign-in links at start (env PARLEY_DEMO=1).")
    var demo = false
    @Option(help: "Agent console sign-in: a URL of the deployment that answers {\"token\"} for the logged-in agent (env PARLEY_CONSOLE_TOKEN_URL). Default: agents paste a token.")
    var consoleTokenUrl: String?
    @Option(help: "Cluster mode: seconds the writer's lease lasts without renewal; a dead writer is replaced after about this long (env PARLEY_LEASE_TTL). Default 2.")
    var leaseTtl: Double?

    func run() throws {
        var config = ServerConfig()
        config.host = try resolve(host, "PARLEY_HOST", config.host) { $0 }
        config.port = try resolve(port, "PARLEY_PORT", config.port) { Int($0) }
        config.loops = try resolve(loops, "PARLEY_LOOPS", config.loops) { Int($0) }
        config.readiness = try resolve(readiness.map { ReadinessMode(rawValue: $0) } ?? nil, "PARLEY_READINESS", config.readiness) { ReadinessMode(rawValue: $0) }
        if let r = readiness, ReadinessMode(rawValue: r) == nil { throw ValidationError("--readiness must be epoll or sources") }
        config.dataDir = try resolve(dataDir, "PARLEY_DATA_DIR", config.dataDir) { $0 }
        config.echo = try resolve(echoFlag ? true : nil, "PARLEY_ECHO", false, parseBool)
        config.maxMessageBytes = try resolve(maxMessageBytes, "PARLEY_MAX_MESSAGE_BYTES", config.maxMessageBytes) { Int($0) }
        let ping = try resolve(pingInterval, "PARLEY_PING_INTERVAL", 30) { Int($0) }
        let pong = try resolve(pongTimeout, "PARLEY_PONG_TIMEOUT", 10) { Int($0) }
        config.schedBatch = !(try resolve(noSchedBatch ? true : nil, "PARLEY_NO_SCHED_BATCH", false, parseBool))
        let level = try resolve(logLevel, "PARLEY_LOG_LEVEL", "info") { $0 }
        config.jwtSecret = try resolve(jwtSecret.map { Optional($0) }, "PARLEY_JWT_SECRET", nil) { $0 }
        config.apiKey = try resolve(apiKey.map { Optional($0) }, "PARLEY_API_KEY", nil) { $0 }

        let grace = try resolve(presenceGrace, "PARLEY_PRESENCE_GRACE", 5) { Double($0) }
        guard grace >= 0, grace <= 3600 else { throw ValidationError("presence-grace must be 0...3600 seconds") }
        config.presenceGraceMs = Int64(grace * 1000)
        config.chatPartitions = try resolve(chatPartitions, "PARLEY_CHAT_PARTITIONS", 0) { Int($0) }
        guard (0...256).contains(config.chatPartitions) else { throw ValidationError("chat-partitions must be 0...256") }
        let fsyncText = try resolve(fsync, "PARLEY_FSYNC", "always") { $0 }
        if fsyncText == "always" {
            config.fsync = .always
        } else if let ms = Int(fsyncText), ms >= 1, ms <= 10_000 {
            config.fsync = .interval(ms: ms)
        } else {
            throw ValidationError("fsync must be always or 1...10000 (milliseconds)")
        }
        config.tlsCertificate = try resolve(tlsCert.map { Optional($0) }, "PARLEY_TLS_CERT", nil) { $0 }
        config.tlsKey = try resolve(tlsKey.map { Optional($0) }, "PARLEY_TLS_KEY", nil) { $0 }
        config.tlsPort = try resolve(tlsPort.map { Optional($0) }, "PARLEY_TLS_PORT", nil) { Int($0) }
        config.tlsSelfSigned = try resolve(tlsSelfSigned ? true : nil, "PARLEY_TLS_SELF_SIGNED", false, parseBool)
        config.compression = !(try resolve(noCompression ? true : nil, "PARLEY_NO_COMPRESSION", false, parseBool))
        if (config.tlsCertificate == nil) != (config.tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together") }
        if config.tlsSelfSigned, config.tlsCertificate != nil { throw ValidationError("--tls-self-signed and --tls-cert are alternatives") }
        if let p = config.tlsPort {
            guard (0...65535).contains(p) else { throw ValidationError("tls-port must be 0...65535") }
            guard config.tlsEnabled else { throw ValidationError("--tls-port needs --tls-cert and --tls-key (or --tls-self-signed)") }
            guard p != config.port || p == 0 else { throw ValidationError("--tls-port must differ from --port") }
        }
        if let urls = try resolve(cluster.map { Optional($0) }, "PARLEY_CLUSTER", nil, { $0 }) {
            let servers = urls.split(separator: ",").map { NATSClient.Server(url: String($0).trimmingCharacters(in: .whitespaces)) }
            guard !servers.isEmpty, servers.allSatisfy({ $0 != nil }) else { throw ValidationError("--cluster takes nats://host:port URLs, comma-separated") }
            guard let name = try resolve(node.map { Optional($0) }, "PARLEY_NODE", nil, { $0 }) else { throw ValidationError("--cluster needs --node (this node's name)") }
            guard ClusterSettings.validNode(name) else { throw ValidationError("--node must be 1-64 letters, digits, - or _") }
            var c = ClusterSettings(servers: servers.map { $0! }, node: name)
            c.replicas = try resolve(streamReplicas, "PARLEY_STREAM_REPLICAS", 3) { Int($0) }
            guard (1...5).contains(c.replicas) else { throw ValidationError("stream-replicas must be 1...5") }
            c.allowUnreplicated = try resolve(allowUnreplicated ? true : nil, "PARLEY_ALLOW_UNREPLICATED", false, parseBool)
            if c.replicas < 3, !c.allowUnreplicated { throw ValidationError("--stream-replicas below 3 needs --allow-unreplicated (an ack would not survive the loss of a server)") }
            let ttl = try resolve(leaseTtl, "PARLEY_LEASE_TTL", 2) { Double($0) }
            guard ttl >= 0.2, ttl <= 60 else { throw ValidationError("lease-ttl must be 0.2...60 seconds") }
            c.leaseTTLMs = UInt64(ttl * 1000)
            config.cluster = c
        } else if node != nil {
            throw ValidationError("--node is for cluster mode (--cluster)")
        }
        config.demo = try resolve(demo ? true : nil, "PARLEY_DEMO", false, parseBool)
        config.consoleTokenURL = try resolve(consoleTokenUrl.map { Optional($0) }, "PARLEY_CONSOLE_TOKEN_URL", nil) { $0 }
        guard (0...65535).contains(config.port) else { throw ValidationError("port must be 0...65535") }
        guard config.loops >= 0, config.loops <= 1024 else { throw ValidationError("loops must be 0...1024") }
        guard config.maxMessageBytes >= 125, config.maxMessageBytes <= 1 << 30 else { throw ValidationError("max-message-bytes must be 125...1073741824") }
        guard ping >= 1 else { throw ValidationError("ping-interval must be at least 1 second") }
        config.pingIntervalMs = UInt64(ping) * 1000
        guard pong >= 1 else { throw ValidationError("pong-timeout must be at least 1 second") }
        config.pongTimeoutMs = UInt64(pong) * 1000
        guard let logLevel = Logger.Level(rawValue: level) else { throw ValidationError("unknown log level \(level)") }

        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = logLevel
            return h
        }
        let logger = Logger(label: "parley")
        // Before Dispatch starts any thread, so its workers inherit the policy.
        ProcessSetup.prepare(schedBatch: config.schedBatch)

        let server: Server
        do {
            server = try Server(config: config, logger: logger)
            try server.start()
            if config.demo {
                for line in try server.demoLinks() { print(line) }
                fflush(nil)
            }
        } catch {
            logger.critical("cannot start", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        // Graceful shutdown on SIGTERM/SIGINT; a second signal exits at once.
        var signalSources: [DispatchSourceSignal] = []
        var stopping = false
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .main)
            s.setEventHandler {
                if stopping { Glibc.exit(1) }
                stopping = true
                server.shutdown { Glibc.exit(0) }
            }
            s.resume()
            signalSources.append(s)
        }
        // SIGHUP: reload the TLS certificate and key; open connections keep theirs.
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .main)
        hup.setEventHandler {
            do { try server.reloadTLS() } catch { logger.error("TLS reload failed; keeping the old certificate", metadata: ["error": "\(error)"]) }
        }
        hup.resume()
        signalSources.append(hup)
        withExtendedLifetime(signalSources) { dispatchMain() }
    }
}

struct Token: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mint a client token (HS256 JWT) with the server's secret.",
        discussion: "The secret comes from --jwt-secret, PARLEY_JWT_SECRET, or <data-dir>/secrets.json (generated there if absent, as the server would).")

    @Option(help: "customer or agent.") var role: String
    @Option(help: "The user id (the token's sub).") var sub: String
    @Option(help: "Display name.") var name: String?
    @Option(help: "Lifetime in seconds.") var ttl = 3600
    @Option(help: "Agents: open conversations at once (default 5).") var capacity: Int?
    @Option(help: "Data directory holding secrets.json (env PARLEY_DATA_DIR).") var dataDir: String?
    @Option(help: "The secret itself (env PARLEY_JWT_SECRET).") var jwtSecret: String?

    func run() throws {
        let dir = try resolve(dataDir, "PARLEY_DATA_DIR", "./parley-data") { $0 }
        let given = try resolve(jwtSecret.map { Optional($0) }, "PARLEY_JWT_SECRET", nil) { $0 }
        let claims: ClientClaims
        do {
            claims = try TokenService.claims(sub: sub, role: role, name: name, ttlSeconds: ttl, capacity: capacity)
        } catch {
            throw ValidationError("\(error)")
        }
        let (secrets, generated) = try SecretsStore.resolve(dataDir: dir, jwtSecret: given, apiKey: nil)
        if generated { FileHandle.standardError.write("parley: generated secrets in \(SecretsStore.path(dataDir: dir)) (mode 0600)\n".data(using: .utf8)!) }
        let service: TokenService
        do { service = try TokenService(secret: secrets.jwtSecret) } catch { throw ValidationError("\(error)") }
        print(try service.signAndWait(claims))
    }
}

import Dispatch
import Logging
import ParleyTransport
import ParleyHTTP
import ParleyWebSocket
import ParleyLog
import ParleyChat
import ParleyNATS
import ParleyWeb
import Foundation

/// Composition root: listener, loops, HTTP routes, WebSocket endpoints, lifecycle.
/// `@unchecked Sendable`: built and started on one thread; what the loops' and queues' closures
/// read of it afterwards (config, metrics, the chat service, the log) is set before they run.
public final class Server: @unchecked Sendable {
    public let config: ServerConfig
    private let logger: Logger
    private var group: LoopGroup?
    private var listeners: [Listener] = []
    /// The TLS context new connections get; `reloadTLS()` replaces it.
    public private(set) var tls: TLSContextSource?
    private var router = Router()
    private let wsConfig: WebSocketConfig
    public private(set) var port = 0
    /// The TLS port when TLS listens apart from plain (`tlsPort`), else nil.
    public private(set) var tlsPort: Int?
    public let secrets: Secrets
    public let tokens: TokenService
    /// The event store, opened and recovered before the server listens: the node's log
    /// (`<data-dir>/log`), or in cluster mode the replicated stream (with its copy in
    /// `<data-dir>/cluster`).
    public let log: any EventStore
    /// Cluster mode: the NATS side of the chat, and the loop it runs on.
    private var bridge: ClusterBridge?
    private var natsLoops: LoopGroup?
    let orders: OrderStore
    let chat: ChatService
    let metrics = ServerMetrics()
    /// The SDK, console, widget and demo files, read once at start.
    let web: WebAssets
    private var budget: ConnectionBudget?

    /// Resolves the secrets (generating them on first start) before anything listens.
    public init(config: ServerConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        self.wsConfig = WebSocketConfig(maxMessageBytes: config.maxMessageBytes, pingIntervalMs: config.pingIntervalMs, pongTimeoutMs: config.pongTimeoutMs,
                                        deflate: DeflatePolicy(enabled: config.compression))
        let (secrets, generated) = try SecretsStore.resolve(dataDir: config.dataDir, jwtSecret: config.jwtSecret, apiKey: config.apiKey)
        self.secrets = secrets
        if generated {
            // Shown once, on the terminal that started the server; afterwards only in the 0600 file.
            print("parley: generated secrets in \(SecretsStore.path(dataDir: config.dataDir)) (mode 0600). Shown once:")
            print("  PARLEY_JWT_SECRET=\(secrets.jwtSecret)")
            print("  PARLEY_API_KEY=\(secrets.apiKey)")
            fflush(nil)
        }
        self.tokens = try TokenService(secret: secrets.jwtSecret)
        do { self.web = try WebAssets.load() } catch { throw ServerError.web("\(error)") }
        if config.tlsEnabled {
            var cert = config.tlsCertificate ?? "", key = config.tlsKey ?? ""
            if config.tlsSelfSigned, config.tlsCertificate == nil {
                let made = try TLS.selfSigned(in: config.dataDir + "/tls")
                (cert, key) = (made.certificate, made.key)
                logger.notice("\(made.created ? "made" : "using") a self-signed development certificate (not for production)",
                              metadata: ["tls.cert": "\(cert)", "tls.key": "\(key)"])
            }
            self.tls = try TLSContextSource(certificatePath: cert, keyPath: key)
        }
        let partitions = config.chatPartitions > 0 ? config.chatPartitions : (config.loops > 0 ? config.loops : System.activeCores)
        let metrics = self.metrics
        var meta: Logger.Metadata = [:]
        let epoch: String
        var cluster: ClusterLog? = nil
        if let settings = config.cluster {
            var c = ClusterConfig(servers: settings.servers, node: settings.node, cacheDirectory: config.dataDir + "/cluster")
            c.replicas = settings.replicas
            c.allowUnreplicated = settings.allowUnreplicated
            c.leaseTTLMs = settings.leaseTTLMs
            let loops = LoopGroup(count: 1)
            natsLoops = loops
            let t0 = Date()
            let log: ClusterLog
            do { log = try ClusterLog.open(c, loop: loops.loops[0], logger: logger) } catch let e as ClusterError { throw ServerError.cluster(e.description) }
            cluster = log
            self.log = log
            epoch = log.epoch
            meta["cluster.node"] = "\(settings.node)"
            meta["cluster.stream_seq"] = "\(log.appliedSequence)"
            meta["cluster.catch_up_seconds"] = "\(String(format: "%.3f", Date().timeIntervalSince(t0)))"
        } else {
            var logConfig = LogConfig(directory: config.dataDir + "/log")
            logConfig.repair = config.repairLog
            logConfig.fsync = config.fsync
            logConfig.onBatch = { records, bytes, syncNs in metrics.logBatch(records: records, bytes: bytes, syncNs: syncNs) }
            let (log, report) = try Log.open(logConfig, logger: logger)
            self.log = log
            epoch = try Server.epoch(dataDir: config.dataDir, rewritten: !report.dropped.isEmpty)
            meta["log.records"] = "\(report.records)"
            meta["log.last_offset"] = "\(report.lastOffset)"
            meta["log.seconds"] = "\(String(format: "%.3f", report.seconds))"
            meta["log.torn_tail_bytes"] = "\(report.tornTailBytes)"
        }
        self.orders = OrderStore(log: log)
        let t1 = Date()
        let replayed = orders.replay()
        chat = ChatService(log: log, epoch: epoch, partitionCount: partitions, presenceGraceMs: config.presenceGraceMs, metrics: metrics, logger: logger)
        let rebuilt = chat.recover()
        meta["orders"] = "\(replayed)"
        meta["conversations"] = "\(rebuilt.conversations)"
        meta["events"] = "\(rebuilt.events)"
        meta["chat.partitions"] = "\(partitions)"
        meta["epoch"] = "\(epoch)"
        meta["rebuild.seconds"] = "\(String(format: "%.3f", Date().timeIntervalSince(t1)))"
        if let cluster, let loops = natsLoops {
            let bridge = ClusterBridge(log: cluster, service: chat, orders: orders, loop: loops.loops[0], logger: logger)
            chat.cluster = bridge
            self.bridge = bridge
            bridge.start()
            cluster.resume()
        }
        logger.info("log recovered", metadata: meta)
        buildRoutes()
    }

    private func buildRoutes() {
        router.add("GET", "/healthz") { _, _, _ in .respond(.json(200, #"{"status":"ok"}"#)) }
        let (apiKey, tokens) = (secrets.apiKey, self.tokens)
        let ws = wsConfig
        router.add("POST", "/v1/tokens") { req, _, _ in TokenRoutes.mint(req, apiKey: apiKey, tokens: tokens) }
        let chat = self.chat
        router.add("GET", "/metrics") { [unowned self] _, _, _ in
            // Loops add their counters to the registry on each tick; a scrape first asks every loop
            // to add what it has, so it counts everything the server did before the request came.
            let loops = group?.loops ?? []
            return .deferred { reply in
                let flushed = DispatchGroup()
                for loop in loops {
                    flushed.enter()
                    loop.queue.async { self.metrics.absorb(&loop.counters); flushed.leave() }
                }
                flushed.notify(queue: .global()) {
                    reply(self.metrics.scrape(openConnections: self.budget?.openConnections ?? 0, durableOffset: self.log.durableOffset, chat: chat, cluster: self.log as? ClusterLog))
                }
            }
        }
        let orders = self.orders
        router.add("PUT", "/v1/users/{userId}/orders/{orderId}") { req, p, _ in
            guard TokenRoutes.authorized(req, apiKey: apiKey) else { return .respond(TokenRoutes.unauthorized) }
            return orders.put(userId: p["userId"] ?? "", orderId: p["orderId"] ?? "", body: req.body)
        }
        router.add("GET", "/v1/users/{userId}/orders/last") { req, p, _ in
            guard TokenRoutes.authorized(req, apiKey: apiKey) else { return .respond(TokenRoutes.unauthorized) }
            return orders.getLast(userId: p["userId"] ?? "")
        }
        router.add("GET", "/v1/ws") { req, _, c in
            switch Handshake.validate(req.head, subprotocols: ["parley.v1"], deflate: ws.deflate) {
            case .failure(let e):
                return .respond(e.response)
            case .success(let accepted):
                let delegate = ChatSession(service: chat, tokens: tokens, orders: orders)
                let session = WebSocketSession(connection: c, config: ws, subprotocol: accepted.subprotocol, deflate: accepted.deflate, delegate: delegate)
                delegate.attach(session)
                return .upgrade(response: Handshake.response(accepted), handler: session)
            }
        }
        router.add("GET", "/v1/conversations/{id}") { req, p, _ in
            guard TokenRoutes.authorized(req, apiKey: apiKey) else { return .respond(TokenRoutes.unauthorized) }
            return ConversationRoutes.get(id: p["id"] ?? "", chat: chat)
        }
        WebRoutes.install(into: &router, assets: web, config: config, tokens: tokens, orders: orders)
        if config.echo {
            let echo = EchoDelegate()
            router.add("GET", "/v1/echo") { req, _, c in
                switch Handshake.validate(req.head, subprotocols: [], deflate: ws.deflate) {
                case .failure(let e):
                    return .respond(e.response)
                case .success(let accepted):
                    let session = WebSocketSession(connection: c, config: ws, subprotocol: accepted.subprotocol, deflate: accepted.deflate, delegate: echo)
                    return .upgrade(response: Handshake.response(accepted), handler: session)
                }
            }
        }
    }

    /// Binds and starts serving. Returns the bound port.
    @discardableResult
    public func start() throws -> Int {
        let fileLimit = ProcessSetup.fileLimit
        var limits = config.transport
        // An echo of the largest message must fit in the outbound queue, twice over.
        limits.hardLimitBytes = max(limits.hardLimitBytes, 2 * config.maxMessageBytes + 64 * 1024)
        let budget = ConnectionBudget(fileLimit: fileLimit, reserved: limits.reservedDescriptors)
        let loopCount = config.loops > 0 ? config.loops : System.activeCores
        let group = LoopGroup(count: loopCount, mode: config.readiness, limits: limits, budget: budget)
        // Plain on `port` and TLS on `tlsPort`, or TLS alone on `port`.
        var plan: [(port: Int, tls: Bool)] = []
        if let tls = config.tlsPort, self.tls != nil {
            plan = [(config.port, false), (tls, true)]
        } else {
            plan = [(config.port, self.tls != nil)]
        }
        var bound: [(Listener, Bool)] = []
        do {
            for p in plan { bound.append((try Listener(host: config.host, port: p.port, logger: logger), p.tls)) }
        } catch {
            for (l, _) in bound { l.stop() }
            throw error
        }
        // Routes are all added before the server starts and only read afterwards.
        nonisolated(unsafe) let router = self.router
        let httpLimits: HTTPServerLimits = {
            var l = HTTPServerLimits()
            l.parser.maxBodyBytes = 1 << 20
            return l
        }()
        let metrics = self.metrics
        let logger = self.logger
        for loop in group.loops { loop.onTick { _ in metrics.absorb(&loop.counters) } }
        for (listener, secure) in bound {
            let source = secure ? tls : nil
            listener.start(group: group, budget: budget) { loop, fd in
                metrics.accepted.increment()
                let http = HTTPConnectionHandler(limits: httpLimits, service: { req, c in router.handle(req, c) },
                                                 onResponse: { metrics.httpRequests($0).increment() })
                do {
                    http.start(try loop.adopt(fd: fd, handler: http, tls: source?.current))
                } catch {
                    // Closed already, and counted (tls errors, epoll watch failures).
                    logger.warning("connection not adopted", metadata: ["error": "\(error)"])
                }
            }
        }
        chat.start()
        self.group = group
        self.listeners = bound.map(\.0)
        self.budget = budget
        self.port = bound[0].0.port
        if bound.count > 1 { self.tlsPort = bound[1].0.port }
        var meta: Logger.Metadata = [
            "http.host": "\(config.host)", "http.port": "\(port)", "loops": "\(loopCount)",
            "readiness": "\(config.readiness.rawValue)", "fd.limit": "\(fileLimit)", "conn.pause_at": "\(budget.pauseAt)",
            "echo": "\(config.echo)", "tls": "\(tls == nil ? "off" : (tlsPort == nil ? "on" : "separate port"))",
        ]
        if let t = tlsPort { meta["tls.port"] = "\(t)" }
        logger.info("listening", metadata: meta)
        return port
    }

    /// Loads the TLS certificate and key again (SIGHUP). New connections get the new ones; open
    /// connections keep theirs. On error the old ones stay and the error is thrown.
    public func reloadTLS() throws {
        guard let tls else { return }
        try tls.reload()
        metrics.tlsReloads.increment()
        logger.notice("TLS certificate reloaded", metadata: ["tls.cert": "\(tls.certificatePath)"])
    }

    /// Stops accepting, closes every WebSocket with 1001 and waits (bounded) for them to go.
    public func shutdown(completion: @escaping @Sendable () -> Void) {
        guard let group, !listeners.isEmpty else { completion(); return }
        logger.info("shutting down")
        let stopped = DispatchGroup()
        for l in listeners { stopped.enter(); l.stop { stopped.leave() } }
        stopped.notify(queue: .global()) {
            for loop in group.loops {
                loop.queue.async {
                    loop.forEachConnection { c in
                        if let ws = c.handler as? WebSocketSession { ws.close(.shuttingDown) } else { c.closeAfterFlush() }
                    }
                }
            }
            let deadline = monotonicMs() + self.config.shutdownGraceMs
            @Sendable func poll() {
                var open = 0
                for loop in group.loops { loop.queue.sync { open += loop.connectionCount } }
                if open == 0 || monotonicMs() >= deadline {
                    if open > 0 { self.logger.warning("shutdown grace over; dropping connections", metadata: ["conn.open": "\(open)"]) }
                    self.chat.stop()
                    self.log.close()  // what was queued is written and synced first (cluster: the lease is given up)
                    self.bridge?.stop()
                    completion()
                } else {
                    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(20)) { poll() }
                }
            }
            poll()
        }
    }
}

public enum ServerError: Error, CustomStringConvertible {
    case cluster(String)
    case web(String)
    public var description: String {
        switch self {
        case .cluster(let why): return "cluster: \(why)"
        case .web(let why): return why
        }
    }
}

extension Server {
    /// The log's history id (`welcome.epoch`): made when the data dir is new, and made again when
    /// recovery had to cut records out of the middle, so clients reload instead of resuming.
    static func epoch(dataDir: String, rewritten: Bool) throws -> String {
        let path = dataDir + "/epoch"
        if !rewritten, let s = try? String(contentsOfFile: path, encoding: .utf8) {
            let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
            if !t.isEmpty { return t }
        }
        let id = ChatSession.sessionID()
        // Durable before anyone sees it: a new epoch after a power cut would make every client
        // reload what it could have resumed.
        if let e = DurableFile.write(Array((id + "\n").utf8), to: path, directory: dataDir) {
            throw LogError.io("write \(path)", errno: e)
        }
        return id
    }
}

/// Echoes every text and binary message back, as is. Stateless: one for all sessions.
final class EchoDelegate: WebSocketDelegate {
    func webSocket(_ ws: WebSocketSession, text: UnsafeRawBufferPointer) { ws.sendText(text) }
    func webSocket(_ ws: WebSocketSession, binary: UnsafeRawBufferPointer) { ws.sendBinary(binary) }
    func webSocketClosed(_ ws: WebSocketSession) {}
}

public enum System {
    public static var activeCores: Int {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }
}
#if canImport(Glibc)
import Glibc
#endif

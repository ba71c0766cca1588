import ParleyLog
import ParleyNATS
import ParleyTransport

/// `parley serve --cluster … --node …`.
public struct ClusterSettings: Sendable {
    public var servers: [NATSClient.Server]
    public var node: String
    public var replicas = 3
    public var allowUnreplicated = false
    public var leaseTTLMs: UInt64 = 2000
    public init(servers: [NATSClient.Server], node: String) { self.servers = servers; self.node = node }
    public static func validNode(_ s: String) -> Bool { ClusterConfig.validNode(s) }
}

/// Everything `parley serve` can be told. Defaults are the embedded ones: `parley serve` with no
/// flags runs a sensible server.
public struct ServerConfig: Sendable {
    /// Loopback by default: exposing the server is a deliberate choice.
    public var host = "127.0.0.1"
    public var port = 8080
    /// Serial DispatchQueue loops; default one per active core.
    public var loops = 0
    public var readiness: ReadinessMode = .epoll
    public var dataDir = "./parley-data"
    /// `GET /v1/echo`: a WebSocket echo endpoint for conformance runs and raw benchmarks. Off by default.
    public var echo = false
    /// Largest WebSocket message; larger ones close with 1009. Chat needs little: 64 KiB.
    public var maxMessageBytes = 64 * 1024
    public var pingIntervalMs: UInt64 = 30_000
    public var pongTimeoutMs: UInt64 = 10_000
    /// SCHED_BATCH for the process: measured ~1.8x echo throughput with Dispatch on a shared core.
    public var schedBatch = true
    /// How long graceful shutdown waits for sessions to close before exiting anyway.
    public var shutdownGraceMs: UInt64 = 3_000
    public var transport = TransportLimits()
    /// HS256 secret for client tokens; generated into `<data-dir>/secrets.json` when not given.
    public var jwtSecret: String? = nil
    /// Bearer key for the REST API; generated like the JWT secret when not given.
    public var apiKey: String? = nil
    /// Open a log with corruption anyway, dropping the bad bytes (see `parley log verify --repair`).
    public var repairLog = false
    /// How long a user stays online after their last session closes (protocol "Presence").
    public var presenceGraceMs: Int64 = 5_000
    /// Conversation partitions (serial queues); 0: one per loop.
    public var chatPartitions = 0
    /// When an append counts as durable: every batch fsynced (`always`, the default) or at most
    /// every N ms.
    public var fsync: FsyncMode = .always
    /// TLS certificate chain and private key (PEM). With both set the server speaks TLS: on `tlsPort`
    /// if that is set (plain HTTP/WebSocket stays on `port`), otherwise on `port` itself.
    public var tlsCertificate: String? = nil
    public var tlsKey: String? = nil
    public var tlsPort: Int? = nil
    /// Development: make (or reuse) a self-signed P-256 certificate in `<data-dir>/tls/`.
    public var tlsSelfSigned = false

    /// Accept permessage-deflate offers (RFC 7692). On by default: browsers offer it.
    public var compression = true

    /// Cluster mode: the replicated log on NATS JetStream instead of the embedded one.
    public var cluster: ClusterSettings? = nil

    /// Development: serve the demo shop (`/demo`, customer tokens for demo users from
    /// `POST /demo/token`) and print console sign-in links for two demo agents at start.
    public var demo = false
    /// Production sign-in for the agent console: a URL (on the deployment's side) that answers
    /// `{"token"}` for the logged-in agent; nil: agents paste a token.
    public var consoleTokenURL: String? = nil

    public var tlsEnabled: Bool { tlsSelfSigned || (tlsCertificate != nil && tlsKey != nil) }

    public init() {}
}

import Foundation
import CoreMetrics
import Metrics
import ParleyHTTP
import ParleyLog
import ParleyNATS
import ParleyTransport
import Prometheus

/// The server's metrics (swift-metrics API, Prometheus text at `GET /metrics`). Hot-path counts are
/// gathered per loop and added here on each loop tick; gauges are read when scraped.
final class ServerMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    let accepted: CoreMetrics.Counter
    let httpRequests: (Int) -> CoreMetrics.Counter
    let messagesIn: CoreMetrics.Counter
    let messagesOut: CoreMetrics.Counter
    let tlsHandshakes: CoreMetrics.Counter
    let tlsErrors: CoreMetrics.Counter
    let watchFailures: CoreMetrics.Counter
    let tlsReloads: CoreMetrics.Counter
    let deflateRuns: CoreMetrics.Counter
    let compressedSent: CoreMetrics.Counter
    let inflateRuns: CoreMetrics.Counter
    let logAppends: CoreMetrics.Counter
    let logBytes: CoreMetrics.Counter
    let logFsync: CoreMetrics.Timer
    let logBatchRecords: CoreMetrics.Recorder
    let ackLatency: CoreMetrics.Timer
    let chatEvent: (RecordType) -> CoreMetrics.Counter
    private let chatEvents: [UInt8: CoreMetrics.Counter]
    private let sessionsOpen: CoreMetrics.Gauge
    private let queueLength: CoreMetrics.Gauge
    private let agentsAvailable: CoreMetrics.Gauge
    private let connectionsOpen: CoreMetrics.Gauge
    private let logDurableOffset: CoreMetrics.Gauge
    private let clusterRole: [(ReplicaCore.Role, CoreMetrics.Gauge)]
    private let clusterApplied: CoreMetrics.Gauge
    private let clusterPublished: CoreMetrics.Counter
    private let clusterRecordsPublished: CoreMetrics.Counter
    private let clusterAppendsFailed: CoreMetrics.Counter
    private var clusterLast = ClusterLog.Stats()
    private let clusterLock = NSLock()
    private let factory: PrometheusMetricsFactory

    init() {
        var f = PrometheusMetricsFactory(registry: registry)
        f.durationHistogramBuckets["parley_log_fsync_seconds"] = [
            .microseconds(100), .microseconds(200), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250), .seconds(1),
        ]
        f.durationHistogramBuckets["parley_chat_ack_seconds"] = [
            .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1),
        ]
        f.valueHistogramBuckets["parley_log_batch_records"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        factory = f
        accepted = CoreMetrics.Counter(label: "parley_connections_accepted_total", factory: f)
        httpRequests = { status in CoreMetrics.Counter(label: "parley_http_responses_total", dimensions: [("status", "\(status)")], factory: f) }
        messagesIn = CoreMetrics.Counter(label: "parley_ws_messages_received_total", factory: f)
        messagesOut = CoreMetrics.Counter(label: "parley_ws_messages_sent_total", factory: f)
        tlsHandshakes = CoreMetrics.Counter(label: "parley_tls_handshakes_total", factory: f)
        tlsErrors = CoreMetrics.Counter(label: "parley_tls_errors_total", factory: f)
        watchFailures = CoreMetrics.Counter(label: "parley_epoll_watch_failures_total", factory: f)
        tlsReloads = CoreMetrics.Counter(label: "parley_tls_reloads_total", factory: f)
        deflateRuns = CoreMetrics.Counter(label: "parley_ws_deflate_runs_total", factory: f)
        compressedSent = CoreMetrics.Counter(label: "parley_ws_compressed_messages_sent_total", factory: f)
        inflateRuns = CoreMetrics.Counter(label: "parley_ws_inflated_messages_total", factory: f)
        logAppends = CoreMetrics.Counter(label: "parley_log_appends_total", factory: f)
        logBytes = CoreMetrics.Counter(label: "parley_log_bytes_total", factory: f)
        logFsync = CoreMetrics.Timer(label: "parley_log_fsync_seconds", factory: f)
        logBatchRecords = CoreMetrics.Recorder(label: "parley_log_batch_records", factory: f)
        connectionsOpen = CoreMetrics.Gauge(label: "parley_connections_open", factory: f)
        ackLatency = CoreMetrics.Timer(label: "parley_chat_ack_seconds", factory: f)
        var events: [UInt8: CoreMetrics.Counter] = [:]
        for t in [RecordType.message, .conversationCreated, .conversationAssigned, .conversationTransferred, .conversationResolved, .orderAttached, .csat, .readMarker] {
            events[t.rawValue] = CoreMetrics.Counter(label: "parley_chat_events_total", dimensions: [("type", "\(t)")], factory: f)
        }
        chatEvents = events
        let other = CoreMetrics.Counter(label: "parley_chat_events_total", dimensions: [("type", "other")], factory: f)
        chatEvent = { events[$0.rawValue] ?? other }
        sessionsOpen = CoreMetrics.Gauge(label: "parley_chat_sessions", factory: f)
        queueLength = CoreMetrics.Gauge(label: "parley_chat_queue_length", factory: f)
        agentsAvailable = CoreMetrics.Gauge(label: "parley_chat_agents_available", factory: f)
        logDurableOffset = CoreMetrics.Gauge(label: "parley_log_durable_offset", factory: f)
        clusterRole = [ReplicaCore.Role.follower, .catchingUp, .writer, .suspended].map {
            ($0, CoreMetrics.Gauge(label: "parley_cluster_role", dimensions: [("role", $0.rawValue)], factory: f))
        }
        clusterApplied = CoreMetrics.Gauge(label: "parley_cluster_applied_sequence", factory: f)
        clusterPublished = CoreMetrics.Counter(label: "parley_cluster_stream_messages_published_total", factory: f)
        clusterRecordsPublished = CoreMetrics.Counter(label: "parley_cluster_records_published_total", factory: f)
        clusterAppendsFailed = CoreMetrics.Counter(label: "parley_cluster_appends_failed_total", factory: f)
    }

    /// Cluster mode: this node's role (1 for the one it has), the stream sequence its copy holds,
    /// and what it published (records per stream message show the group commit).
    private func recordCluster(_ c: ClusterLog) {
        let role = c.role
        for (r, g) in clusterRole { g.record(r == role ? 1 : 0) }
        clusterApplied.record(Int64(c.appliedSequence))
        let now = c.stats
        clusterLock.lock()
        let last = clusterLast
        clusterLast = now
        clusterLock.unlock()
        clusterPublished.increment(by: Int64(now.published - last.published))
        clusterRecordsPublished.increment(by: Int64(now.recordsPublished - last.recordsPublished))
        clusterAppendsFailed.increment(by: Int64(now.appendsFailed - last.appendsFailed))
    }

    /// Adds a loop's counters (called on that loop's tick).
    func absorb(_ c: inout LoopCounters) {
        if c.messagesIn > 0 { messagesIn.increment(by: Int64(c.messagesIn)) }
        if c.messagesOut > 0 { messagesOut.increment(by: Int64(c.messagesOut)) }
        if c.tlsHandshakes > 0 { tlsHandshakes.increment(by: Int64(c.tlsHandshakes)) }
        if c.tlsErrors > 0 { tlsErrors.increment(by: Int64(c.tlsErrors)) }
        if c.watchFailures > 0 { watchFailures.increment(by: Int64(c.watchFailures)) }
        if c.deflateRuns > 0 { deflateRuns.increment(by: Int64(c.deflateRuns)) }
        if c.compressedSent > 0 { compressedSent.increment(by: Int64(c.compressedSent)) }
        if c.inflateRuns > 0 { inflateRuns.increment(by: Int64(c.inflateRuns)) }
        c = LoopCounters()
    }

    func logBatch(records: Int, bytes: Int, syncNs: UInt64) {
        logAppends.increment(by: Int64(records))
        logBytes.increment(by: Int64(bytes))
        if syncNs > 0 { logFsync.recordNanoseconds(Int64(syncNs)) }
        logBatchRecords.record(records)
    }

    /// `GET /metrics`: Prometheus text format.
    func scrape(openConnections: Int, durableOffset: UInt64, chat: ChatService, cluster: ClusterLog?) -> HTTPResponse {
        if let cluster { recordCluster(cluster) }
        sessionsOpen.record(chat.sessions.load(ordering: .relaxed))
        queueLength.record(chat.queueLength.load(ordering: .relaxed))
        agentsAvailable.record(chat.agentsAvailable.load(ordering: .relaxed))
        connectionsOpen.record(openConnections)
        logDurableOffset.record(Int64(durableOffset))
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: registry.emitToBuffer())
    }
}

import Foundation
import CoreMetrics
import Metrics
import ParleyHTTP
import ParleyLog
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
    let logAppends: CoreMetrics.Counter
    let logBytes: CoreMetrics.Counter
    let logFsync: CoreMetrics.Timer
    let logBatchRecords: CoreMetrics.Recorder
    private let connectionsOpen: CoreMetrics.Gauge
    private let logDurableOffset: CoreMetrics.Gauge
    private let factory: PrometheusMetricsFactory

    init() {
        var f = PrometheusMetricsFactory(registry: registry)
        f.durationHistogramBuckets["parley_log_fsync_seconds"] = [
            .microseconds(100), .microseconds(200), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250), .seconds(1),
        ]
        f.valueHistogramBuckets["parley_log_batch_records"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        factory = f
        accepted = CoreMetrics.Counter(label: "parley_connections_accepted_total", factory: f)
        httpRequests = { status in CoreMetrics.Counter(label: "parley_http_responses_total", dimensions: [("status", "\(status)")], factory: f) }
        messagesIn = CoreMetrics.Counter(label: "parley_ws_messages_received_total", factory: f)
        messagesOut = CoreMetrics.Counter(label: "parley_ws_messages_sent_total", factory: f)
        logAppends = CoreMetrics.Counter(label: "parley_log_appends_total", factory: f)
        logBytes = CoreMetrics.Counter(label: "parley_log_bytes_total", factory: f)
        logFsync = CoreMetrics.Timer(label: "parley_log_fsync_seconds", factory: f)
        logBatchRecords = CoreMetrics.Recorder(label: "parley_log_batch_records", factory: f)
        connectionsOpen = CoreMetrics.Gauge(label: "parley_connections_open", factory: f)
        logDurableOffset = CoreMetrics.Gauge(label: "parley_log_durable_offset", factory: f)
    }

    /// Adds a loop's counters (called on that loop's tick).
    func absorb(_ c: inout LoopCounters) {
        if c.messagesIn > 0 { messagesIn.increment(by: Int64(c.messagesIn)) }
        if c.messagesOut > 0 { messagesOut.increment(by: Int64(c.messagesOut)) }
        c = LoopCounters()
    }

    func logBatch(records: Int, bytes: Int, syncNs: UInt64) {
        logAppends.increment(by: Int64(records))
        logBytes.increment(by: Int64(bytes))
        if syncNs > 0 { logFsync.recordNanoseconds(Int64(syncNs)) }
        logBatchRecords.record(records)
    }

    /// `GET /metrics`: Prometheus text format.
    func scrape(openConnections: Int, durableOffset: UInt64) -> HTTPResponse {
        connectionsOpen.record(openConnections)
        logDurableOffset.record(Int64(durableOffset))
        return HTTPResponse(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], body: registry.emitToBuffer())
    }
}

import Histogram
import Foundation

/// Latencies in nanoseconds, 1 µs to 120 s, 3 significant digits (values outside are clamped).
func latencyHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
}

extension Histogram where Count == UInt64 {
    @inline(__always) mutating func recordClamped(_ ns: UInt64) {
        _ = record(Swift.min(Swift.max(ns, 1_000), 120_000_000_000))
    }
}

/// Latency and counts gathered on one echo loop (loop-confined: no locks on the hot path).
final class LoopStats {
    var histogram = latencyHistogram()
    /// Every echo since the progress display last took it.
    var interval = latencyHistogram()
    var messages: UInt64 = 0
    var total: UInt64 = 0
    var errors: UInt64 = 0
    var opened = 0
    var closed = 0

    func reset() {
        histogram.reset()
        messages = 0
    }
}

/// A finished measurement, printable and serialisable.
struct Summary: Codable {
    var scenario: String
    var url: String
    var connections: Int
    var inflight: Int
    var messageBytes: Int
    var durationSeconds: Double
    var messages: UInt64
    var messagesPerSecond: Double
    var errors: UInt64
    var latencyMicros: [String: Double]
    var toolCPUPercent: Double
    var serverCPUPercent: Double?
    var serverRSSBytes: UInt64?
    var interrupted = false
    var timeline: [TimelinePoint] = []

    static func latency(_ h: Histogram<UInt64>) -> [String: Double] {
        guard h.totalCount > 0 else { return [:] }
        func us(_ ns: UInt64) -> Double { (Double(ns) / 1000 * 10).rounded() / 10 }
        return ["p50": us(h.valueAtPercentile(50)), "p90": us(h.valueAtPercentile(90)), "p99": us(h.valueAtPercentile(99)),
                "p99.9": us(h.valueAtPercentile(99.9)), "max": us(h.max), "mean": (h.mean / 100).rounded() / 10]
    }

    func printText() {
        print("\(scenario)  \(url)  connections=\(connections) inflight=\(inflight) size=\(messageBytes)B duration=\(String(format: "%.1f", durationSeconds))s")
        print(String(format: "  messages: %llu  (%.0f msg/s)   errors: %llu", messages, messagesPerSecond, errors))
        if !latencyMicros.isEmpty {
            let keys = ["p50", "p90", "p99", "p99.9", "max"]
            print("  latency µs: " + keys.map { "\($0) \(String(format: "%.1f", latencyMicros[$0] ?? 0))" }.joined(separator: "  "))
        }
        print("  cpu: " + cpuText(tool: toolCPUPercent, server: serverCPUPercent, serverRSS: serverRSSBytes, toolRSS: nil))
    }

    func writeJSON(_ path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(self).write(to: URL(fileURLWithPath: path))
    }
}

/// CPU use of the tool and (given its pid) the server over a measured window, in % of one core.
struct CPUWindow {
    let serverPid: Int32?
    private let tool0: Double
    private let server0: Double?
    private let start = Date()

    init(serverPid: Int32?) {
        self.serverPid = serverPid
        tool0 = processCPUSeconds(getpid()) ?? 0
        server0 = serverPid.flatMap(processCPUSeconds)
    }

    func finish() -> (seconds: Double, tool: Double, server: Double?) {
        let elapsed = max(Date().timeIntervalSince(start), 0.001)
        let tool = ((processCPUSeconds(getpid()) ?? 0) - tool0) / elapsed * 100
        let server = server0.flatMap { s0 in serverPid.flatMap(processCPUSeconds).map { ($0 - s0) / elapsed * 100 } }
        return (elapsed, tool, server)
    }
}

/// "tool 32%, server 72%, server rss 88.1 MiB": the same words in every summary and report.
func cpuText(tool: Double, server: Double?, serverRSS: UInt64?, toolRSS: UInt64?) -> String {
    var parts = [String(format: "tool %.0f%%", tool)]
    if let s = server { parts.append(String(format: "server %.0f%%", s)) }
    if let m = serverRSS { parts.append(String(format: "server rss %.1f MiB", Double(m) / 1048576)) }
    if let m = toolRSS { parts.append(String(format: "tool rss %.1f MiB", Double(m) / 1048576)) }
    return parts.joined(separator: ", ")
}

/// CPU seconds (user+system) of a process, from /proc/<pid>/stat; nil if it cannot be read.
func processCPUSeconds(_ pid: Int32) -> Double? {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = s.lastIndex(of: ")") else { return nil }
    let fields = s[s.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let u = Double(fields[11]), let k = Double(fields[12]) else { return nil }
    return (u + k) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

func processRSSBytes(_ pid: Int32) -> UInt64? {
    guard let s = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return nil }
    let f = s.split(separator: " ")
    guard f.count > 1, let pages = UInt64(f[1]) else { return nil }
    return pages * UInt64(sysconf(Int32(_SC_PAGESIZE)))
}

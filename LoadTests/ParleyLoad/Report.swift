import Dispatch
import Foundation
import Histogram
#if canImport(Glibc)
import Glibc
#endif

/// One latency distribution, in milliseconds, with the points of its percentile chart.
struct LatencySummary: Codable, Equatable {
    var count: UInt64
    var p50: Double, p90: Double, p99: Double, p999: Double, max: Double, mean: Double
    /// (percentile, ms) from p0 up to p99.999 and the max: the HdrHistogram-style chart.
    var percentiles: [[Double]]

    static let chartPercentiles: [Double] = [0, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 97.5, 98, 98.5,
                                             99, 99.25, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999]

    /// Values recorded in nanoseconds.
    init?(_ h: Histogram<UInt64>) {
        guard h.totalCount > 0 else { return nil }
        func ms(_ ns: UInt64) -> Double { (Double(ns) / 1e6 * 1000).rounded() / 1000 }
        count = h.totalCount
        p50 = ms(h.valueAtPercentile(50)); p90 = ms(h.valueAtPercentile(90)); p99 = ms(h.valueAtPercentile(99))
        p999 = ms(h.valueAtPercentile(99.9)); max = ms(h.max); mean = (h.mean / 1e6 * 1000).rounded() / 1000
        percentiles = LatencySummary.chartPercentiles.map { [$0, ms(h.valueAtPercentile($0))] } + [[100, ms(h.max)]]
    }

    var line: String {
        String(format: "p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f ms  (n=%llu)", p50, p90, p99, p999, max, count)
    }
}

/// One second of a run, as the progress display saw it.
struct TimelinePoint: Codable, Equatable {
    var t: Double
    var sentPerSecond: Double
    var deliveredPerSecond: Double
    var p99Ms: Double?
    var connections: Int
    var errors: UInt64
    var phase: String
}

/// What a scenario shows each second.
struct Sample {
    var sent: UInt64
    var delivered: UInt64
    var connections: Int
    var errors: UInt64
    var violations: UInt64
    var interval: Histogram<UInt64>?
}

/// Ctrl-C during a run ends it early, with the summary so far; a second Ctrl-C exits at once.
enum Interrupt {
    nonisolated(unsafe) private static var source: DispatchSourceSignal?
    private static let flag = NSLock()
    nonisolated(unsafe) private static var raised = false

    /// Call first thing in a command, before anything that takes time (connecting): a Ctrl-C
    /// earlier than this ends the process without a summary.
    static func install() {
        guard source == nil else { return }
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        s.setEventHandler {
            flag.lock()
            let second = raised
            raised = true
            flag.unlock()
            if second { _exit(130) }
            FileHandle.standardError.write("\ninterrupted: stopping, summary follows (Ctrl-C again to quit at once)\n".data(using: .utf8)!)
        }
        s.resume()
        source = s
    }

    static var requested: Bool { flag.lock(); defer { flag.unlock() }; return raised }
}

/// The once-a-second progress line (on a terminal) and the timeline kept for the reports.
final class Progress {
    let live = isatty(1) == 1
    private(set) var timeline: [TimelinePoint] = []
    private var last: (t: Double, sent: UInt64, delivered: UInt64)?
    private let start = Date()
    private var lineShown = false
    /// Latencies of the samples since the last timeline point.
    private var pending = latencyHistogram()

    /// Samples every `interval` seconds until `seconds` pass, `until` says stop, or Ctrl-C.
    /// Returns false if interrupted.
    @discardableResult
    func run(phase: String, seconds: Double, interval: Double = 1, sample: () -> Sample, until: () -> Bool = { false }) -> Bool {
        // Off a terminal (a script, CI) each phase announces its start on stderr, so whatever
        // drives the tool can wait for "measure" rather than guess how long set-up takes.
        if !live { FileHandle.standardError.write("phase: \(phase) (up to \(String(format: "%g", seconds)) s)\n".data(using: .utf8)!) }
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if Interrupt.requested { return false }
            if until() { break }
            Thread.sleep(forTimeInterval: min(interval, max(0.01, end.timeIntervalSinceNow)))
            tick(phase: phase, sample())
        }
        return !Interrupt.requested
    }

    /// Takes a sample; every second (of the run's clock) it becomes a timeline point and a new
    /// progress line. Samples in between only add their latencies to the second's histogram.
    func tick(phase: String, _ s: Sample) {
        let t = Date().timeIntervalSince(start)
        if let h = s.interval { pending.add(h) }
        guard let l = last else { last = (t, s.sent, s.delivered); return }
        guard t - l.t >= 0.999 else { return }
        let dt = t - l.t
        let p99 = pending.totalCount > 0 ? Double(pending.valueAtPercentile(99)) / 1e6 : nil
        pending.reset()
        let point = TimelinePoint(t: (t * 10).rounded() / 10, sentPerSecond: (Double(s.sent &- l.sent) / dt).rounded(),
                                  deliveredPerSecond: (Double(s.delivered &- l.delivered) / dt).rounded(),
                                  p99Ms: p99.map { ($0 * 1000).rounded() / 1000 }, connections: s.connections, errors: s.errors, phase: phase)
        timeline.append(point)
        last = (t, s.sent, s.delivered)
        if live {
            let p = p99.map { String(format: "%.2f ms", $0) } ?? "-"
            let line = String(format: "[%5.0fs] %-8@ conns %-7d sent %7.0f/s  delivered %7.0f/s  p99 %-10@ errors %llu  violations %llu",
                              t, phase as NSString, s.connections, point.sentPerSecond, point.deliveredPerSecond, p as NSString, s.errors, s.violations)
            FileHandle.standardOutput.write(("\r" + line + "\u{1B}[K").data(using: .utf8)!)
            lineShown = true
        }
    }

    /// Ends the live line so the summary starts on its own.
    func finish() {
        if lineShown { FileHandle.standardOutput.write("\n".data(using: .utf8)!) }
        lineShown = false
    }
}

/// A self-contained HTML report: tables and inline SVG charts, no script and nothing fetched.
enum HTMLReport {
    struct Series { var name: String; var color: String; var points: [(Double, Double)] }

    static func render(title: String, facts: [(String, String)], latencies: [(String, LatencySummary)],
                       timeline: [TimelinePoint], notes: [String]) -> String {
        var h = """
        <!doctype html><html lang="en"><head><meta charset="utf-8"><title>\(esc(title))</title>
        <style>body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:960px;color:#222}
        table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
        th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}h2{margin-top:1.6em}
        .ok{color:#17663a}.bad{color:#a11}svg{background:#fff;border:1px solid #ddd}</style></head><body>
        <h1>\(esc(title))</h1>
        """
        h += "<h2>Run</h2><table>"
        for (k, v) in facts { h += "<tr><td>\(esc(k))</td><td>\(esc(v))</td></tr>" }
        h += "</table>"
        if !latencies.isEmpty {
            h += "<h2>Latency (ms)</h2><table><tr><th>what</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>"
            for (name, l) in latencies {
                h += "<tr><td>\(esc(name))</td><td>\(l.count)</td>" + [l.p50, l.p90, l.p99, l.p999, l.max, l.mean].map { "<td>\(fmt($0))</td>" }.joined() + "</tr>"
            }
            h += "</table>"
            let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
            let series = latencies.enumerated().map { i, e in
                Series(name: e.0, color: colors[i % colors.count],
                       points: e.1.percentiles.map { (min(1e5, 1 / max(1e-5, 1 - $0[0] / 100)), max(0.001, $0[1])) })
            }
            h += "<h3>Latency by percentile</h3>"
            h += chart(series, logX: true, logY: true, xLabel: "percentile", yLabel: "ms",
                       xTicks: [(1, "0%"), (10, "90%"), (100, "99%"), (1000, "99.9%"), (10000, "99.99%"), (100000, "99.999%")])
        }
        if timeline.count >= 2 {
            h += "<h2>Over time</h2><h3>Throughput (per second)</h3>"
            h += chart([Series(name: "sent", color: "#1f77b4", points: timeline.map { ($0.t, $0.sentPerSecond) }),
                        Series(name: "delivered", color: "#2ca02c", points: timeline.map { ($0.t, $0.deliveredPerSecond) })],
                       logX: false, logY: false, xLabel: "seconds", yLabel: "messages/s", xTicks: nil)
            let p99 = timeline.compactMap { p in p.p99Ms.map { (p.t, $0) } }
            if p99.count >= 2 {
                h += "<h3>Delivery p99 each second (ms)</h3>"
                h += chart([Series(name: "p99", color: "#d62728", points: p99)], logX: false, logY: false, xLabel: "seconds", yLabel: "ms", xTicks: nil)
            }
            h += "<h3>Connections</h3>"
            h += chart([Series(name: "connections", color: "#9467bd", points: timeline.map { ($0.t, Double($0.connections)) })],
                       logX: false, logY: false, xLabel: "seconds", yLabel: "open", xTicks: nil)
        }
        if !notes.isEmpty {
            h += "<h2>Notes</h2><ul>" + notes.map { "<li>\(esc($0))</li>" }.joined() + "</ul>"
        }
        h += "<p><small>parley-load, \(esc(ISO8601DateFormatter().string(from: Date())))</small></p></body></html>\n"
        return h
    }

    /// An SVG line chart with axes, ticks and a legend.
    static func chart(_ series: [Series], logX: Bool, logY: Bool, xLabel: String, yLabel: String, xTicks: [(Double, String)]?) -> String {
        let w = 900.0, ht = 320.0, left = 70.0, right = 20.0, top = 20.0, bottom = 45.0
        let all = series.flatMap { $0.points }
        guard !all.isEmpty else { return "" }
        func tx(_ v: Double) -> Double { logX ? log10(max(v, 1e-9)) : v }
        func ty(_ v: Double) -> Double { logY ? log10(max(v, 1e-9)) : v }
        var x0 = all.map { tx($0.0) }.min()!, x1 = all.map { tx($0.0) }.max()!
        var y0 = logY ? all.map { ty($0.1) }.min()! : 0, y1 = all.map { ty($0.1) }.max()!
        if let t = xTicks { x0 = min(x0, tx(t.first!.0)); x1 = max(x1, tx(t.last!.0)) }
        if x1 <= x0 { x1 = x0 + 1 }
        if logY { y0 = floor(y0); y1 = ceil(y1) } else { y1 = niceCeil(y1) }
        if y1 <= y0 { y1 = y0 + 1 }
        func px(_ v: Double) -> Double { left + (tx(v) - x0) / (x1 - x0) * (w - left - right) }
        func py(_ v: Double) -> Double { top + (1 - (ty(v) - y0) / (y1 - y0)) * (ht - top - bottom) }
        var s = #"<svg xmlns="http://www.w3.org/2000/svg" width="\#(Int(w))" height="\#(Int(ht))" viewBox="0 0 \#(Int(w)) \#(Int(ht))" font-size="11">"#
        s += #"<line x1="\#(left)" y1="\#(ht - bottom)" x2="\#(w - right)" y2="\#(ht - bottom)" stroke="gray"/><line x1="\#(left)" y1="\#(top)" x2="\#(left)" y2="\#(ht - bottom)" stroke="gray"/>"#
        // y ticks
        let yTicks: [Double] = logY ? stride(from: y0, through: y1, by: 1).map { pow(10, $0) } : (0...4).map { y1 * Double($0) / 4 }
        for v in yTicks {
            let y = py(v)
            s += #"<line x1="\#(left)" y1="\#(f1(y))" x2="\#(w - right)" y2="\#(f1(y))" stroke="gainsboro"/><text x="\#(left - 6)" y="\#(f1(y + 4))" text-anchor="end">\#(fmt(v))</text>"#
        }
        // x ticks
        let xt: [(Double, String)] = xTicks ?? (0...5).map { let v = x0 + (x1 - x0) * Double($0) / 5; return (v, fmt(v)) }
        for (v, label) in xt {
            let x = px(v)
            s += #"<line x1="\#(f1(x))" y1="\#(ht - bottom)" x2="\#(f1(x))" y2="\#(ht - bottom + 4)" stroke="gray"/><text x="\#(f1(x))" y="\#(ht - bottom + 16)" text-anchor="middle">\#(esc(label))</text>"#
        }
        s += #"<text x="\#((left + w - right) / 2)" y="\#(ht - 6)" text-anchor="middle">\#(esc(xLabel))</text>"#
        s += #"<text x="14" y="\#((top + ht - bottom) / 2)" text-anchor="middle" transform="rotate(-90 14 \#((top + ht - bottom) / 2))">\#(esc(yLabel))</text>"#
        for (i, ser) in series.enumerated() where !ser.points.isEmpty {
            let d = ser.points.map { "\(f1(px($0.0))),\(f1(py($0.1)))" }.joined(separator: " ")
            s += #"<polyline fill="none" stroke="\#(ser.color)" stroke-width="1.8" points="\#(d)"/>"#
            let ly = top + 14 * Double(i)
            s += #"<rect x="\#(left + 12)" y="\#(ly + 2)" width="12" height="3" fill="\#(ser.color)"/><text x="\#(left + 28)" y="\#(ly + 7)">\#(esc(ser.name))</text>"#
        }
        return s + "</svg>"
    }

    private static func niceCeil(_ v: Double) -> Double {
        guard v > 0 else { return 1 }
        let p = pow(10, floor(log10(v)))
        for m in [1.0, 2, 2.5, 5, 10] where m * p >= v { return m * p }
        return 10 * p
    }

    private static func f1(_ v: Double) -> String { String(format: "%.1f", v) }

    static func fmt(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1000 { return String(format: "%.0f", v) }
        if abs(v) >= 10 { return String(format: "%.1f", v) }
        if abs(v) >= 0.1 { return String(format: "%.2f", v) }
        return String(format: "%.3f", v)
    }

    static func esc(_ s: String) -> String {
        var o = ""
        for c in s {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            default: o.append(c)
            }
        }
        return o
    }
}

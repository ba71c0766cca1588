import ArgumentParser
import Foundation
import Histogram
import ParleyServer
import XCTest
@testable import ParleyLoad

private let secret = String(repeating: "s", count: 40)
private let base = ["--url", "ws://127.0.0.1:9/v1/ws", "--jwt-secret", secret]

final class ArgumentTests: XCTestCase {
    func testChatNeedsExactlyOneRate() {
        XCTAssertThrowsError(try Chat.parse(base))
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "1", "--total-rate", "100"]))
        XCTAssertNoThrow(try Chat.parse(base + ["--rate", "1"]))
    }

    func testTotalRateIsSharedOverCustomers() throws {
        let c = try Chat.parse(base + ["--customers", "10000", "--agents", "200", "--total-rate", "2000"])
        XCTAssertEqual(c.chat.perCustomerRate, 0.2, accuracy: 1e-12)
        XCTAssertEqual(c.chat.capacity, 50, "default capacity: enough for every customer")
        XCTAssertEqual(try Chat.parse(base + ["--customers", "3", "--agents", "2", "--rate", "1"]).chat.capacity, 5, "at least the server's default")
    }

    func testRefusesWhatTheServerWouldRefuse() {
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "101"]), "over the server's 100/s per session")
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "0"]))
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "1", "--size", "16"]), "the due time needs 17 bytes")
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "1", "--size", "16385"]))
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "1", "--customers", "1001", "--agents", "10"]), "over 100 per agent")
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "1", "--jitter", "1.5"]))
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "1", "--run-id", "a b"]))
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "1", "--duration", "0"]))
        XCTAssertThrowsError(try Reconnect.parse(base + ["--rate", "1", "--drops", "0"]))
    }

    func testTargetsOnlyThisMachineUnlessTold() {
        let remote = ["--url", "ws://192.0.2.1:80/v1/ws", "--jwt-secret", secret, "--rate", "1"]
        XCTAssertThrowsError(try Chat.parse(remote))
        XCTAssertNoThrow(try Chat.parse(remote + ["--allow-remote"]))
        XCTAssertThrowsError(try Echo.parse(["--url", "http://127.0.0.1:1/"]))
    }

    func testOrdersNeedTheAPIKey() {
        XCTAssertThrowsError(try Chat.parse(base + ["--rate", "1", "--orders"]))
        XCTAssertNoThrow(try Chat.parse(base + ["--rate", "1", "--orders", "--api-key", "k"]))
    }
}

final class PacerTests: XCTestCase {
    func testDueTimesFollowTheScheduleNotTheSends() {
        var p = Pacer(ratePerSecond: 100, jitter: 0, startNs: 0, seed: 1)
        let first = p.nextDueNs
        XCTAssertLessThan(first, 10_000_000, "starts within one interval")
        let a = p.take(), b = p.take(), c = p.take()
        XCTAssertEqual(a, first)
        XCTAssertEqual(b - a, 10_000_000)
        XCTAssertEqual(c - b, 10_000_000)
    }

    /// Coordinated omission: a sender stalled for one second owes every send of that second, and
    /// timing them from their due times shows the stall in the percentiles; timing each from when
    /// it actually went out (what a closed-loop tool does) would not.
    /// A sender woken late owes every send that fell due meanwhile, each with its own due time (what
    /// the tool times from). Tests/integration/test_load_tool.py stalls a real server and checks
    /// what the tool then reports.
    func testASenderWokenLateOwesEverySendDueMeanwhile() {
        var p = Pacer(ratePerSecond: 100, jitter: 0, startNs: 0, seed: 7)
        let first = p.nextDueNs
        let owed = p.due(by: 1_000_000_000)
        XCTAssertEqual(owed.count, 100, "every send due during the stall is still made")
        XCTAssertEqual(owed.first, first)
        XCTAssertEqual(zip(owed, owed.dropFirst()).map { $1 - $0 }, Array(repeating: 10_000_000, count: 99), "due times keep the schedule")
        XCTAssertGreaterThan(p.nextDueNs, 1_000_000_000)
    }

    func testJitterKeepsTheMeanRateAndItsBounds() {
        var p = Pacer(ratePerSecond: 1000, jitter: 0.5, startNs: 0, seed: 3)
        var prev = p.take()
        var total: UInt64 = 0
        for _ in 0..<20_000 {
            let d = p.take()
            let gap = d - prev
            XCTAssertGreaterThanOrEqual(gap, 500_000)
            XCTAssertLessThanOrEqual(gap, 1_500_000)
            total += gap
            prev = d
        }
        XCTAssertEqual(Double(total) / 20_000, 1_000_000, accuracy: 10_000)
    }
}

final class DeliveryCheckTests: XCTestCase {
    func testEveryDeliveryIsCheckedAgainstTheNextSeq() {
        let t = ChatUser.Track()
        XCTAssertEqual(t.admit(1), .inOrder)
        XCTAssertEqual(t.admit(2), .inOrder)
        XCTAssertEqual(t.admit(2), .duplicateOrReordered)
        XCTAssertEqual(t.admit(5), .gap(missing: 2))
        XCTAssertEqual(t.admit(4), .duplicateOrReordered)
        XCTAssertEqual(t.admit(6), .inOrder)
        XCTAssertEqual(t.next, 7)
    }

    func testTheFirstEventMustBeOneUnlessAWelcomeSaidOtherwise() {
        XCTAssertEqual(ChatUser.Track().admit(3), .startedLate)
        let resumed = ChatUser.Track()
        resumed.next = 11  // the welcome said lastSeq 10
        XCTAssertEqual(resumed.admit(11), .inOrder)
    }

    func testMessageTextCarriesItsDueTime() {
        let due: UInt64 = 0x0123_4567_89ab_cdef
        let text = ChatText.make(due: due, bytes: 64)
        XCTAssertEqual(text.utf8.count, 64)
        XCTAssertEqual(Array(text.utf8).withUnsafeBytes { ChatText.due($0) }, due)
        XCTAssertNil(Array("hello there, not ours".utf8).withUnsafeBytes { ChatText.due($0) })
    }
}

final class ReportTests: XCTestCase {
    func testPercentilesOfAKnownDistribution() throws {
        var h = latencyHistogram()
        for ms in 1...1000 { h.recordClamped(UInt64(ms) * 1_000_000) }
        let l = try XCTUnwrap(LatencySummary(h))
        XCTAssertEqual(l.count, 1000)
        XCTAssertEqual(l.p50, 500, accuracy: 1)
        XCTAssertEqual(l.p99, 990, accuracy: 1)
        XCTAssertEqual(l.max, 1000, accuracy: 1)
        XCTAssertEqual(l.mean, 500.5, accuracy: 1)
        XCTAssertEqual(l.percentiles.last?[0], 100)
        XCTAssertNil(LatencySummary(latencyHistogram()), "no samples, no figures")
    }

    func testHTMLReportIsSelfContained() throws {
        var h = latencyHistogram()
        for us in 1...5000 { h.recordClamped(UInt64(us) * 1000) }
        let lat = try XCTUnwrap(LatencySummary(h))
        let timeline = (1...5).map { TimelinePoint(t: Double($0), sentPerSecond: 2000, deliveredPerSecond: 3999, p99Ms: 4.5, connections: 10200, errors: 0, phase: "measure") }
        let html = HTMLReport.render(title: "run <1> & co", facts: [("customers", "10000")], latencies: [("customer → agent", lat)],
                                     timeline: timeline, notes: ["a note"])
        XCTAssertTrue(html.hasPrefix("<!doctype html>"))
        XCTAssertTrue(html.contains("run &lt;1&gt; &amp; co"), "titles are escaped")
        XCTAssertTrue(html.contains("customer → agent"))
        XCTAssertTrue(html.contains(String(format: "%.2f", lat.p50)) || html.contains(HTMLReport.fmt(lat.p50)))
        XCTAssertGreaterThanOrEqual(html.components(separatedBy: "<svg").count - 1, 3, "percentile, throughput and p99 charts")
        XCTAssertTrue(html.contains("<polyline"))
        for external in ["<script", "src=", "href=", "<link", "@import"] {
            XCTAssertFalse(html.contains(external), "nothing to fetch: \(external)")
        }
    }

    func testJSONReportHasEveryFigure() throws {
        let r = ChatReport(scenario: "chat", url: "ws://127.0.0.1:1/v1/ws", runId: "r", startedAt: "now", interrupted: false, customers: 10, agents: 2,
                           agentCapacity: 5, ratePerCustomer: 1, targetMessagesPerSecond: 20, replyRatio: 1, textBytes: 64, orders: true,
                           rampSeconds: 1, durationSeconds: 5, connected: 12, assigned: 10, sent: 50, acked: 50, deliveredCustomerToAgent: 50,
                           deliveredAgentToCustomer: 50, messagesPerSecond: 10, latencyMs: [:], errors: ["errorFrames": 0], retriedUnavailable: 0, violations: ["gaps": 0],
                           lost: ["customerToAgent": 0], reconnects: 0, resumed: 0, resolved: 10, toolCPUPercent: 3, serverCPUPercent: nil,
                           serverRSSBytes: nil, toolRSSBytes: nil, firstErrors: [], timeline: [])
        XCTAssertTrue(r.passed)
        let o = try JSONSerialization.jsonObject(with: JSONEncoder().encode(r)) as! [String: Any]
        for k in ["sent", "acked", "latencyMs", "violations", "lost", "timeline", "toolCPUPercent", "messagesPerSecond"] { XCTAssertNotNil(o[k], k) }
        var bad = r
        bad.violations["gaps"] = 1
        XCTAssertFalse(bad.passed)
        bad = r
        bad.lost["customerToAgent"] = 1
        XCTAssertFalse(bad.passed)
        XCTAssertTrue(ChatRun.html(r).contains("PASS"))
    }
}

final class TokenTests: XCTestCase {
    /// Tokens minted by the tool verify with the server's own verifier, with the claims it reads.
    func testLocallyMintedTokensVerifyWithTheServer() async throws {
        let tokens = try TokenSource.local(secret: secret).mint([
            .init(sub: "load-a0", role: "agent", capacity: 50, ttlSeconds: 60),
            .init(sub: "load-c0", role: "customer", capacity: nil, ttlSeconds: 60),
        ])
        let server = try TokenService(secret: secret)
        let agent = try await server.verify(tokens[0])
        XCTAssertEqual(agent.sub.value, "load-a0")
        XCTAssertEqual(agent.role, .agent)
        XCTAssertEqual(agent.capacity, 50)
        let customer = try await server.verify(tokens[1])
        XCTAssertEqual(customer.role, .customer)
        let other = try TokenService(secret: String(repeating: "t", count: 40))
        do { _ = try await other.verify(tokens[0]); XCTFail("verified with another secret") } catch {}
        XCTAssertThrowsError(try TokenSource.local(secret: "short").mint([]))
    }
}

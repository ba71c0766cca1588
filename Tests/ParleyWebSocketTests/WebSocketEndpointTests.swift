import XCTest
import ParleyTransport
@testable import ParleyWebSocket

/// The endpoint state machine both the server session and the client run on: bytes and ticks in,
/// actions out, no socket.
final class WebSocketEndpointTests: XCTestCase {
    private static let group = LoopGroup(count: 1, mode: .epoll)
    private var loop: Loop { Self.group.loops[0] }

    private func endpoint(server: Bool = true, keepAlive: KeepAlive = KeepAlive(pingIntervalMs: 1000, pongTimeoutMs: 500, closeTimeoutMs: 200)) -> WebSocketEndpoint {
        WebSocketEndpoint(limits: FrameReaderLimits(maxMessageBytes: 1024, expectMasked: server), keepAlive: keepAlive, loop: loop)
    }

    /// Feeds bytes as a connection does, keeping what was not consumed; records the actions.
    private final class Recorder {
        var actions: [String] = []
        var pending: [UInt8] = []
        func act(_ a: WebSocketEndpoint.Action) {
            switch a {
            case .text(let t): actions.append("text:" + String(decoding: t, as: UTF8.self))
            case .binary(let b): actions.append("binary:\(b.count)")
            case .send(let op, let p):
                if op == .close, p.count >= 2 {
                    actions.append("send-close:\(UInt16(p[0]) << 8 | UInt16(p[1])):" + String(decoding: p[2...], as: UTF8.self))
                } else {
                    actions.append("send-\(op):\(p.count)")
                }
            case .closeTransport: actions.append("close-transport")
            }
        }
        func feed(_ e: WebSocketEndpoint, _ bytes: [UInt8]) {
            pending += bytes
            let n = pending.withUnsafeMutableBytes { buf in e.read(buf) { self.act($0) } }
            pending.removeFirst(n)
        }
    }

    private func masked(_ op: Opcode, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        payload.withUnsafeBytes { FrameEncoder.maskedFrame(op, $0, key: 0x1234_5678, fin: fin) }
    }

    func testMessagesPingsAndFragmentsByteByByte() {
        let e = endpoint()
        let r = Recorder()
        let stream = masked(.text, Array("hel".utf8), fin: false) + masked(.ping, [1, 2]) + masked(.continuation, Array("lo".utf8))
            + masked(.binary, [9, 9, 9])
        for b in stream { r.feed(e, [b]) }
        XCTAssertEqual(r.actions, ["send-pong:2", "text:hello", "binary:3"], "the ping is answered between the fragments")
        XCTAssertTrue(r.pending.isEmpty)
    }

    func testPeerCloseIsEchoedAndNothingAfterIsRead() {
        let e = endpoint()
        let r = Recorder()
        r.feed(e, masked(.close, FrameEncoder.closePayload(.goingAway, reason: "bye")) + masked(.text, Array("late".utf8)))
        XCTAssertEqual(r.actions, ["send-close:1001:", "close-transport"])
        XCTAssertEqual(e.peerCloseCode, 1001)
        XCTAssertTrue(e.closeSent)
        r.feed(e, masked(.text, Array("later".utf8)))
        XCTAssertEqual(r.actions.count, 2, "nothing is delivered after the peer's close")
    }

    func testOurCloseWaitsForThePeerThenTheTimerDrops() {
        let e = endpoint()
        let r = Recorder()
        let until = e.close(.shuttingDown, nowMs: 100) { r.act($0) }
        XCTAssertEqual(until, 300)
        XCTAssertEqual(r.actions, ["send-close:1001:server shutting down"])
        XCTAssertNil(e.close(.shuttingDown, nowMs: 150) { r.act($0) }, "close is sent once")
        r.feed(e, masked(.text, Array("in flight".utf8)))
        XCTAssertEqual(r.actions.count, 1, "messages after our close are not delivered")
        XCTAssertEqual(e.tick(nowMs: 300, lastReadMs: 200) { r.act($0) }, .drop)
    }

    func testProtocolErrorsFailWithTheirReason() {
        let cases: [([UInt8], String)] = [
            ([0x81, 0x02, 0x68, 0x69], "send-close:1002:protocol error"),  // unmasked from a client
            (masked(.text, [0xC3, 0x28]), "send-close:1007:invalid UTF-8"),
            (masked(.binary, [UInt8](repeating: 0, count: 1025)), "send-close:1009:message too big"),
            (masked(.continuation, [1]), "send-close:1002:protocol error"),
        ]
        for (bytes, expected) in cases {
            let e = endpoint()
            let r = Recorder()
            r.feed(e, bytes)
            XCTAssertEqual(r.actions, [expected, "close-transport"])
            XCTAssertEqual(e.failure?.code.rawValue, UInt16(expected.dropFirst(11).prefix(4)))
        }
    }

    func testKeepAlivePingsAnIdlePeerAndDropsASilentOne() {
        let e = endpoint()
        let r = Recorder()
        XCTAssertEqual(e.firstDeadline(nowMs: 0), 1000)
        // Traffic at 600: not idle yet at 1000, the next look is 1600.
        XCTAssertEqual(e.tick(nowMs: 1000, lastReadMs: 600) { r.act($0) }, .wait(untilMs: 1600))
        XCTAssertEqual(r.actions, [])
        XCTAssertEqual(e.tick(nowMs: 1600, lastReadMs: 600) { r.act($0) }, .wait(untilMs: 2100))
        XCTAssertEqual(r.actions, ["send-ping:0"])
        // Any byte after the ping counts: back to idle.
        XCTAssertEqual(e.tick(nowMs: 2100, lastReadMs: 1700) { r.act($0) }, .wait(untilMs: 2700))
        XCTAssertEqual(e.tick(nowMs: 2700, lastReadMs: 1700) { r.act($0) }, .wait(untilMs: 3200))
        XCTAssertEqual(e.tick(nowMs: 3200, lastReadMs: 1700) { r.act($0) }, .drop, "no byte since the ping")
    }

    func testAClientNeverPingsWhenTold() {
        let e = endpoint(server: false, keepAlive: KeepAlive(pingIntervalMs: 0))
        XCTAssertNil(e.firstDeadline(nowMs: 5))
        let r = Recorder()
        r.feed(e, FrameEncoder.frame(.text, Array("plain".utf8)))
        XCTAssertEqual(r.actions, ["text:plain"], "a client reads unmasked frames")
    }

    func testOverflowTellsThePeerOnceThenDrops() {
        let e = endpoint()
        let r = Recorder()
        _ = e.close(.shuttingDown, nowMs: 0) { r.act($0) }
        XCTAssertFalse(e.overflow { r.act($0) })
        XCTAssertEqual(r.actions, ["send-close:1001:server shutting down", "send-close:1008:slow consumer", "close-transport"],
                       "the queued close was discarded with the rest, so the reason goes out again")
        XCTAssertTrue(e.overflow { r.act($0) })
    }

    func testReconnectAdviceIsDefinedPerCode() {
        XCTAssertEqual(CloseReason.shuttingDown.advice, .soon)
        XCTAssertEqual(CloseReason.unauthorized.advice, .newToken)
        XCTAssertEqual(CloseReason.slowConsumer.advice, .afterBackoff)
        XCTAssertEqual(CloseCode.normal.advice, .no)
        // The table both SDKs follow (the JavaScript SDK's test reads the same file).
        let rows = try! Vectors.jsonLines("ws/close-advice.jsonl")
        XCTAssertGreaterThan(rows.count, 5)
        for row in rows {
            let code = CloseCode(UInt16(row["code"] as! Int))
            XCTAssertEqual(code.advice.rawValue, row["advice"] as? String, "close code \(code)")
        }
    }
}

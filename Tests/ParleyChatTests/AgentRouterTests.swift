import XCTest
@testable import ParleyChat

final class AgentRouterTests: XCTestCase {
    typealias R = AgentRouter<String>

    /// Two agents online and available: "a1" (capacity 2) and "a2" (capacity 1).
    private func router() -> R {
        var r = R()
        _ = r.sessionOpened(agent: "a1", capacity: 2, nowMs: 0)
        _ = r.sessionOpened(agent: "a2", capacity: 1, nowMs: 0)
        _ = r.setStatus(agent: "a1", .available, nowMs: 10)
        _ = r.setStatus(agent: "a2", .available, nowMs: 20)
        return r
    }

    func testAgentsAreAwayUntilTheySetAStatus() {
        var r = R()
        _ = r.sessionOpened(agent: "a1", capacity: 5, nowMs: 0)
        XCTAssertEqual(r.route("c1", nowMs: 1), .queued(position: 1))
        XCTAssertEqual(r.setStatus(agent: "a1", .available, nowMs: 2).map { $0.0 }, ["c1"], "becoming available takes the queue")
    }

    func testFewestOpenConversationsFirstThenIdleLongest() {
        var r = router()
        XCTAssertEqual(r.route("c1", nowMs: 100), .assigned(agent: "a1"), "equal load: a1 idle since 10, a2 since 20")
        XCTAssertEqual(r.route("c2", nowMs: 101), .assigned(agent: "a2"), "a2 has fewer open conversations")
        XCTAssertEqual(r.route("c3", nowMs: 102), .assigned(agent: "a1"), "a2 is at capacity")
        XCTAssertEqual(r.route("c4", nowMs: 103), .queued(position: 1), "everyone full: FIFO queue")
        XCTAssertEqual(r.route("c5", nowMs: 104), .queued(position: 2))
        XCTAssertEqual(r.queue, ["c4", "c5"])
    }

    func testAnAgentWithoutAnOpenSessionGetsNothing() {
        var r = router()
        r.sessionClosed(agent: "a1")
        r.sessionClosed(agent: "a2")
        XCTAssertEqual(r.route("c1", nowMs: 5), .queued(position: 1), "a grace period does not count as a session")
        XCTAssertEqual(r.sessionOpened(agent: "a2", capacity: 1, nowMs: 6).map { $0.0 }, ["c1"])
    }

    func testReleaseHandsTheNextWaitingConversationInOrder() {
        var r = router()
        for c in ["c1", "c2", "c3", "c4", "c5"] { _ = r.route(c, nowMs: 100) }
        XCTAssertEqual(r.release("c2", nowMs: 200).map { "\($0.0)->\($0.1)" }, ["c4->a2"])
        XCTAssertEqual(r.queue, ["c5"])
        XCTAssertEqual(r.release("c5", nowMs: 201).count, 0, "releasing a waiting conversation just removes it")
        XCTAssertEqual(r.queue, [])
    }

    func testClaimTakesOnlyWaitingConversationsAndRespectsCapacity() {
        var r = router()
        for c in ["c1", "c2", "c3", "c4"] { _ = r.route(c, nowMs: 100) }  // c4 waits
        XCTAssertFalse(r.claim("c4", by: "a2", nowMs: 101), "a2 is full")
        XCTAssertFalse(r.claim("c1", by: "a1", nowMs: 101), "c1 is not waiting")
        _ = r.setStatus(agent: "a3", .available, nowMs: 0)  // unknown agent: no session, ignored
        _ = r.release("c1", nowMs: 102)  // a1 takes c4 automatically
        XCTAssertEqual(r.agent(of: "c4"), "a1")
    }

    func testTransferToAnAgentOrBackToTheQueue() {
        var r = router()
        _ = r.route("c1", nowMs: 100)  // a1
        XCTAssertNil(r.transfer("c1", from: "a1", to: "a9", nowMs: 101), "unknown agent")
        XCTAssertEqual(r.transfer("c1", from: "a1", to: "a2", nowMs: 102), .assigned(agent: "a2"))
        XCTAssertEqual(r.agent(of: "c1"), "a2")
        XCTAssertNil(r.transfer("c2", from: "a1", to: "a2", nowMs: 103), "a2 is full")
        // Back to the queue: another agent takes it at once, never the one who gave it up.
        XCTAssertEqual(r.transfer("c1", from: "a2", to: nil, nowMs: 104), .assigned(agent: "a1"))
        _ = r.setStatus(agent: "a1", .away, nowMs: 105)
        XCTAssertEqual(r.transfer("c1", from: "a1", to: nil, nowMs: 106), .assigned(agent: "a2"), "a2 has room again")
        _ = r.setStatus(agent: "a1", .available, nowMs: 107)
        XCTAssertEqual(r.transfer("c1", from: "a2", to: "a1", nowMs: 108), .assigned(agent: "a1"))
        _ = r.setStatus(agent: "a2", .away, nowMs: 109)
        XCTAssertEqual(r.transfer("c1", from: "a1", to: nil, nowMs: 110), .queued(position: 1), "nobody else can take it: it waits")
        XCTAssertEqual(r.queue, ["c1"])
    }

    func testAgentGoneRequeuesTheirConversationsAtTheFrontAndReroutes() {
        var r = router()
        _ = r.route("c1", nowMs: 100)  // a1
        _ = r.route("c2", nowMs: 101)  // a2
        _ = r.route("c3", nowMs: 102)  // a1
        _ = r.route("c4", nowMs: 103)  // queued
        let (requeued, assigned) = r.agentGone("a1", nowMs: 200)
        XCTAssertEqual(Set(requeued), ["c1", "c3"])
        XCTAssertTrue(assigned.isEmpty, "a2 is full")
        XCTAssertEqual(Array(r.queue.suffix(1)), ["c4"], "orphans go ahead of those already waiting")
        XCTAssertEqual(r.agents["a1"]?.status, .offline)
        XCTAssertEqual(r.availableAgents, 0)
    }
}

import XCTest
@testable import ParleyChat

final class PresenceTrackerTests: XCTestCase {
    func testOnlineOnFirstSessionOfflineOnlyAfterTheGrace() {
        var p = PresenceTracker(graceMs: 5_000)
        XCTAssertEqual(p.sessionOpened("u1", nowMs: 0), .online("u1"))
        XCTAssertNil(p.sessionOpened("u1", nowMs: 1), "a second device changes nothing")
        p.sessionClosed("u1", nowMs: 2)
        XCTAssertTrue(p.hasSession("u1"))
        p.sessionClosed("u1", nowMs: 1_000)
        XCTAssertFalse(p.hasSession("u1"))
        XCTAssertTrue(p.isOnline("u1"), "still online during the grace period")
        XCTAssertEqual(p.nextDeadlineMs, 6_000)
        XCTAssertEqual(p.tick(nowMs: 5_999), [])
        XCTAssertEqual(p.tick(nowMs: 6_000), [.offline("u1")])
        XCTAssertFalse(p.isOnline("u1"))
        XCTAssertNil(p.nextDeadlineMs)
    }

    func testAQuickReconnectDoesNotFlap() {
        var p = PresenceTracker(graceMs: 5_000)
        _ = p.sessionOpened("u1", nowMs: 0)
        p.sessionClosed("u1", nowMs: 100)
        XCTAssertNil(p.sessionOpened("u1", nowMs: 3_000), "back within the grace: no online event either")
        XCTAssertEqual(p.tick(nowMs: 10_000), [])
        XCTAssertTrue(p.isOnline("u1"))
    }

    func testSeveralUsersLeaveInOrder() {
        var p = PresenceTracker(graceMs: 1_000)
        for u in ["a", "b", "c"] { _ = p.sessionOpened(u, nowMs: 0) }
        p.sessionClosed("c", nowMs: 10)
        p.sessionClosed("a", nowMs: 20)
        p.sessionClosed("b", nowMs: 30)
        XCTAssertEqual(p.tick(nowMs: 1_025), [.offline("c"), .offline("a")])
        XCTAssertEqual(p.tick(nowMs: 2_000), [.offline("b")])
        p.sessionClosed("b", nowMs: 2_001)  // closing what is not open is ignored
        XCTAssertEqual(p.tick(nowMs: 9_999), [])
    }
}

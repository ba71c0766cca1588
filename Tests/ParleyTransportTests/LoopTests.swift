import Foundation
import ParleyTransport
import XCTest

final class LoopTests: XCTestCase {
    final class Recorder: ConnectionHandler {
        let closed: XCTestExpectation
        var reason: Connection.CloseReason?
        init(_ e: XCTestExpectation) { closed = e }
        func connectionRead(_ c: Connection, _ bytes: UnsafeMutableRawBufferPointer) -> Int { bytes.count }
        func connectionDeadline(_ c: Connection, nowMs: UInt64) {}
        func connectionOverflow(_ c: Connection) {}
        func connectionClosed(_ c: Connection) { reason = c.closeReason; closed.fulfill() }
    }

    /// A descriptor epoll refuses to watch (a regular file: EPERM) is a connection that cannot be
    /// served: it is closed with `.resources` on the next turn, and the loop goes on serving.
    func testADescriptorEpollRefusesIsClosedNotATrap() throws {
        let group = LoopGroup(count: 1, mode: .epoll)
        let loop = group.loops[0]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("parley-epoll-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let recorder = Recorder(expectation(description: "closed"))
        loop.queue.async { _ = loop.adopt(fd: fd, handler: recorder) }
        waitForExpectations(timeout: 10)
        XCTAssertEqual(recorder.reason, .resources)
        let alive = expectation(description: "the loop still runs")
        loop.queue.async { alive.fulfill() }
        wait(for: [alive], timeout: 10)
    }
}

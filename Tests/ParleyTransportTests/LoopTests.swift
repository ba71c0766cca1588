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
    /// served: adopting it is an error value (not a trap), the descriptor is closed, no handler
    /// callback comes, and the loop goes on serving.
    func testADescriptorEpollRefusesIsAnErrorNotATrap() throws {
        let group = LoopGroup(count: 1, mode: .epoll)
        let loop = group.loops[0]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("parley-epoll-\(UUID().uuidString)").path
        FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
        defer { unlink(path) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let closed = expectation(description: "closed")
        closed.isInverted = true
        let recorder = Recorder(closed)
        var failure: Loop.AdoptFailure?
        var watchFailures: UInt64 = 0
        loop.queue.sync {
            do throws(Loop.AdoptFailure) { try loop.adopt(fd: fd, handler: recorder) } catch { failure = error }
            watchFailures = loop.counters.watchFailures
        }
        XCTAssertEqual(failure, .watch(EPERM))
        XCTAssertEqual(watchFailures, 1)
        XCTAssertEqual(fcntl(fd, F_GETFD), -1, "the descriptor was closed")
        let alive = expectation(description: "the loop still runs")
        loop.queue.async { alive.fulfill() }
        wait(for: [alive, closed], timeout: 1)
        XCTAssertNil(recorder.reason, "a connection that never opened gets no callback")
    }
}

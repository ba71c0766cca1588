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
        let recorder = Recorder(XCTestExpectation(description: "never closed: it never opened"))
        var failure: Loop.AdoptFailure?
        var watchFailures: UInt64 = 0
        loop.queue.sync {
            do throws(Loop.AdoptFailure) { try loop.adopt(fd: fd, handler: recorder) } catch { failure = error }
            watchFailures = loop.counters.watchFailures
        }
        XCTAssertEqual(failure, .watch(EPERM))
        XCTAssertEqual(watchFailures, 1)
        XCTAssertEqual(fcntl(fd, F_GETFD), -1, "the descriptor was closed")
        // A turn of the loop after the failure: it still serves, and nothing was called back (a
        // close would have been queued before this).
        var reason: Connection.CloseReason?? = .none
        loop.queue.sync { reason = .some(recorder.reason) }
        XCTAssertEqual(reason, .some(nil), "a connection that never opened gets no callback")
    }
}

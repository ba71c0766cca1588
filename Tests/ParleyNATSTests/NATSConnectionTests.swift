import Foundation
@testable import ParleyNATS
import ParleyTransport
import XCTest

/// A real nats-server (the pinned binary scripts/setup.sh puts in .venv) with JetStream syncing
/// every write, on a random loopback port.
final class NATSServerProcess {
    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../.venv/bin/nats-server").standardized.path
    let process = Process()
    let dir: String
    private(set) var port = 0

    init() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            throw XCTSkip("nats-server is not installed in .venv (scripts/setup.sh installs it)")
        }
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-nats-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let conf = dir + "/nats.conf"
        try "host: 127.0.0.1\nport: -1\njetstream { store_dir: \"\(dir)/js\", sync_interval: always }\n".write(toFile: conf, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["-c", conf]
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // The server says its port once it listens: "Listening for client connections on 127.0.0.1:PORT".
        let found = DispatchSemaphore(value: 0)
        let box = PortBox()
        Thread {
            var text = ""
            while true {
                let d = err.fileHandleForReading.availableData
                if d.isEmpty { break }
                text += String(decoding: d, as: UTF8.self)
                if box.port == 0, let r = text.range(of: #"client connections on 127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                    box.port = Int(text[r].split(separator: ":").last!) ?? 0
                    found.signal()
                }
            }
        }.start()
        guard found.wait(timeout: .now() + 30) == .success, box.port > 0 else {
            process.terminate()
            throw XCTSkip("nats-server did not start")
        }
        port = box.port
    }

    func stop() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: dir)
    }

    final class PortBox: @unchecked Sendable { var port = 0 }
}

final class NATSConnectionTests: XCTestCase {
    static let group = LoopGroup(count: 1)
    var loop: Loop { Self.group.loops[0] }

    /// Connects and runs `body` on the loop once the handshake is done.
    func connected(_ server: NATSServerProcess, onClose: @escaping (String) -> Void = { _ in }, _ body: @escaping (NATSConnection) -> Void) {
        let port = server.port
        loop.queue.async { [loop] in
            do {
                _ = try NATSConnection.connect(host: "127.0.0.1", port: port, on: loop, name: "test", onReady: body, onClose: { _, why in onClose(why) })
            } catch {
                XCTFail("connect: \(error)")
            }
        }
    }

    func testHandshakePublishSubscribeAndNoResponders() throws {
        let server = try NATSServerProcess()
        defer { server.stop() }
        let got = expectation(description: "message"), nobody = expectation(description: "no responders")
        connected(server) { n in
            XCTAssertEqual(n.serverInfo["version"] as? String, "2.15.1")
            XCTAssertEqual(n.serverInfo["jetstream"] as? Bool, true)
            do {
                try n.subscribe("greet.*") { m in
                    XCTAssertEqual(m.subject, "greet.ann")
                    XCTAssertEqual(m.payload, Array("hi".utf8))
                    XCTAssertEqual(m.headers?["Who"], "test")
                    got.fulfill()
                    n.request("nobody.home", payload: [], timeoutMs: 10_000) { r in
                        XCTAssertEqual(r.map(\.payload), .failure(.noResponders))
                        nobody.fulfill()
                    }
                }
                try n.publish("greet.ann", headers: NATSHeaders(fields: [("Who", "test")]), payload: Array("hi".utf8))
            } catch {
                XCTFail("\(error)")
            }
        }
        wait(for: [got, nobody], timeout: 30)
    }

    /// The facts the cluster design rests on, from the real engine: a stream created through the
    /// JetStream API; a publish acknowledged with its stream sequence; the same `Nats-Msg-Id`
    /// again is a duplicate with the original sequence; a publish fenced with the wrong
    /// `Nats-Expected-Last-Sequence` is refused, with the right one it lands.
    func testJetStreamAcksDeduplicationAndTheExpectedLastSequenceFence() throws {
        let server = try NATSServerProcess()
        defer { server.stop() }
        let done = expectation(description: "jetstream")
        var answers: [[String: Any]] = []
        func json(_ r: Result<NATSMessage, NATSError>) -> [String: Any] {
            guard case .success(let m) = r else { return ["failure": "\(r)"] }
            return ((try? JSONSerialization.jsonObject(with: Data(m.payload))) as? [String: Any]) ?? ["unreadable": true]
        }
        connected(server) { n in
            let stream = #"{"name":"CHAT","subjects":["chat.>"],"storage":"file","num_replicas":1}"#
            n.request("$JS.API.STREAM.CREATE.CHAT", payload: Array(stream.utf8), timeoutMs: 20_000) { r in
                answers.append(json(r))
                n.request("chat.c1", headers: NATSHeaders(fields: [("Nats-Msg-Id", "m1")]), payload: Array("a".utf8)) { r in
                    answers.append(json(r))
                    n.request("chat.c1", headers: NATSHeaders(fields: [("Nats-Msg-Id", "m1")]), payload: Array("a".utf8)) { r in
                        answers.append(json(r))
                        n.request("chat.c1", headers: NATSHeaders(fields: [("Nats-Expected-Last-Sequence", "7")]), payload: Array("b".utf8)) { r in
                            answers.append(json(r))
                            n.request("chat.c1", headers: NATSHeaders(fields: [("Nats-Expected-Last-Sequence", "1")]), payload: Array("b".utf8)) { r in
                                answers.append(json(r))
                                done.fulfill()
                            }
                        }
                    }
                }
            }
        }
        wait(for: [done], timeout: 60)
        XCTAssertEqual(answers.count, 5)
        XCTAssertEqual((answers[0]["config"] as? [String: Any])?["name"] as? String, "CHAT", "\(answers[0])")
        XCTAssertEqual(answers[1]["seq"] as? Int, 1, "\(answers[1])")
        XCTAssertEqual(answers[1]["stream"] as? String, "CHAT")
        XCTAssertEqual(answers[2]["seq"] as? Int, 1, "a duplicate gets the original's sequence: \(answers[2])")
        XCTAssertEqual(answers[2]["duplicate"] as? Bool, true)
        let refused = answers[3]["error"] as? [String: Any]
        XCTAssertEqual(refused?["err_code"] as? Int, 10071, "wrong last sequence: \(answers[3])")
        XCTAssertEqual(answers[3]["seq"] as? Int ?? 0, 0, "nothing stored")
        XCTAssertEqual(answers[4]["seq"] as? Int, 2, "\(answers[4])")
    }

    func testAServerThatGoesAwayClosesTheConnectionAndFailsWhatWaits() throws {
        let server = try NATSServerProcess()
        let closed = expectation(description: "closed"), failed = expectation(description: "request failed")
        connected(server, onClose: { why in XCTAssertFalse(why.isEmpty); closed.fulfill() }) { n in
            // A subscriber that never answers: the request waits until the server is gone.
            do { try n.subscribe("slow") { _ in } } catch { XCTFail("\(error)") }
            n.request("slow", payload: [], timeoutMs: 60_000) { r in
                if case .failure(.closed) = r {} else { XCTFail("\(r)") }
                failed.fulfill()
            }
            DispatchQueue.global().async { server.stop() }
        }
        wait(for: [failed, closed], timeout: 30)
    }
}

final class NATSClientTests: XCTestCase {
    static let group = LoopGroup(count: 1)
    var loop: Loop { Self.group.loops[0] }

    func testServerURLs() {
        XCTAssertEqual(NATSClient.Server(url: "nats://127.0.0.1:4223"), NATSClient.Server(host: "127.0.0.1", port: 4223))
        XCTAssertEqual(NATSClient.Server(url: "nats://localhost"), NATSClient.Server(host: "localhost", port: 4222))
        for bad in ["127.0.0.1:4222", "nats://", "nats://h:0", "nats://h:99999", "nats://h:x", "nats://h:1:2"] {
            XCTAssertNil(NATSClient.Server(url: bad), bad)
        }
    }

    func testBackoffGrowsToTwoSecondsWithJitter() {
        XCTAssertEqual(NATSClient.backoffMs(failures: 0, unit: 0.5), 50)
        XCTAssertEqual(NATSClient.backoffMs(failures: 3, unit: 0.5), 400)
        XCTAssertEqual(NATSClient.backoffMs(failures: 30, unit: 0.5), 2000)
        XCTAssertEqual(NATSClient.backoffMs(failures: 30, unit: 0), 1000)
        XCTAssertEqual(NATSClient.backoffMs(failures: 30, unit: 0.999_999), 2999)
    }

    /// The server it is on goes away: the client connects to the next one, subscribes again, and
    /// gets what is published there.
    func testReconnectsToAnotherServerAndSubscribesAgain() throws {
        let a = try NATSServerProcess(), b = try NATSServerProcess()
        defer { a.stop(); b.stop() }
        let onA = expectation(description: "connected to a"), lost = expectation(description: "lost a"),
            onB = expectation(description: "connected to b"), got = expectation(description: "message through b")
        let servers = [NATSClient.Server(host: "127.0.0.1", port: a.port), NATSClient.Server(host: "127.0.0.1", port: b.port)]
        var client: NATSClient!
        loop.queue.async { [loop] in
            client = NATSClient(servers: servers, on: loop, name: "reconnect-test") { event in
                switch event {
                case .connected(let s) where s == servers[0]: onA.fulfill(); DispatchQueue.global().async { a.stop() }
                case .disconnected(let s, _) where s == servers[0]: lost.fulfill()
                case .connected(let s) where s == servers[1]:
                    onB.fulfill()
                    // Someone else publishes on b: the subscription made while on a must be there again.
                    _ = try? NATSConnection.connect(host: "127.0.0.1", port: b.port, on: loop, onReady: { p in
                        try? p.publish("orders.placed", payload: Array("o-1".utf8))
                    }, onClose: { _, _ in })
                case .disconnected(let s, _) where s == servers[1]: break  // the stop at the end
                default: XCTFail("\(event)")
                }
            }
            do {
                try client.subscribe("orders.*") { m in
                    XCTAssertEqual(m.payload, Array("o-1".utf8))
                    got.fulfill()
                }
            } catch { XCTFail("\(error)") }
            client.start()
        }
        wait(for: [onA, lost, onB, got], timeout: 60, enforceOrder: true)
        loop.queue.sync { XCTAssertEqual(client.connects, 2); client.stop() }
    }
}

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

    /// A request nobody answers (a subscriber that stays silent) fails with `.timeout` once its
    /// time is up, and the connection goes on.
    func testARequestNobodyAnswersTimesOut() throws {
        let server = try NATSServerProcess()
        defer { server.stop() }
        let timedOut = expectation(description: "timeout"), after = expectation(description: "still serving")
        connected(server) { n in
            do { try n.subscribe("silent") { _ in } } catch { XCTFail("\(error)") }
            n.request("silent", payload: [], timeoutMs: 300) { r in
                XCTAssertEqual(r.map(\.payload), .failure(.timeout))
                timedOut.fulfill()
                do {
                    try n.subscribe("echo") { m in try? n.publish(m.replyTo!, payload: m.payload) }
                } catch { XCTFail("\(error)") }
                n.request("echo", payload: Array("still here".utf8), timeoutMs: 10_000) { r in
                    XCTAssertEqual(r.map(\.payload), .success(Array("still here".utf8)))
                    after.fulfill()
                }
            }
        }
        wait(for: [timedOut, after], timeout: 30, enforceOrder: true)
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

final class JetStreamTests: XCTestCase {
    static func outcome<T>(_ r: Result<T, JetStream.Failure>) -> String {
        switch r {
        case .success(let v): return "success(\(v))"
        case .failure(let f): return f.apiCode.map { "err_code \($0)" } ?? "\(f)"
        }
    }

    /// Runs callback-style steps one after another (each calls `next` when its answer is in).
    static func inSequence(_ steps: [(@escaping () -> Void) -> Void], then done: @escaping () -> Void) {
        guard let first = steps.first else { return done() }
        first { inSequence(Array(steps.dropFirst()), then: done) }
    }

    static let group = LoopGroup(count: 1)
    var loop: Loop { Self.group.loops[0] }

    /// The PubAck fast path reads exactly JetStream's usual answer and leaves anything else (a
    /// duplicate, an error, other fields, a malformed number) to the JSON path (the real server's
    /// duplicates are checked in the test below).
    func testPubAckFastPath() {
        func ack(_ s: String) -> JetStream.PubAck? { JetStream.pubAck(Array(s.utf8)) }
        XCTAssertEqual(ack(#"{"stream":"PARLEY","seq":42}"#), .init(stream: "PARLEY", seq: 42, duplicate: false))
        for other in [#"{"stream":"PARLEY","seq":7,"duplicate":true}"#, #"{"stream":"PARLEY","seq":7,"domain":"x"}"#, #"{"error":{"code":400,"err_code":10071}}"#, #"{"stream":"PARLEY","domain":"x","seq":1}"#,
                      #"{"stream":"PARLEY","seq":0}"#, #"{"stream":"PARLEY","seq":-1}"#, #"{"stream":"PAR"#,
                      #"{"stream":"PARLEY","seq":123456789012345678901}"#, #"{"stream":"P\"X","seq":1}"#, ""] {
            XCTAssertNil(ack(other), other)
        }
    }

    /// The facts the cluster design rests on, from the real engine (`sync_interval: always`): a
    /// stream made through the API (again with the same config: found, not an error); an append
    /// acknowledged with its stream sequence; the same `Nats-Msg-Id` again is a duplicate with the
    /// original's sequence; an append fenced with the wrong `Nats-Expected-Last-Sequence` is
    /// refused and stores nothing, with the right one it lands; a message reads back by sequence
    /// with its headers; the replica rule refuses this one-server stream unless allowed.
    func testStreamsAcksDeduplicationTheFenceAndReadBack() throws {
        let server = try NATSServerProcess()
        defer { server.stop() }
        let done = expectation(description: "jetstream")
        var steps: [String] = []
        var info: JetStream.StreamInfo?
        var client: NATSClient!
        loop.queue.async { [loop] in
            client = NATSClient(servers: [.init(host: "127.0.0.1", port: server.port)], on: loop) { event in
                guard case .connected = event else { return }
                let js = JetStream(client: client)
                // One call after another, each recording what JetStream answered.
                Self.inSequence([
                    { next in js.createStream(name: "CHAT", subjects: ["chat.>"], replicas: 1) { r in steps.append("create \(r.map(\.name))"); next() } },
                    { next in js.createStream(name: "CHAT", subjects: ["chat.>"], replicas: 1) { r in steps.append("again \(r.map(\.name))"); next() } },
                    { next in js.publish("chat.c1", payload: Array("a".utf8), msgId: "m1", expectedLastSeq: 0) { r in steps.append("publish \(r.map(\.seq))"); next() } },
                    { next in js.publish("chat.c1", payload: Array("a".utf8), msgId: "m1") { r in steps.append("duplicate \(r.map { "\($0.seq) \($0.duplicate)" })"); next() } },
                    { next in js.publish("chat.c1", payload: Array("b".utf8), msgId: "m2", expectedLastSeq: 7) { r in steps.append("fenced \(Self.outcome(r.map(\.seq)))"); next() } },
                    { next in js.publish("chat.c1", payload: Array("b".utf8), msgId: "m2", expectedLastSeq: 1) { r in steps.append("next \(r.map(\.seq))"); next() } },
                    { next in js.message(stream: "CHAT", seq: 2) { r in
                        steps.append("read \(r.map { "\($0.subject) \(String(decoding: $0.payload, as: UTF8.self)) \($0.headers?["Nats-Msg-Id"] ?? "-")" })"); next() } },
                    { next in js.streamInfo("CHAT") { r in info = try? r.get(); next() } },
                    { next in js.streamInfo("NOPE") { r in steps.append("missing \(Self.outcome(r.map(\.name)))"); next() } },
                ], then: { done.fulfill() })
            }
            client.start()
        }
        wait(for: [done], timeout: 60)
        XCTAssertEqual(steps, [
            "create success(\"CHAT\")", "again success(\"CHAT\")", "publish success(1)", "duplicate success(\"1 true\")",
            "fenced err_code \(JetStream.Failure.wrongLastSequence)", "next success(2)", "read success(\"chat.c1 b m2\")",
            "missing err_code \(JetStream.Failure.streamNotFound)",
        ])
        XCTAssertEqual(info?.lastSeq, 2, "the refused append stored nothing")
        XCTAssertEqual(info?.messages, 2)
        XCTAssertEqual(info?.replicas, 1)
        let why = try XCTUnwrap(JetStream.checkReplicas(XCTUnwrap(info), allowUnreplicated: false))
        XCTAssertTrue(why.contains("1 replica") && why.contains("--allow-unreplicated"), why)
        XCTAssertNil(JetStream.checkReplicas(try XCTUnwrap(info), allowUnreplicated: true))
        loop.queue.sync { client.stop() }
    }
}

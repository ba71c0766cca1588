import Foundation
import XCTest
import ParleyChat
import ParleyLog
@testable import ParleyClient

/// The Swift SDK against the real `parley` binary over real sockets (Parley's own client
/// transport; `URLSessionWebSocketTask` cannot run on Linux).
final class ChatClientTests: XCTestCase {
    private var server: ServerProcess!
    private var storeDirs: [URL] = []
    private var clients: [ChatClient] = []

    override func setUp() async throws {
        server = try ServerProcess()
        try server.start()
    }

    override func tearDown() async throws {
        for c in clients { await c.close() }
        server.stop()
        for d in storeDirs { try? FileManager.default.removeItem(at: d) }
    }

    private func storeDir() -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("parley-swift-store-\(UUID().uuidString)")
        storeDirs.append(d)
        return d
    }

    private func client(store: (any ChatStateStore)? = nil, transport: (any ChatTransport)? = nil, requestTimeoutMs: Int = 30_000) -> ChatClient {
        let c = ChatClient(urls: [server.url], store: store ?? MemoryStateStore(), transport: transport ?? NativeTransport.shared,
                           backoff: Backoff(initialMs: 50, maxMs: 400), requestTimeoutMs: requestTimeoutMs)
        clients.append(c)
        return c
    }

    private func texts(_ events: [SequencedEvent]) -> [String] {
        events.compactMap { if case .message(_, let text, _) = $0.event { return text } else { return nil } }
    }

    // MARK: chatting

    func testACustomerAndAnAgentChatThroughTheSDK() async throws {
        try await server.putOrder(user: "cust-1", id: "order-77")
        let agent = client()
        let agentEvents = await EventRecorder.recording(agent)
        let srv = server!
        let agentWelcome = try await within("connect") { try await agent.connect { try await srv.token("agent-1", role: "agent") } }
        XCTAssertEqual(agentWelcome.user.role, .agent)
        try await agent.setStatus(.available)

        let customer = client()
        let customerEvents = await EventRecorder.recording(customer)
        try await within("connect") { try await customer.connect { try await srv.token("cust-1", role: "customer") } }
        let conversation = try await customer.open(order: .last)
        XCTAssertEqual(conversation.order?.id, "order-77", "the conversation opens on the customer's last order")

        let ack = try await customer.send(text: "Where is my kettle?", in: conversation.id)
        XCTAssertGreaterThan(ack.seq, 0)
        XCTAssertEqual(ack.conversation, conversation.id)

        // Routing gives the conversation to the available agent, who sees the order and the message.
        try await agentEvents.first("the customer's message at the agent") {
            if case .event(let e) = $0, e.conversation == conversation.id, case .message(_, "Where is my kettle?", _) = e.event { return true }
            return false
        }
        let seen = await agent.conversations[conversation.id]
        XCTAssertEqual(seen?.order?.id, "order-77")
        XCTAssertEqual(seen?.status, .assigned)

        await agent.typing(conversation.id)
        try await customerEvents.first("the agent typing") {
            if case .typing(let c, let user, true) = $0 { return c == conversation.id && user.id == "agent-1" }
            return false
        }
        let reply = try await agent.send(text: "It ships today.", in: conversation.id)
        try await customerEvents.first("the agent's reply") {
            if case .event(let e) = $0, e.seq == reply.seq, case .message(let from, "It ships today.", _) = e.event { return from.id == "agent-1" }
            return false
        }
        try await customer.markRead(conversation.id, seq: reply.seq)
        try await agentEvents.first("the customer's read cursor") {
            if case .read(let c, let user, let seq) = $0 { return c == conversation.id && user.id == "cust-1" && seq == reply.seq }
            return false
        }

        try await agent.resolve(conversation.id)
        try await customerEvents.first("the resolution") {
            if case .event(let e) = $0, case .resolved = e.event { return e.conversation == conversation.id }
            return false
        }
        try await customer.csat(conversation.id, score: 5, comment: "quick")

        let history = try await customer.history(conversation.id)
        XCTAssertEqual(texts(history), ["Where is my kettle?", "It ships today."])
        let firstPage = try await customer.history(conversation.id, limit: 2)
        let before = try await customer.history(conversation.id, before: firstPage[0].seq)
        XCTAssertEqual(before.map(\.seq) + firstPage.map(\.seq), history.map(\.seq), "paging backwards joins up with no gap or overlap")

        do {
            try await customer.claim(conversation.id)
            XCTFail("a customer cannot claim")
        } catch let e as ChatClientError {
            XCTAssertEqual(e.code, .server(.forbidden))
        }
    }

    // MARK: the server killed mid-send

    func testServerKilledAndRestartedMidSendDeliversEveryMessageOnceInOrder() async throws {
        let srv = server!
        let customer = client(store: FileStateStore(directory: storeDir()))
        let events = await EventRecorder.recording(customer)
        try await within("connect") { try await customer.connect { try await srv.token("cust-kill", role: "customer") } }
        let conversation = try await customer.open(order: .none)

        let count = 30
        var sends: [Task<MessageAck, Error>] = []
        for i in 0..<count {
            let id = "m-\(i)"
            sends.append(Task { try await customer.send(text: "message \(i)", in: conversation.id, clientMsgId: id) })
            // In the outbox before the next one is made: the outbox order is the send order.
            try await events.first("m-\(i) in the outbox") {
                if case .outbox(let list) = $0 { return list.contains { $0.clientMsgId == id } }
                return false
            }
            if i == count / 3 {
                // Some acknowledged, the rest in flight or not yet sent: the server dies.
                _ = try await within("an early ack") { [t = sends[i / 2]] in try await t.value }
                srv.kill()
            }
            if i == 2 * count / 3 { try srv.start() }
        }
        var acks: [MessageAck] = []
        for (i, t) in sends.enumerated() { acks.append(try await within("the ack of m-\(i)") { try await t.value }) }
        XCTAssertEqual(acks.map(\.clientMsgId), (0..<count).map { "m-\($0)" })
        XCTAssertEqual(acks.map(\.seq), acks.map(\.seq).sorted(), "acks in send order")
        XCTAssertEqual(Set(acks.map(\.seq)).count, count, "one seq per message")

        let history = try await customer.history(conversation.id, limit: 1000)
        XCTAssertEqual(texts(history), (0..<count).map { "message \($0)" }, "every message once, in order")
        let outbox = await customer.outbox
        XCTAssertTrue(outbox.isEmpty)
        let disconnected = await events.events.contains { if case .disconnected = $0 { return true } else { return false } }
        XCTAssertTrue(disconnected, "the connection really dropped")
    }

    // MARK: app restart

    func testAnAppRestartResendsTheOutboxExactlyOnce() async throws {
        let srv = server!
        let dir = storeDir()
        let token: @Sendable () async throws -> String = { try await srv.token("cust-restart", role: "customer") }

        // Run 1: the server stores the message but the app never hears so (acks and the echo are lost).
        let lossy = LossyTransport(dropping: ["{\"type\":\"ack\"", "{\"type\":\"message\""])
        let first = client(store: FileStateStore(directory: dir), transport: lossy)
        let firstEvents = await EventRecorder.recording(first)
        try await within("connect") { try await first.connect(tokenProvider: token) }
        let conversation = try await first.open(order: .none)
        let pending = Task { try await first.send(text: "stored, ack lost", in: conversation.id, clientMsgId: "lost-ack") }
        var stored = false
        for _ in 0..<200 where !stored {
            stored = texts(try await first.history(conversation.id)).contains("stored, ack lost")
        }
        XCTAssertTrue(stored, "the server stored it")
        // Run 1 goes on while the server is down: a second message only reaches the outbox.
        srv.kill()
        let offline = Task { try await first.send(text: "typed offline", in: conversation.id, clientMsgId: "offline") }
        try await firstEvents.first("both in the outbox") {
            if case .outbox(let list) = $0 { return list.map(\.clientMsgId) == ["lost-ack", "offline"] }
            return false
        }
        await first.close()  // the app is killed
        for t in [pending, offline] {
            do { _ = try await within("the end of run 1's sends") { try await t.value }; XCTFail("not acknowledged in run 1") } catch let e as ChatClientError { XCTAssertEqual(e.code, .closed) }
        }

        // Run 2: a new client on the same store resends both, the server stores each once.
        try srv.start()
        let second = client(store: FileStateStore(directory: dir))
        let secondEvents = await EventRecorder.recording(second)
        try await within("connect") { try await second.connect(tokenProvider: token) }
        try await secondEvents.first("the outbox emptied") {
            if case .outbox(let list) = $0 { return list.isEmpty }
            return false
        }
        let history = try await second.history(conversation.id)
        XCTAssertEqual(texts(history), ["stored, ack lost", "typed offline"], "each message stored exactly once, in order")
    }

    // MARK: epoch

    func testANewEpochResetsTheClientInsteadOfResumingAgainstAnotherHistory() async throws {
        let srv = server!
        let store = MemoryStateStore()
        let customer = client(store: store)
        let events = await EventRecorder.recording(customer)
        let old = try await within("connect") { try await customer.connect { try await srv.token("cust-epoch", role: "customer") } }
        let conversation = try await customer.open(order: .none)
        _ = try await customer.send(text: "hello", in: conversation.id)

        try srv.restartWithNewHistory()
        guard case .reset(let previous, let epoch) = try await events.first("reset", where: { if case .reset = $0 { return true } else { return false } })
        else { return XCTFail() }
        XCTAssertEqual(previous, old.epoch)
        XCTAssertNotEqual(epoch, old.epoch)
        let welcome = try await events.first("the new session's welcome") {
            if case .welcome(let w) = $0 { return w.epoch != old.epoch }
            return false
        }
        guard case .welcome(let w) = welcome else { return XCTFail() }
        XCTAssertEqual(w.epoch, epoch)
        let known = await customer.conversations[conversation.id]
        XCTAssertNil(known, "what belonged to the old history is forgotten")
        XCTAssertEqual(store.load(user: "cust-epoch")?.positions[conversation.id.description], nil)
        let fresh = try await customer.open(order: .none)
        XCTAssertNotEqual(fresh.id, conversation.id)
    }

    // MARK: lost replies

    func testARequestWhoseReplyIsLostTimesOutAndTheConnectionGoesOn() async throws {
        let srv = server!
        let customer = client(transport: LossyTransport(dropping: ["{\"type\":\"history\""]), requestTimeoutMs: 300)
        try await within("connect") { try await customer.connect { try await srv.token("cust-lost", role: "customer") } }
        let conversation = try await customer.open(order: .none)
        do {
            _ = try await within("the timeout") { try await customer.history(conversation.id) }
            XCTFail("the history reply never comes")
        } catch let e as ChatClientError {
            XCTAssertEqual(e.code, .timeout)
        }
        let ack = try await within("a send after it") { try await customer.send(text: "still here", in: conversation.id) }
        XCTAssertGreaterThan(ack.seq, 0, "the connection was kept")
    }

    // MARK: tokens

    func testAnExpiredTokenIsReplacedOnceThenTheClientGivesUp() async throws {
        let srv = server!
        let calls = Counter()
        let renewing = client()
        let welcome = try await renewing.connect {
            let n = await calls.next()
            return try await srv.token("cust-token", role: "customer", expired: n == 1)
        }
        XCTAssertEqual(welcome.user.id, "cust-token")
        let renewed = await calls.value
        XCTAssertEqual(renewed, 2, "4001 asked the app for one new token")

        let refused = Counter()
        let stuck = client()
        do {
            try await stuck.connect {
                _ = await refused.next()
                return try await srv.token("cust-token", role: "customer", expired: true)
            }
            XCTFail("an always-expired token cannot connect")
        } catch let e as ChatClientError {
            XCTAssertEqual(e.code, .unauthorized)
        }
        let asked = await refused.value
        XCTAssertEqual(asked, 2, "one retry with a new token, then it stops instead of looping")
        guard case .unauthorized = await stuck.state else { return XCTFail("state is unauthorized") }
    }

    // MARK: pure parts

    func testBackoffTokenSubjectAndTheFileStore() throws {
        let b = Backoff(initialMs: 100, maxMs: 1000)
        XCTAssertEqual(b.delayMs(attempt: 0, random: 0), 50)
        XCTAssertEqual(b.delayMs(attempt: 0, random: 1), 100)
        XCTAssertEqual(b.delayMs(attempt: 10, random: 1), 1000)
        XCTAssertEqual(tokenSubject("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.sig"), "u-1")
        XCTAssertNil(tokenSubject("not a token"))

        let store = FileStateStore(directory: storeDir())
        XCTAssertNil(try store.load(user: "a/b"))
        let state = ChatState(epoch: "e1", positions: ["x": 3], outbox: [OutboxEntry(conversation: "x", clientMsgId: "m", text: "hé", at: 1)])
        try store.save(state, user: "a/b")
        try store.save(state, user: "other")
        XCTAssertEqual(try store.load(user: "a/b"), state)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: store.directory.path).count, 2, "one file per user, no temporary left")
    }
}

actor Counter {
    private(set) var value = 0
    func next() -> Int { value += 1; return value }
}

/// A transport that loses some frames from the server (those that start with one of `dropping`):
/// the network losing an ack, without a mock of the server.
final class LossyTransport: ChatTransport, @unchecked Sendable {
    private let inner = NativeTransport.shared
    private let dropping: [String]
    init(dropping: [String]) { self.dropping = dropping }

    func open(_ url: String, subprotocol: String, events: @escaping @Sendable (TransportEvent) -> Void) -> any ChatSocket {
        inner.open(url, subprotocol: subprotocol) { [dropping] e in
            if case .text(let bytes) = e {
                let s = String(decoding: bytes, as: UTF8.self)
                if dropping.contains(where: { s.hasPrefix($0) }) { return }
            }
            events(e)
        }
    }
}

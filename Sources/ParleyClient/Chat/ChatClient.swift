import Foundation
import ParleyChat
import ParleyJSON
import ParleyLog
import ParleyProtocol
import ParleyWebSocket

/// A chat connection for apps: connects with a token the app's backend signed and keeps
/// connecting. It resumes every conversation from the last `seq` it saw (kept in a `ChatStateStore`),
/// keeps unacknowledged messages in a persisted outbox and resends them, in order, with the same
/// `clientMsgId` after reconnects and app restarts (the server stores each id once), reloads when
/// the server's history epoch changes, and asks for a new token when the server says 4001.
///
/// ```swift
/// let chat = ChatClient(url: "wss://chat.example.com/v1/ws")
/// let events = await chat.events()
/// try await chat.connect { try await backend.parleyToken() }
/// let conversation = try await chat.open(order: .last)
/// let ack = try await chat.send(text: "Where is my kettle?", in: conversation.id)
/// for await event in events { … }
/// ```
public actor ChatClient {
    /// The WebSocket subprotocol of protocol v1.
    public static let subprotocol = "parley.v1"

    public nonisolated let urls: [String]
    public nonisolated let backoff: Backoff
    /// How long a connection may take to reach `welcome` before it is dropped and tried again.
    public nonisolated let connectTimeoutMs: Int
    /// How long a request (not a message: those wait in the outbox) waits for its reply.
    public nonisolated let requestTimeoutMs: Int
    let store: any ChatStateStore
    let transport: any ChatTransport

    /// The connection's state; also reported as `.state` events.
    public internal(set) var state: ConnectionState = .idle
    /// The current (or last) session's welcome.
    public internal(set) var welcome: Welcome?
    /// What this client knows of each conversation, kept up to date from events.
    public internal(set) var conversations: [ConversationID: ConversationView] = [:]
    /// Agents: the waiting queue as last sent.
    public internal(set) var queue: [QueueEntry] = []

    var tokenProvider: (@Sendable () async throws -> String)?
    var persisted = ChatState()
    var storeUser: String?
    var socket: (any ChatSocket)?
    /// Bumped by every connection attempt: events of a superseded attempt are ignored.
    var generation = 0
    var urlIndex = 0
    var attempt = 0
    var authFailures = 0
    /// After an epoch change: the next hello carries no resume.
    var freshStart = false
    var stopped = true
    var nextRef = 1
    var pending: [String: Pending] = [:]
    /// Requests made while not connected: sent after the next welcome.
    var queued: [Request] = []
    var sendWaiters: [String: [CheckedContinuation<MessageAck, Error>]] = [:]
    var welcomeWaiters: [CheckedContinuation<Welcome, Error>] = []
    var subscribers: [Int: AsyncStream<ChatClientEvent>.Continuation] = [:]
    var nextSubscriber = 0
    var agentStatus: AgentStatus?
    var typingSentMs: [ConversationID: Int64] = [:]
    var attemptTask: Task<Void, Never>?
    var saveScheduled = false

    struct Request {
        var request: ClientRequest
        var continuation: CheckedContinuation<ServerFrame, Error>
    }

    enum Pending {
        case request(Request)
        case send(OutboxEntry)
    }

    /// - Parameters:
    ///   - urls: `ws://` or `wss://` URLs of the chat endpoint (`/v1/ws`); the next one is tried
    ///     after a 1001 or a failed connection.
    ///   - store: where positions and the outbox live between runs (default: a file per user).
    ///   - transport: the WebSocket underneath (default: `URLSessionWebSocketTask` on Apple
    ///     platforms, Parley's own client elsewhere).
    public init(urls: [String], store: (any ChatStateStore)? = nil, transport: (any ChatTransport)? = nil,
                backoff: Backoff = Backoff(), connectTimeoutMs: Int = 15_000, requestTimeoutMs: Int = 30_000) {
        precondition(!urls.isEmpty, "ChatClient needs at least one URL")
        self.urls = urls
        self.store = store ?? FileStateStore.standard()
        self.transport = transport ?? ChatClient.defaultTransport()
        self.backoff = backoff
        self.connectTimeoutMs = connectTimeoutMs
        self.requestTimeoutMs = requestTimeoutMs
    }

    public init(url: String, store: (any ChatStateStore)? = nil, transport: (any ChatTransport)? = nil, backoff: Backoff = Backoff()) {
        self.init(urls: [url], store: store, transport: transport, backoff: backoff)
    }

    static func defaultTransport() -> any ChatTransport {
        #if canImport(Darwin)
        return URLSessionTransport()
        #else
        return NativeTransport.shared
        #endif
    }

    // MARK: events

    /// A stream of everything that happens from now on (each call makes a new subscriber; the
    /// stream ends when the client is closed).
    public func events() -> AsyncStream<ChatClientEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ChatClientEvent.self, bufferingPolicy: .unbounded)
        let id = nextSubscriber
        nextSubscriber += 1
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in Task { await self?.unsubscribe(id) } }
        return stream
    }

    private func unsubscribe(_ id: Int) { subscribers[id] = nil }

    func emit(_ e: ChatClientEvent) {
        for c in subscribers.values { c.yield(e) }
    }

    func setState(_ s: ConnectionState) {
        guard state != s else { return }
        state = s
        emit(.state(s))
    }

    // MARK: lifecycle

    /// Connects (and keeps connecting) with tokens from `tokenProvider`, asked before every
    /// connection. Returns the first welcome; throws `unauthorized` if a token was refused twice
    /// in a row. While the server cannot be reached it keeps trying (with backoff) and waits.
    @discardableResult
    public func connect(tokenProvider: @escaping @Sendable () async throws -> String) async throws -> Welcome {
        self.tokenProvider = tokenProvider
        if stopped {
            stopped = false
            authFailures = 0
            startAttempt()
        }
        return try await ready()
    }

    /// The current session's welcome, or the next one's.
    public func ready() async throws -> Welcome {
        if state == .open, let w = welcome { return w }
        if case .unauthorized(let why) = state { throw ChatClientError(.unauthorized, why) }
        if state == .closed || stopped { throw ChatClientError(.closed, "client closed") }
        return try await withCheckedThrowingContinuation { welcomeWaiters.append($0) }
    }

    /// Reconnects now (the app knows the network is back, or the user signed in again).
    public func reconnect() {
        guard tokenProvider != nil else { return }
        stopped = false
        authFailures = 0
        dropSocket()
        startAttempt()
    }

    /// Closes for good: pending requests fail with `closed`, the outbox stays in the store (the
    /// next client for this user resends it), the event streams end.
    public func close() {
        stopped = true
        generation += 1
        attemptTask?.cancel()
        saveNow()
        dropSocket()
        failAll(ChatClientError(.closed, "client closed"))
        setState(.closed)
        for c in subscribers.values { c.finish() }
        subscribers = [:]
    }

    func dropSocket() {
        let s = socket
        socket = nil
        s?.close()
    }

    func startAttempt(afterMs ms: Int = 0) {
        attemptTask?.cancel()
        generation += 1
        let g = generation
        attemptTask = Task { [weak self] in
            if ms > 0 { try? await Task.sleep(nanoseconds: UInt64(ms) * 1_000_000) }
            guard !Task.isCancelled else { return }
            await self?.run(g)
        }
    }

    /// One connection, from asking for a token to the socket's close.
    private func run(_ g: Int) async {
        guard !stopped, g == generation, let provider = tokenProvider else { return }
        setState(attempt == 0 && welcome == nil ? .connecting : .reconnecting(inMs: nil))
        let token: String
        do {
            token = try await provider()
        } catch {
            guard g == generation else { return }
            emit(.error(ChatClientError(.unauthorized, "the token provider failed: \(error)")))
            scheduleReconnect(rotate: false)
            return
        }
        guard !stopped, g == generation else { return }
        guard !token.isEmpty else { return unauthorized("no token") }
        loadUser(tokenSubject(token) ?? "anonymous")

        let url = urls[urlIndex % urls.count]
        let (stream, continuation) = AsyncStream.makeStream(of: TransportEvent.self, bufferingPolicy: .unbounded)
        let s = transport.open(url, subprotocol: ChatClient.subprotocol) { event in
            continuation.yield(event)
            if case .closed = event { continuation.finish() }
        }
        socket = s
        let timeout = Task { [weak self, connectTimeoutMs] in
            try? await Task.sleep(nanoseconds: UInt64(connectTimeoutMs) * 1_000_000)
            guard !Task.isCancelled else { return }
            await self?.connectTimedOut(g, s)
        }
        defer { timeout.cancel() }
        for await event in stream {
            guard g == generation, socket === s else { continue }  // superseded: let it drain
            switch event {
            case .opened:
                let resume = freshStart ? [:] : resumePositions()
                freshStart = false
                s.send(ClientFrames.encode(.hello(token: token, resume: resume, unknownResume: [])))
            case .text(let bytes):
                if receive(bytes) { timeout.cancel() }
            case .closed(let code, let reason):
                socketClosed(code: code, reason: reason)
            }
        }
    }

    private func connectTimedOut(_ g: Int, _ s: any ChatSocket) {
        guard g == generation, socket === s, state != .open else { return }
        socket = nil
        s.close()
        socketClosed(code: abnormalClosure, reason: "no welcome within \(connectTimeoutMs) ms")
    }

    func socketClosed(code: UInt16, reason: String) {
        socket = nil
        let wasOpen = state == .open
        failPending(ChatClientError(.disconnected, "connection closed (\(code))"))
        guard !stopped else { return }
        emit(.disconnected(code: code, reason: reason))
        switch CloseCode(code).advice {
        case .newToken:
            authFailures += 1
            if authFailures >= 2 { return unauthorized(reason.isEmpty ? "token refused" : reason) }
            setState(.reconnecting(inMs: 0))
            startAttempt()
        case .soon:
            // The server is going away: another node, or this one restarted, very soon.
            urlIndex += 1
            let ms = Int.random(in: 100...1000)
            setState(.reconnecting(inMs: ms))
            startAttempt(afterMs: ms)
        case .afterBackoff, .no:
            // 1000 from the server is only ever an echo of ours; if we did not ask, try again.
            scheduleReconnect(rotate: !wasOpen)
        }
    }

    func scheduleReconnect(rotate: Bool) {
        guard !stopped else { return }
        if rotate { urlIndex += 1 }
        let ms = backoff.delayMs(attempt: attempt)
        attempt += 1
        setState(.reconnecting(inMs: ms))
        startAttempt(afterMs: ms)
    }

    func unauthorized(_ why: String) {
        stopped = true
        dropSocket()
        failAll(ChatClientError(.unauthorized, why))
        setState(.unauthorized(why))
    }

    /// Fails requests waiting for a reply; sends stay in the outbox for the next session.
    func failPending(_ error: ChatClientError) {
        let p = pending
        pending = [:]
        for case .request(let r) in p.values { r.continuation.resume(throwing: error) }
    }

    func failAll(_ error: ChatClientError) {
        failPending(error)
        for q in queued { q.continuation.resume(throwing: error) }
        queued = []
        for waiters in sendWaiters.values { for w in waiters { w.resume(throwing: error) } }
        sendWaiters = [:]
        for w in welcomeWaiters { w.resume(throwing: error) }
        welcomeWaiters = []
    }

    // MARK: persisted state

    func loadUser(_ user: String) {
        guard user != storeUser else { return }
        storeUser = user
        do {
            persisted = try store.load(user: user) ?? ChatState()
        } catch {
            persisted = ChatState()
            emit(.error(ChatClientError(.storage, "cannot read the saved state: \(error)")))
        }
        if !persisted.outbox.isEmpty { emit(.outbox(persisted.outbox)) }
    }

    /// Positions are saved at most every 100 ms (a replay of thousands of events is one write); a
    /// position that lags only means a resume from a little earlier, and replays are dropped by seq.
    func saveSoon() {
        guard !saveScheduled else { return }
        saveScheduled = true
        Task { [weak self] in
            try? await Task.sleep(nanoseconds: 100_000_000)
            await self?.saveNow()
        }
    }

    @discardableResult
    func saveNow() -> Bool {
        saveScheduled = false
        guard let user = storeUser else { return true }
        do {
            try store.save(persisted, user: user)
            return true
        } catch {
            emit(.error(ChatClientError(.storage, "cannot save: \(error)")))
            return false
        }
    }

    func resumePositions() -> [ConversationID: UInt64] {
        var out: [ConversationID: UInt64] = [:]
        for (k, v) in persisted.positions {
            if let id = ConversationID(k) { out[id] = v }
        }
        // The server takes at most 1000: keep the highest (most recent activity is not tracked per
        // conversation here; the server answers resume_failed for the ones it drops).
        if out.count > ChatClient.maxResume {
            out = Dictionary(uniqueKeysWithValues: out.sorted { $0.value > $1.value }.prefix(ChatClient.maxResume).map { ($0.key, $0.value) })
        }
        return out
    }

    static let maxResume = 1000
}

/// The `sub` claim of a compact JWT (base64url JSON payload), without checking it: only to know
/// whose saved state to load before connecting. The server verifies the token.
func tokenSubject(_ token: String) -> String? {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 3 else { return nil }
    var b64 = parts[1].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    b64 += String(repeating: "=", count: (4 - b64.utf8.count % 4) % 4)
    guard let data = Data(base64Encoded: b64), case .success(let payload) = JSONParser.parse([UInt8](data)) else { return nil }
    return payload["sub"]?.string
}

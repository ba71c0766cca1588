import Foundation

/// The JetStream calls the replicated log needs, over a `NATSClient`: streams (create, info, the
/// replica check), fenced and de-duplicated publishes with their acks, and reading a message back
/// by sequence. Loop-confined like the client; every callback runs on its loop.
public struct JetStream {
    public let client: NATSClient
    public var timeoutMs: UInt64 = 10_000

    public init(client: NATSClient) { self.client = client }

    /// An error JetStream answered with (`err_code` names it), or a failure to get an answer.
    public enum Failure: Error, Equatable, Sendable {
        case api(status: Int, code: Int, description: String)
        case transport(NATSError)
        case unreadable(String)

        /// `Nats-Expected-Last-Sequence` did not match: someone else appended first (the fence).
        public static let wrongLastSequence = 10071
        public static let streamNotFound = 10059
        public static let messageNotFound = 10037
        public static let consumerNotFound = 10014
        public var apiCode: Int? { if case .api(_, let c, _) = self { return c } else { return nil } }
    }

    /// A stored message's place: its stream sequence, and whether JetStream had it already
    /// (same `Nats-Msg-Id` within the stream's duplicate window).
    public struct PubAck: Equatable, Sendable {
        public var stream: String
        public var seq: UInt64
        public var duplicate: Bool
    }

    public struct StreamInfo: Equatable, Sendable {
        public var name: String
        public var subjects: [String]
        public var replicas: Int
        public var messages: UInt64
        public var lastSeq: UInt64
        /// When the stream was made (RFC 3339, as the server says it): with the name, its identity.
        public var created: String
    }

    /// Publishes `payload` to `subject` and reports where the stream stored it. `msgId` makes a
    /// retry a duplicate, not a second copy; `expectedLastSeq` fences the append: it is refused
    /// (`wrongLastSequence`) unless the stream's last sequence is exactly that.
    public func publish(_ subject: String, payload: [UInt8], msgId: String? = nil, expectedLastSeq: UInt64? = nil,
                        headers extra: [(name: String, value: String)] = [], timeoutMs: UInt64? = nil,
                        reply: @escaping (Result<PubAck, Failure>) -> Void) {
        var h = NATSHeaders(fields: extra)
        if let msgId { h.fields.append(("Nats-Msg-Id", msgId)) }
        if let expectedLastSeq { h.fields.append(("Nats-Expected-Last-Sequence", String(expectedLastSeq))) }
        client.request(subject, headers: h.fields.isEmpty ? nil : h, payload: payload, timeoutMs: timeoutMs ?? self.timeoutMs) { r in
            switch r {
            case .failure(let e): reply(.failure(.transport(e)))
            case .success(let m):
                // Every append waits for one of these: read the common answer without a JSON parser.
                if let ack = Self.pubAck(m.payload) { return reply(.success(ack)) }
                reply(Self.object(m.payload).flatMap { o in
                    guard let stream = o["stream"] as? String, let seq = Self.uint(o["seq"]), seq > 0 else { return .failure(.unreadable("PubAck without stream and seq")) }
                    return .success(PubAck(stream: stream, seq: seq, duplicate: o["duplicate"] as? Bool ?? false))
                })
            }
        }
    }

    /// `{"stream":"S","seq":N}`, exactly (what JetStream answers a newly stored append with); nil
    /// for anything else (a duplicate, an error, another shape), which the JSON path then reads.
    static func pubAck(_ p: [UInt8]) -> PubAck? {
        let prefix = Array(#"{"stream":""#.utf8)
        guard p.count > prefix.count, p.starts(with: prefix) else { return nil }
        var i = prefix.count
        let nameStart = i
        while i < p.count, p[i] != UInt8(ascii: "\""), p[i] != UInt8(ascii: "\\") { i += 1 }
        guard i < p.count, p[i] == UInt8(ascii: "\"") else { return nil }
        let stream = String(decoding: p[nameStart..<i], as: UTF8.self)
        let seqKey = Array(#","seq":"#.utf8)
        guard p[(i + 1)...].starts(with: seqKey) else { return nil }
        i += 1 + seqKey.count
        var seq: UInt64 = 0
        let digitsStart = i
        while i < p.count, p[i] >= 48, p[i] <= 57, i - digitsStart < 19 { seq = seq * 10 + UInt64(p[i] - 48); i += 1 }
        guard i > digitsStart, i == p.count - 1, p[i] == UInt8(ascii: "}"), seq > 0 else { return nil }
        return PubAck(stream: stream, seq: seq, duplicate: false)
    }

    static func object(_ payload: [UInt8]) -> Result<[String: Any], Failure> {
        guard let o = (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any] else {
            return .failure(.unreadable(String(decoding: payload.prefix(200), as: UTF8.self)))
        }
        if let e = o["error"] as? [String: Any] {
            return .failure(.api(status: e["code"] as? Int ?? 0, code: e["err_code"] as? Int ?? 0, description: e["description"] as? String ?? ""))
        }
        return .success(o)
    }

    /// `extra` adds to (or overrides) the configuration: a KV bucket's `max_msgs_per_subject`.
    public func createStream(name: String, subjects: [String], replicas: Int, extra: [String: Any] = [:],
                             reply: @escaping (Result<StreamInfo, Failure>) -> Void) {
        var config: [String: Any] = ["name": name, "subjects": subjects, "storage": "file", "num_replicas": replicas,
                                     "retention": "limits", "discard": "old", "duplicate_window": 120_000_000_000,
                                     "allow_direct": true]
        config.merge(extra) { $1 }
        guard let body = try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]) else { return reply(.failure(.unreadable("config"))) }
        call("$JS.API.STREAM.CREATE.\(name)", payload: Array(body)) { reply($0.flatMap(Self.streamInfo)) }
    }

    public func streamInfo(_ name: String, reply: @escaping (Result<StreamInfo, Failure>) -> Void) {
        call("$JS.API.STREAM.INFO.\(name)", payload: []) { reply($0.flatMap(Self.streamInfo)) }
    }

    public struct StoredMessage: Sendable {
        public var subject: String
        public var seq: UInt64
        public var headers: NATSHeaders?
        public var payload: [UInt8]
    }

    /// A stored message by stream sequence: its subject, headers and payload.
    public func message(stream: String, seq: UInt64, reply: @escaping (Result<StoredMessage, Failure>) -> Void) {
        message(stream: stream, query: #"{"seq":\#(seq)}"#, reply: reply)
    }

    /// The newest message stored on `subject` (a KV key's current value); `messageNotFound` if none.
    public func lastMessage(stream: String, subject: String, reply: @escaping (Result<StoredMessage, Failure>) -> Void) {
        message(stream: stream, query: #"{"last_by_subj":"\#(subject)"}"#, reply: reply)
    }

    private func message(stream: String, query: String, reply: @escaping (Result<StoredMessage, Failure>) -> Void) {
        call("$JS.API.STREAM.MSG.GET.\(stream)", payload: Array(query.utf8)) { r in
            reply(r.flatMap { o in
                guard let m = o["message"] as? [String: Any], let subject = m["subject"] as? String,
                      let seq = Self.uint(m["seq"]) else { return .failure(.unreadable("no message")) }
                let data = (m["data"] as? String).flatMap { Data(base64Encoded: $0) }.map(Array.init) ?? []
                var headers: NATSHeaders? = nil
                if let hs = m["hdrs"] as? String, let raw = Data(base64Encoded: hs) {
                    headers = try? ServerParser.headers(ArraySlice(raw))
                }
                return .success(StoredMessage(subject: subject, seq: seq, headers: headers, payload: data))
            })
        }
    }

    /// An ephemeral push consumer that delivers every message from `startSeq` on to `deliverSubject`,
    /// unacknowledged, with flow control and idle heartbeats: what `OrderedConsumer` runs on.
    /// Answers the consumer's name.
    public func createOrderedConsumer(stream: String, deliverSubject: String, startSeq: UInt64, heartbeatMs: UInt64,
                                      reply: @escaping (Result<String, Failure>) -> Void) {
        var config: [String: Any] = ["deliver_subject": deliverSubject, "ack_policy": "none", "max_deliver": 1,
                                     "replay_policy": "instant", "flow_control": true, "idle_heartbeat": heartbeatMs * 1_000_000,
                                     "mem_storage": true, "num_replicas": 1, "inactive_threshold": 60_000_000_000]
        if startSeq <= 1 { config["deliver_policy"] = "all" } else { config["deliver_policy"] = "by_start_sequence"; config["opt_start_seq"] = startSeq }
        let request: [String: Any] = ["stream_name": stream, "config": config]
        guard let body = try? JSONSerialization.data(withJSONObject: request, options: [.sortedKeys]) else { return reply(.failure(.unreadable("config"))) }
        call("$JS.API.CONSUMER.CREATE.\(stream)", payload: Array(body)) { r in
            reply(r.flatMap { o in (o["name"] as? String).map { .success($0) } ?? .failure(.unreadable("consumer without a name")) })
        }
    }

    public func deleteConsumer(stream: String, name: String, reply: @escaping (Result<Void, Failure>) -> Void = { _ in }) {
        call("$JS.API.CONSUMER.DELETE.\(stream).\(name)", payload: []) { r in reply(r.map { _ in () }) }
    }

    /// Parley's rule for a cluster's stream: an ack must mean stored on a majority of at least
    /// three servers. Fewer replicas are refused, with why, unless the operator allowed them.
    public static func checkReplicas(_ info: StreamInfo, allowUnreplicated: Bool) -> String? {
        guard info.replicas < 3, !allowUnreplicated else { return nil }
        return "stream \(info.name) has \(info.replicas) replica\(info.replicas == 1 ? "" : "s"): an acknowledged message would survive the loss of \(info.replicas == 1 ? "no" : "only one") server less than it should. Use 3 or more replicas (or --allow-unreplicated for development)"
    }

    // MARK: internals

    func call(_ subject: String, headers: NATSHeaders? = nil, payload: [UInt8], timeoutMs: UInt64? = nil,
              reply: @escaping (Result<[String: Any], Failure>) -> Void) {
        client.request(subject, headers: headers, payload: payload, timeoutMs: timeoutMs ?? self.timeoutMs) { r in
            switch r {
            case .failure(let e): reply(.failure(.transport(e)))
            case .success(let m): reply(Self.object(m.payload))
            }
        }
    }

    static func uint(_ v: Any?) -> UInt64? {
        if let n = v as? NSNumber, n.int64Value >= 0 { return n.uint64Value }
        return nil
    }

    static func streamInfo(_ o: [String: Any]) -> Result<StreamInfo, Failure> {
        guard let c = o["config"] as? [String: Any], let name = c["name"] as? String else { return .failure(.unreadable("no stream config")) }
        let state = o["state"] as? [String: Any] ?? [:]
        return .success(StreamInfo(name: name, subjects: c["subjects"] as? [String] ?? [], replicas: c["num_replicas"] as? Int ?? 1,
                                   messages: uint(state["messages"]) ?? 0, lastSeq: uint(state["last_seq"]) ?? 0,
                                   created: o["created"] as? String ?? ""))
    }
}

import ParleyNATS
import XCTest

/// An HMSG with its sizes counted: `head` is subject, sid and reply-to.
func hmsg(_ head: String, _ block: String, _ payload: String) -> String {
    "HMSG \(head) \(block.utf8.count) \(block.utf8.count + payload.utf8.count)\r\n\(block)\(payload)\r\n"
}

final class ServerParserTests: XCTestCase {
    /// A stream as nats-server writes it: INFO, +OK, PING, a MSG with reply, an HMSG carrying a
    /// JetStream-style status and headers, a PONG, an -ERR.
    static let stream: [UInt8] = Array((
        #"INFO {"server_id":"N1","version":"2.15.1","max_payload":1048576,"headers":true,"jetstream":true}"# + "\r\n"
        + "+OK\r\nPING\r\n"
        + "MSG orders.created 7 _INBOX.x1 5\r\nhello\r\n"
        + hmsg("$JS.ACK.s 12", "NATS/1.0 503 No Responders\r\nNats-Msg-Id: m-1\r\n\r\n", "0123456789")
        + "MSG empty 3 0\r\n\r\n"
        + "pong\r\n"
        + "-ERR 'Authorization Violation'\r\n").utf8)

    static let expected: [ServerOp] = [
        .info(json: Array(#"{"server_id":"N1","version":"2.15.1","max_payload":1048576,"headers":true,"jetstream":true}"#.utf8)),
        .ok, .ping,
        .msg(NATSMessage(subject: "orders.created", sid: "7", replyTo: "_INBOX.x1", payload: Array("hello".utf8))),
        .msg(NATSMessage(subject: "$JS.ACK.s", sid: "12", headers: NATSHeaders(status: 503, statusDescription: "No Responders", fields: [("Nats-Msg-Id", "m-1")]),
                         payload: Array("0123456789".utf8))),
        .msg(NATSMessage(subject: "empty", sid: "3", payload: [])),
        .pong,
        .err("Authorization Violation"),
    ]

    func testAWholeStream() throws {
        var p = ServerParser()
        XCTAssertEqual(try p.parse(Self.stream).get(), Self.expected)
        XCTAssertEqual(p.bufferedBytes, 0)
    }

    func testSplitAtEveryByte() throws {
        for cut in 0...Self.stream.count {
            var p = ServerParser()
            let a = try p.parse(Array(Self.stream[..<cut])).get()
            let b = try p.parse(Array(Self.stream[cut...])).get()
            XCTAssertEqual(a + b, Self.expected, "cut at \(cut)")
        }
    }

    func testByteByByte() throws {
        var p = ServerParser()
        var ops: [ServerOp] = []
        for b in Self.stream { ops += try p.parse([b]).get() }
        XCTAssertEqual(ops, Self.expected)
    }

    func testHeadersKeepCaseOrderAndRepeats() throws {
        var p = ServerParser()
        let ops = try p.parse(Array(hmsg("s 1 r", "NATS/1.0\r\nA: 1\r\na: 2\r\nA:3\r\n\r\n", "hi").utf8)).get()
        guard case .msg(let m) = ops.first else { return XCTFail("\(ops)") }
        XCTAssertEqual(m.replyTo, "r")
        XCTAssertEqual(m.headers?.fields.map { "\($0.name)=\($0.value)" }, ["A=1", "a=2", "A=3"])
        XCTAssertEqual(m.headers?["a"], "2")
        XCTAssertNil(m.headers?.status)
        XCTAssertEqual(m.payload, Array("hi".utf8))
    }

    func testBadInputIsAnErrorAndTheParserStaysSpent() {
        let cases: [(String, NATSProtocolError)] = [
            ("HELLO\r\n", .unknownOperation("HELLO")),
            ("PING now\r\n", .malformed("unexpected arguments")),
            ("INFO nope\r\n", .malformed("INFO without a JSON object")),
            ("MSG a 1\r\n", .malformed("MSG takes subject, sid, [reply-to,] size")),
            ("MSG a 1 b c 3\r\n", .malformed("MSG takes subject, sid, [reply-to,] size")),
            ("MSG a 1 -3\r\n", .malformed("a size must be decimal digits")),
            ("MSG a 1 3x\r\n", .malformed("a size must be decimal digits")),
            ("MSG a 1 99999999999999999999\r\n", .malformed("a size must be decimal digits")),
            ("MSG a 1 3\r\nabcXY", .malformed("message body not followed by CRLF")),
            ("HMSG a 1 10 5\r\n", .malformed("HMSG header size must be 4...total")),
            (hmsg("a 1", "HTTP\r\n\r\n", ""), .malformed("header block must start with NATS/1.0")),
            (hmsg("a 1", "NATS/1.0\r\nX\r\n", ""), .malformed("header block must end with an empty line")),
            (hmsg("a 1", "NATS/1.0\r\nX\r\n\r\n", ""), .malformed("a header line must be Key: Value")),
            (hmsg("a 1", "NATS/1.0 50x\r\n\r\n", ""), .malformed("header status must be 3 digits")),
        ]
        for (input, want) in cases {
            var p = ServerParser()
            XCTAssertEqual(p.parse(Array(input.utf8)), .failure(want), input)
            XCTAssertEqual(p.parse(Array("PING\r\n".utf8)), .failure(want), "spent after an error: \(input)")
        }
    }

    func testLimitsBoundWhatIsHeld() {
        var limits = NATSLimits()
        limits.maxControlLineBytes = 64
        limits.maxMessageBytes = 1000
        var p = ServerParser(limits: limits)
        XCTAssertEqual(try p.parse(Array(repeating: UInt8(ascii: "x"), count: 64)).get(), [])
        XCTAssertEqual(p.parse([UInt8(ascii: "x")]), .failure(.controlLineTooLong(limit: 64)), "no end of line within the limit")
        var q = ServerParser(limits: limits)
        XCTAssertEqual(q.parse(Array("MSG a 1 1001\r\n".utf8)), .failure(.messageTooLarge(bytes: 1001, limit: 1000)), "refused before the body arrives")
        var r = ServerParser(limits: limits)
        XCTAssertEqual(try r.parse(Array("MSG a 1 1000\r\n".utf8) + Array(repeating: 0, count: 500)).get(), [])
        XCTAssertEqual(r.bufferedBytes, 500)
    }

    func testOperationNamesAreCaseInsensitiveAndABareLFEndsALine() throws {
        var p = ServerParser()
        XCTAssertEqual(try p.parse(Array("ping\nPoNg\r\nmsg a 1 2\r\nhi\r\n".utf8)).get(),
                       [.ping, .pong, .msg(NATSMessage(subject: "a", sid: "1", payload: Array("hi".utf8)))])
    }
}

final class ClientOpsTests: XCTestCase {
    func testEncodings() throws {
        XCTAssertEqual(String(decoding: try ClientOps.pub(subject: "a.b", payload: Array("hi".utf8)), as: UTF8.self), "PUB a.b 2\r\nhi\r\n")
        XCTAssertEqual(String(decoding: try ClientOps.pub(subject: "a", replyTo: "_INBOX.1", payload: []), as: UTF8.self), "PUB a _INBOX.1 0\r\n\r\n")
        let h = NATSHeaders(fields: [("Nats-Msg-Id", "m-1"), ("Nats-Expected-Last-Sequence", "41")])
        XCTAssertEqual(String(decoding: try ClientOps.pub(subject: "s", replyTo: "r", headers: h, payload: Array("x".utf8)), as: UTF8.self),
                       "HPUB s r 63 64\r\nNATS/1.0\r\nNats-Msg-Id: m-1\r\nNats-Expected-Last-Sequence: 41\r\n\r\nx\r\n")
        XCTAssertEqual(String(decoding: try ClientOps.sub(subject: "a.>", queue: "q", sid: "9"), as: UTF8.self), "SUB a.> q 9\r\n")
        XCTAssertEqual(String(decoding: try ClientOps.unsub(sid: "9", max: 1), as: UTF8.self), "UNSUB 9 1\r\n")
        XCTAssertEqual(String(decoding: ClientOps.connect(json: Array("{}".utf8)), as: UTF8.self), "CONNECT {}\r\n")
    }

    func testWhatTheClientSendsIsWhatTheParserReads() throws {
        // HPUB and HMSG share the header block: our block, framed as the server frames it.
        let h = NATSHeaders(fields: [("Nats-Msg-Id", "m-1"), ("K", "v w")])
        let pub = try ClientOps.pub(subject: "s", headers: h, payload: Array("body".utf8))
        let line = String(decoding: pub.prefix { $0 != 13 }, as: UTF8.self).split(separator: " ")
        let msg = Array("HMSG s 5 \(line[2]) \(line[3])\r\n".utf8) + pub.drop { $0 != 10 }.dropFirst()
        var p = ServerParser()
        XCTAssertEqual(try p.parse(msg).get(), [.msg(NATSMessage(subject: "s", sid: "5", headers: h, payload: Array("body".utf8)))])
    }

    func testBadNamesAreRefusedBeforeTheWire() {
        XCTAssertThrowsError(try ClientOps.pub(subject: "", payload: []))
        XCTAssertThrowsError(try ClientOps.pub(subject: "a b", payload: []))
        XCTAssertThrowsError(try ClientOps.pub(subject: "a\r\nPUB x 1", payload: []))
        XCTAssertThrowsError(try ClientOps.sub(subject: "a", sid: "1 2"))
        XCTAssertThrowsError(try ClientOps.pub(subject: "a", headers: NATSHeaders(fields: [("Bad:Name", "v")]), payload: []))
        XCTAssertThrowsError(try ClientOps.pub(subject: "a", headers: NATSHeaders(fields: [("K", "v\r\nX: y")]), payload: []))
    }
}

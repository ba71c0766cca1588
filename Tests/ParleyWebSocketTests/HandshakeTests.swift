import XCTest
import ParleyHTTP
@testable import ParleyWebSocket

final class HandshakeTests: XCTestCase {
    func testRFCSampleAcceptKey() {
        XCTAssertEqual(Handshake.acceptKey(for: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func testVectors() throws {
        for c in try Vectors.jsonLines("ws/handshake.jsonl") {
            let name = c["name"] as! String
            let headers = (c["headers"] as! [String: String]).sorted { $0.key < $1.key }.map { (name: $0.key, value: $0.value) }
            let head = HTTPRequestHead(method: "GET", target: "/v1/echo", versionMinor: 1, headers: headers, contentLength: 0)
            let status = c["status"] as! Int
            switch Handshake.validate(head, subprotocols: ["parley.v1"]) {
            case .success(let a):
                XCTAssertEqual(status, 101, name)
                XCTAssertEqual(a.acceptKey, c["accept"] as? String, name)
            case .failure(let e):
                XCTAssertEqual(e.response.status, status, name)
                if let h = c["responseHeader"] as? [String] {
                    XCTAssertTrue(e.response.headers.contains { $0.0 == h[0] && $0.1 == h[1] }, name)
                }
            }
        }
    }

    func testSubprotocolFollowsTheClientsOrderAmongSupported() {
        let head = HTTPRequestHead(method: "GET", target: "/", versionMinor: 1, headers: [
            ("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "chat, parley.v1"),
        ], contentLength: 0)
        XCTAssertEqual(try Handshake.validate(head, subprotocols: ["parley.v1"]).get().subprotocol, "parley.v1")
        XCTAssertNil(try Handshake.validate(head, subprotocols: ["other"]).get().subprotocol)
    }
}

/// permessage-deflate negotiation (RFC 7692 §7.1) from `Protocol/vectors/ws/deflate-negotiation.jsonl`.
final class DeflateNegotiationTests: XCTestCase {
    func testVectors() throws {
        let cases = try Vectors.jsonLines("ws/deflate-negotiation.jsonl")
        XCTAssertGreaterThan(cases.count, 20)
        for c in cases {
            let name = c["name"] as! String
            let offers = c["offers"] as! [String]
            let expected = c["response"] as? String
            let got = DeflateNegotiation.negotiate(offers, policy: DeflatePolicy())
            XCTAssertEqual(got?.response, expected, name)
            // Through the handshake too: the 101 carries exactly that header.
            var headers: [(name: String, value: String)] = [("Host", "h"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]
            headers += offers.map { ("Sec-WebSocket-Extensions", $0) }
            let head = HTTPRequestHead(method: "GET", target: "/", versionMinor: 1, headers: headers, contentLength: 0)
            let accepted = try Handshake.validate(head, subprotocols: [], deflate: DeflatePolicy()).get()
            let header = Handshake.response(accepted).headers.first { $0.0 == "Sec-WebSocket-Extensions" }?.1
            XCTAssertEqual(header, expected, name)
        }
    }

    func testParametersFollowTheAnswer() throws {
        let (p, _) = try XCTUnwrap(DeflateNegotiation.negotiate(["permessage-deflate; client_no_context_takeover; server_max_window_bits=11; client_max_window_bits"], policy: DeflatePolicy()))
        XCTAssertEqual(p, DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 11, clientMaxWindowBits: 10))
        let (q, _) = try XCTUnwrap(DeflateNegotiation.negotiate(["permessage-deflate"], policy: DeflatePolicy()))
        XCTAssertEqual(q.clientMaxWindowBits, 15, "a client that did not offer client_max_window_bits keeps its 15-bit window")
    }

    func testDisabledPolicyDeclines() {
        XCTAssertNil(DeflateNegotiation.negotiate(["permessage-deflate"], policy: DeflatePolicy(enabled: false)))
    }

    func testClientChecksTheServersAnswer() {
        XCTAssertEqual(try DeflateNegotiation.clientAccept([]).get(), nil)
        let p = (try? DeflateNegotiation.clientAccept(["permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=10"]).get()) ?? nil
        XCTAssertEqual(p?.clientMaxWindowBits, 10)
        XCTAssertEqual(p?.serverNoContextTakeover, true)
        for bad in ["x-other", "permessage-deflate; client_max_window_bits", "permessage-deflate; mystery", "permessage-deflate, permessage-deflate",
                    "permessage-deflate; server_max_window_bits=99"] {
            if case .success = DeflateNegotiation.clientAccept([bad]) { XCTFail(bad) }
        }
    }
}

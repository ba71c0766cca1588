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

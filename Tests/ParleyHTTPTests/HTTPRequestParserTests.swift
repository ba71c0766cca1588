import XCTest
@testable import ParleyHTTP

final class HTTPRequestParserTests: XCTestCase {
    private func parse(_ s: String, limits: HTTPParserLimits = .init()) -> HTTPParseResult {
        var p = HTTPRequestParser(limits: limits)
        return Array(s.utf8).withUnsafeBytes { p.parse($0) }
    }

    private func status(_ s: String, limits: HTTPParserLimits = .init()) -> Int? {
        if case .failed(let e) = parse(s, limits: limits) { return e.status }
        return nil
    }

    func testSimpleGet() {
        guard case .complete(let head, let bodyStart, let consumed) = parse("GET /healthz?x=1 HTTP/1.1\r\nHost: a\r\nX-Y:  z \r\n\r\n") else {
            return XCTFail("not complete")
        }
        XCTAssertEqual(head.method, "GET")
        XCTAssertEqual(head.path, "/healthz")
        XCTAssertEqual(head.header("x-y"), "z")
        XCTAssertTrue(head.keepAlive)
        XCTAssertEqual(bodyStart, consumed)
    }

    func testBodyAndPipelining() {
        let two = "PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: a\r\n\r\n"
        guard case .complete(let head, let bodyStart, let consumed) = parse(two) else { return XCTFail() }
        XCTAssertEqual(head.contentLength, 3)
        XCTAssertEqual(consumed - bodyStart, 3)
        XCTAssertEqual(consumed, two.utf8.count - "GET /b HTTP/1.1\r\nHost: a\r\n\r\n".utf8.count)
    }

    func testIncompleteAsksForMoreAtEverySplit() {
        let req = Array("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello".utf8)
        for cut in 0..<req.count {
            var p = HTTPRequestParser()
            XCTAssertEqual(req[0..<cut].withUnsafeBytes { p.parse($0) }, .needMore, "cut \(cut)")
            guard case .complete = req.withUnsafeBytes({ p.parse($0) }) else { return XCTFail("cut \(cut)") }
        }
    }

    func testKeepAliveRules() {
        guard case .complete(let h10, _, _) = parse("GET / HTTP/1.0\r\n\r\n"),
              case .complete(let h10k, _, _) = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
              case .complete(let h11c, _, _) = parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        else { return XCTFail() }
        XCTAssertFalse(h10.keepAlive)
        XCTAssertTrue(h10k.keepAlive)
        XCTAssertFalse(h11c.keepAlive)
    }

    func testRefusals() {
        XCTAssertEqual(status("GARBAGE\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\n\r\n"), 400, "HTTP/1.1 without Host")
        XCTAssertEqual(status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
        XCTAssertEqual(status("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"), 400)
        XCTAssertEqual(status("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400, "bare LF")
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 400)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), 501)
        XCTAssertEqual(status("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n"), 413, "413 before the body is read")
        XCTAssertEqual(status("GET / HTTP/1.1\r\nHost: a\r\nX: \u{01}\r\n\r\n"), 400)
    }

    func testHeadOverTheLimitIs431EvenBeforeItEnds() {
        var limits = HTTPParserLimits()
        limits.maxHeadBytes = 1024
        let big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + String(repeating: "a", count: 2000)
        XCTAssertEqual(status(big, limits: limits), 431)
        XCTAssertEqual(status(big + "\r\n\r\n", limits: limits), 431)
    }

    func testErrorBodyIsJSON() {
        let r = HTTPResponse.error(400, code: "invalid_request", message: "bad \"x\"")
        XCTAssertEqual(String(decoding: r.body, as: UTF8.self), #"{"error":{"code":"invalid_request","message":"bad \"x\""}}"#)
    }
}

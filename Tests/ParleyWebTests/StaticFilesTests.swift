import Foundation
import XCTest
import ParleyHTTP
@testable import ParleyWeb

final class StaticFilesTests: XCTestCase {
    private func request(_ headers: [(String, String)] = []) -> HTTPRequest {
        HTTPRequest(head: HTTPRequestHead(method: "GET", target: "/sdk/parley.js", versionMinor: 1,
                                          headers: headers.map { (name: $0.0, value: $0.1) }, contentLength: 0), body: [])
    }

    private func header(_ r: HTTPResponse, _ name: String) -> String? { r.headers.first { $0.0 == name }?.1 }

    private func assets(_ files: [String: String]) throws -> WebAssets {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-web-\(UUID().uuidString)")
        for (path, text) in files {
            let url = dir.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        return try WebAssets.load(from: dir)
    }

    func testIfNoneMatchTakesListsWeakTagsAndStar() {
        XCTAssertTrue(StaticFiles.matches(#""a", "b""#, #""b""#))
        XCTAssertTrue(StaticFiles.matches(#"W/"b""#, #""b""#))
        XCTAssertTrue(StaticFiles.matches("*", #""b""#))
        XCTAssertFalse(StaticFiles.matches(#""a""#, #""b""#))
        XCTAssertFalse(StaticFiles.matches("", #""b""#))
    }

    func testAcceptEncodingGzipUnlessRefused() {
        XCTAssertTrue(StaticFiles.acceptsGzip("gzip, deflate, br"))
        XCTAssertTrue(StaticFiles.acceptsGzip("br;q=1.0, gzip;q=0.5"))
        XCTAssertTrue(StaticFiles.acceptsGzip("*"))
        XCTAssertFalse(StaticFiles.acceptsGzip("gzip;q=0"))
        XCTAssertFalse(StaticFiles.acceptsGzip("identity"))
        XCTAssertFalse(StaticFiles.acceptsGzip(nil))
    }

    func testFilesAreTypedKeyedByPathAndOthersIgnored() throws {
        let a = try assets(["sdk/parley.js": "export {}", "console/index.html": "<!doctype html>", "notes.txt": "x"])
        XCTAssertEqual(a["/sdk/parley.js"]?.contentType, "text/javascript; charset=utf-8")
        XCTAssertEqual(a["/console/index.html"]?.contentType, "text/html; charset=utf-8")
        XCTAssertNil(a["/notes.txt"], "no type, not served")
    }

    func testTheETagChangesWithTheContent() throws {
        let one = try assets(["sdk/parley.js": "export const a = 1;"])["/sdk/parley.js"]!
        let same = try assets(["sdk/parley.js": "export const a = 1;"])["/sdk/parley.js"]!
        let other = try assets(["sdk/parley.js": "export const a = 2;"])["/sdk/parley.js"]!
        XCTAssertEqual(one.etag, same.etag)
        XCTAssertNotEqual(one.etag, other.etag)
    }

    func testRevalidationGzipAndPageHeaders() throws {
        let big = String(repeating: "export const greeting = 'hello';\n", count: 100)
        let a = try assets(["sdk/parley.js": big, "console/index.html": "<!doctype html><title>x</title>"])
        let js = a["/sdk/parley.js"]!
        let gz = try XCTUnwrap(js.gzip, "a compressible file gets a gzip copy")
        XCTAssertEqual(Array(gz.prefix(2)), [0x1F, 0x8B])

        let plain = StaticFiles.response(js, request(), csp: "x", crossOrigin: true)
        XCTAssertEqual(plain.status, 200)
        XCTAssertEqual(plain.body, js.body)
        XCTAssertEqual(header(plain, "Access-Control-Allow-Origin"), "*")
        XCTAssertNil(header(plain, "Content-Security-Policy"), "scripts carry no page policy")

        let zipped = StaticFiles.response(js, request([("Accept-Encoding", "gzip")]), csp: nil, crossOrigin: true)
        XCTAssertEqual(header(zipped, "Content-Encoding"), "gzip")
        XCTAssertEqual(zipped.body, gz)

        let notModified = StaticFiles.response(js, request([("If-None-Match", js.etag)]), csp: nil, crossOrigin: false)
        XCTAssertEqual(notModified.status, 304)
        XCTAssertTrue(notModified.body.isEmpty)
        XCTAssertFalse(String(decoding: notModified.serialized(keepAlive: true), as: UTF8.self).contains("Content-Length"))

        let page = StaticFiles.response(a["/console/index.html"]!, request(), csp: StaticFiles.contentSecurityPolicy(connect: ["https://sso.example"]), crossOrigin: false)
        let csp = try XCTUnwrap(header(page, "Content-Security-Policy"))
        XCTAssertTrue(csp.contains("script-src 'self';") && csp.contains("connect-src 'self' https://sso.example;"))
        XCTAssertFalse(csp.contains("unsafe-inline"))
        XCTAssertEqual(header(page, "X-Frame-Options"), "DENY")
        XCTAssertNil(header(page, "Access-Control-Allow-Origin"))
    }
}

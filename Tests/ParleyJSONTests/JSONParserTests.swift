import Foundation
import ParleyJSON
import XCTest

/// The parser every client frame and stored event goes through: what RFC 8259 allows it reads as
/// Foundation does; what it forbids it refuses, saying where; nothing a peer sends traps it.
final class JSONParserTests: XCTestCase {
    func parse(_ s: String) -> JSONValue? { try? JSONParser.parse(Array(s.utf8)).get() }

    func testValuesAsWritten() {
        XCTAssertEqual(parse(#" {"a": [1, -2.5, 3e2, true, false, null], "b": {"c": "d"}} "#),
                       .object([("a", .array([.number(1), .number(-2.5), .number(300), .bool(true), .bool(false), .null])), ("b", .object([("c", .string("d"))]))]))
        XCTAssertEqual(parse("\"x\""), .string("x"), "any value at the top")
        XCTAssertEqual(parse("{}"), .object([]))
        XCTAssertEqual(parse("[]"), .array([]))
        XCTAssertEqual(parse(#"{"k":1,"k":2}"#)?["k"], .number(2), "the last duplicate wins")
        XCTAssertEqual(parse("-0"), .number(0))
        XCTAssertEqual(parse("123456789012345678901234567890")?.number, 1.2345678901234568e29)
    }

    func testIntegersAreExactAndBooleansAreNotNumbers() {
        XCTAssertEqual(parse("1700000000123")?.int, 1_700_000_000_123)
        XCTAssertEqual(parse("2.0")?.int, 2)
        XCTAssertNil(parse("2.5")?.int)
        XCTAssertNil(parse("1e16")?.int, "beyond where a double is exact")
        XCTAssertNil(parse("true")?.int)
        XCTAssertNil(parse("1")?.bool)
        XCTAssertNil(parse("0")?.bool)
    }

    func testStringsAndEscapes() {
        XCTAssertEqual(parse(#""a\"b\\c\/d\b\f\n\r\t""#)?.string, "a\"b\\c/d\u{8}\u{c}\n\r\t")
        XCTAssertEqual(parse(#""\u00e9\u4e2d\ud83d\ude00""#)?.string, "é中😀")
        XCTAssertEqual(parse("\"héllo 😀\"")?.string, "héllo 😀", "raw UTF-8")
        XCTAssertEqual(parse(#""pre \u0041 post""#)?.string, "pre A post")
    }

    func testWhatTheRFCForbidsIsRefused() {
        let bad = ["", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "-", "1e", "+1",
                   "tru", "nul", "True", "[1 2]", "{\"a\":1} x", "\"abc", "\"a\u{1}b\"", #""\x""#, #""\u12""#,
                   #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#, "1e999", "NaN", "'a'"]
        for b in bad { XCTAssertNil(parse(b), "accepted: \(b.debugDescription)") }
        XCTAssertNil(try? JSONParser.parse([0x22, 0xC3, 0x28, 0x22]).get(), "invalid UTF-8")
        XCTAssertNil(try? JSONParser.parse([0x22, 0xED, 0xA0, 0x80, 0x22]).get(), "an encoded surrogate")
        guard case .failure(let f) = JSONParser.parse(Array("{\"a\":1,}".utf8)) else { return XCTFail() }
        XCTAssertEqual(f.offset, 7, "says where")
    }

    func testNestingIsBounded() {
        let ok = String(repeating: "[", count: JSONParser.maxDepth) + String(repeating: "]", count: JSONParser.maxDepth)
        XCTAssertNotNil(parse(ok))
        let deep = String(repeating: "[", count: 100_000)
        XCTAssertNil(parse(deep), "refused, not a stack overflow")
        XCTAssertNil(parse(String(repeating: "{\"a\":", count: 100_000)))
    }

    /// The same answers as Foundation on documents a client could send.
    func testAgreesWithFoundationOnValidDocuments() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let v = Self.random(depth: 0, &rng)
            let data = try JSONSerialization.data(withJSONObject: ["v": v], options: [.fragmentsAllowed])
            let ours = try JSONParser.parse(Array(data)).get()
            let theirs = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
            XCTAssertTrue(Self.same(ours, theirs), "\(String(decoding: data, as: UTF8.self))")
        }
    }

    static func random(depth: Int, _ rng: inout SystemRandomNumberGenerator) -> Any {
        switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &rng) {
        case 0: return Int.random(in: -1_000_000_000_000...1_000_000_000_000, using: &rng)
        case 1: return Double(Int.random(in: -100_000...100_000, using: &rng)) / 64
        case 2: return Bool.random(using: &rng)
        case 3:
            let pool: [Character] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\u{1}", "é", "中", "😀", "\u{7f}"]
            return String((0..<Int.random(in: 0...12, using: &rng)).map { _ in pool.randomElement(using: &rng)! })
        case 4: return (0..<Int.random(in: 0...4, using: &rng)).map { _ in random(depth: depth + 1, &rng) }
        default:
            var o: [String: Any] = [:]
            for i in 0..<Int.random(in: 0...4, using: &rng) { o["k\(i)"] = random(depth: depth + 1, &rng) }
            return o
        }
    }

    static func same(_ a: JSONValue, _ b: Any) -> Bool {
        switch a {
        case .null: return b is NSNull
        case .string(let s): return (b as? String) == s
        case .bool(let x):
            guard let n = b as? NSNumber, String(cString: n.objCType) == "c" else { return false }
            return n.boolValue == x
        case .number(let d): return (b as? NSNumber)?.doubleValue == d
        case .array(let xs):
            guard let ys = b as? [Any], xs.count == ys.count else { return false }
            return zip(xs, ys).allSatisfy { same($0, $1) }
        case .object(let ms):
            guard let o = b as? [String: Any], ms.count == o.count else { return false }
            return ms.allSatisfy { m in o[m.key].map { same(m.value, $0) } ?? false }
        }
    }

    /// Strings are scanned a word at a time: a bad UTF-8 byte is refused wherever it falls in the
    /// word, also just before the closing quote (a fuzzer found that case once).
    func testInvalidUTF8IsRefusedAtEveryPositionInAWord() {
        for lead in 0..<16 {
            for bad: [UInt8] in [[0xFF], [0xC3], [0xE2, 0x82], [0x80]] {
                let bytes = [UInt8(ascii: "\"")] + Array(repeating: UInt8(ascii: "a"), count: lead) + bad + [UInt8(ascii: "\"")]
                guard case .failure(let f) = JSONParser.parse(bytes) else { XCTFail("accepted \(bad) after \(lead) bytes"); continue }
                XCTAssertTrue(f.reason.contains("UTF-8"), f.reason)
            }
            let good = [UInt8(ascii: "\"")] + Array(repeating: UInt8(ascii: "a"), count: lead) + Array("é😀".utf8) + [UInt8(ascii: "\"")]
            XCTAssertEqual(try? JSONParser.parse(good).get(), .string(String(repeating: "a", count: lead) + "é😀"))
        }
    }
}

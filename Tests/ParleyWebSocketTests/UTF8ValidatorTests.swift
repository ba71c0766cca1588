import XCTest
import ParleyUTF8
@testable import ParleyWebSocket

final class UTF8ValidatorTests: XCTestCase {
    private func valid(_ b: [UInt8]) -> Bool { b.withUnsafeBytes { UTF8Validator.isValid($0) } }

    func testKnownCases() {
        let good: [[UInt8]] = [[], Array("hello".utf8), Array("κόσμε".utf8), [0xEF, 0xBB, 0xBF], [0xF4, 0x8F, 0xBF, 0xBF],
                               [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF], [0xEE, 0x80, 0x80], [0xF0, 0x90, 0x80, 0x80], [0x7F]]
        let bad: [[UInt8]] = [[0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xE0, 0x9F, 0xBF],  // overlongs
                              [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],  // surrogates
                              [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF], [0xFE],  // > U+10FFFF
                              [0xF0, 0x80, 0x80, 0x80], [0xC2], [0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xC2, 0x41]]
        for g in good { XCTAssertTrue(valid(g), "\(g)") }
        for b in bad { XCTAssertFalse(valid(b), "\(b)") }
    }

    func testAgreesWithTheStandardLibraryOnRandomInput() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let len = Int.random(in: 0..<24, using: &rng)
            let pool: [UInt8] = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF]
            let b = (0..<len).map { _ in pool.randomElement(using: &rng)! }
            XCTAssertEqual(valid(b), String(validating: b, as: UTF8.self) != nil, "\(b)")
        }
    }

    func testCodePointsSplitAtEveryPosition() {
        let text = "a\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}κόσμε😀"
        let bytes = Array(text.utf8)
        for cut in 0...bytes.count {
            var v = UTF8Validator()
            let ok1 = bytes[0..<cut].withUnsafeBytes { v.validate($0) }
            let ok2 = bytes[cut...].withUnsafeBytes { v.validate($0) }
            XCTAssertTrue(ok1 && ok2 && v.isComplete, "cut at \(cut)")
            // And one byte at a time.
        }
        var v = UTF8Validator()
        for b in bytes { XCTAssertTrue([b].withUnsafeBytes { v.validate($0) }) }
        XCTAssertTrue(v.isComplete)
    }

    func testFailsAtTheFirstBadByteNotAtTheEnd() {
        var v = UTF8Validator()
        XCTAssertTrue(Array("ok \u{3BA}".utf8).withUnsafeBytes { v.validate($0) })
        XCTAssertFalse([UInt8]([0xED, 0xA0]).withUnsafeBytes { v.validate($0) })  // surrogate lead-in refused on 2nd byte
        var w = UTF8Validator()
        XCTAssertTrue([UInt8]([0xE2]).withUnsafeBytes { w.validate($0) })
        XCTAssertFalse(w.isComplete)
        XCTAssertFalse([UInt8]([0x41]).withUnsafeBytes { w.validate($0) })
    }
}

import XCTest
import Foundation
@testable import ParleyWebSocket

final class DeflateTests: XCTestCase {
    private func roundTrip(_ text: [UInt8], bits: Int = 15, cap: Int = 1 << 16) -> Inflater.Outcome {
        let d = Deflater(windowBits: bits)!
        let bound = d.bound(text.count)
        var z = [UInt8](repeating: 0, count: bound)
        let n = z.withUnsafeMutableBytes { o in text.withUnsafeBytes { d.compress($0, into: o.baseAddress!, capacity: bound) } }
        let i = Inflater(windowBits: bits)!
        var out = [UInt8](repeating: 0, count: cap + 1)
        return out.withUnsafeMutableBytes { o in z.withUnsafeBytes { i.inflate(UnsafeRawBufferPointer(rebasing: $0[0..<n]), into: o.baseAddress!, cap: cap, keepContext: false) } }
    }

    func testRoundTripSizes() {
        for size in [1, 10, 255, 256, 1000, 65536] {
            let text = Array(String(repeating: "{\"type\":\"message\",\"text\":\"hi\"}", count: size / 20 + 1).utf8.prefix(size))
            XCTAssertEqual(roundTrip(text), .ok(size), "size \(size)")
        }
    }

    func testBombIsRefusedPastTheCap() {
        // 1 MiB of zeros compresses to ~1 KiB; the cap is 64 KiB.
        XCTAssertEqual(roundTrip([UInt8](repeating: 0, count: 1 << 20), cap: 1 << 16), .tooBig)
    }

    func testCorruptInputIsRefused() {
        let i = Inflater(windowBits: 15)!
        var out = [UInt8](repeating: 0, count: 1025)
        let junk: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x13, 0x37]
        let r = out.withUnsafeMutableBytes { o in junk.withUnsafeBytes { i.inflate($0, into: o.baseAddress!, cap: 1024, keepContext: false) } }
        XCTAssertEqual(r, .corrupt)
    }

    func testRawWindowOfEightCannotCompress() {
        XCTAssertNil(Deflater(windowBits: 8))
        XCTAssertNotNil(Inflater(windowBits: 8))
    }
}

extension DeflateTests {
    /// Bytes from Python's zlib (window 10, sync flush, tail removed): "hello".
    func testInflatesAnotherImplementationsOutput() {
        let i = Inflater(windowBits: 10)!
        var out = [UInt8](repeating: 0, count: 65537)
        for _ in 0..<2 {
            let z = hexBytes("ca48cdc9c90700")
            let r = out.withUnsafeMutableBytes { o in z.withUnsafeBytes { i.inflate($0, into: o.baseAddress!, cap: 65536, keepContext: true) } }
            XCTAssertEqual(r, .ok(5))
            XCTAssertEqual(Array(out[0..<5]), Array("hello".utf8))
        }
    }
}

extension DeflateTests {
    func testIncompressibleMessageRoundTrips() {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<65536).map { _ in UInt8.random(in: 0...255, using: &g) }
        XCTAssertEqual(roundTrip(bytes, bits: 10, cap: 65536), .ok(65536))
    }
}

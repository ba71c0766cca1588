import XCTest
@testable import ParleyWebSocket

/// Feeds a byte stream to a FrameReader the way a connection does: unconsumed bytes are kept
/// and offered again with the next piece.
private func feedReader(_ input: [UInt8], limit: Int, pieces: [Int]) -> (events: [String], fail: Int?) {
    var reader = FrameReader(limits: FrameReaderLimits(maxMessageBytes: limit))
    var pending: [UInt8] = []
    var events: [String] = []
    var stopped = false
    var at = 0
    for size in pieces + [input.count] {
        guard at < input.count, !stopped else { break }
        let end = min(input.count, at + size)
        pending += input[at..<end]
        at = end
        let outcome = pending.withUnsafeMutableBytes { buf in
            reader.read(buf) { ev in
                switch ev {
                case .text(let t): events.append("text:" + hexString(t))
                case .binary(let b): events.append("binary:" + hexString(b))
                case .ping(let p): events.append("ping:" + hexString(p))
                case .pong(let p): events.append("pong:" + hexString(p))
                case .compressed(let op, let z): events.append("compressed-\(op == .text ? "text" : "binary"):" + hexString(z))
                case .close(let code, let reason):
                    events.append("close:\(code.map(String.init) ?? "nil"):" + hexString(reason))
                    stopped = true
                    return false
                }
                return true
            }
        }
        switch outcome {
        case .consumed(let n): pending.removeFirst(n)
        case .fail(let code): return (events, Int(code.rawValue))
        }
    }
    return (events, nil)
}

private func expected(_ c: [String: Any]) -> [String] {
    (c["events"] as! [[String: Any]]).map { e in
        if let t = e["text"] as? String { return "text:" + hexString(Array(t.utf8)) }
        if let b = e["binaryHex"] as? String { return "binary:" + b }
        if let p = e["pingHex"] as? String { return "ping:" + p }
        if let p = e["pongHex"] as? String { return "pong:" + p }
        let code = (e["close"] as? Int).map(String.init) ?? "nil"
        return "close:\(code):" + hexString(Array((e["reason"] as! String).utf8))
    }
}

final class FrameReaderTests: XCTestCase {
    func testVectorsWhole() throws {
        for c in try Vectors.jsonLines("ws/frames.jsonl") {
            let name = c["name"] as! String
            let input = hexBytes(c["input"] as! String)
            let limit = c["maxMessageBytes"] as? Int ?? 65536
            let r = feedReader(input, limit: limit, pieces: [])
            XCTAssertEqual(r.events, expected(c), name)
            XCTAssertEqual(r.fail, c["fail"] as? Int, name)
        }
    }

    func testVectorsByteByByte() throws {
        for c in try Vectors.jsonLines("ws/frames.jsonl") {
            let input = hexBytes(c["input"] as! String)
            guard input.count < 5000 else { continue }
            let r = feedReader(input, limit: c["maxMessageBytes"] as? Int ?? 65536, pieces: Array(repeating: 1, count: input.count))
            XCTAssertEqual(r.events, expected(c), c["name"] as! String)
            XCTAssertEqual(r.fail, c["fail"] as? Int, c["name"] as! String)
        }
    }

    func testVectorsSplitAtEveryPosition() throws {
        for c in try Vectors.jsonLines("ws/frames.jsonl") {
            let input = hexBytes(c["input"] as! String)
            guard input.count < 400 else { continue }
            for cut in 1..<max(2, input.count) {
                let r = feedReader(input, limit: c["maxMessageBytes"] as? Int ?? 65536, pieces: [cut])
                XCTAssertEqual(r.events, expected(c), "\(c["name"]!) cut at \(cut)")
                XCTAssertEqual(r.fail, c["fail"] as? Int, "\(c["name"]!) cut at \(cut)")
            }
        }
    }

    func testLargeFrameStreamsInSmallPiecesWithoutBufferingTheWholeInput() {
        let payload = [UInt8](repeating: 0x61, count: 1 << 20)
        let frame = payload.withUnsafeBytes { FrameEncoder.maskedFrame(.text, $0, key: 0x1234_5678) }
        let r = feedReader(frame, limit: 1 << 20, pieces: Array(repeating: 4093, count: frame.count / 4093 + 1))
        XCTAssertNil(r.fail)
        XCTAssertEqual(r.events.count, 1)
        XCTAssertEqual(r.events.first?.count, "text:".count + 2 * payload.count)
    }

    func testUnmaskMatchesBytewiseAtEveryOffsetAndLength() {
        let key: UInt32 = 0xA1B2_C3D4
        let keyBytes: [UInt8] = withUnsafeBytes(of: key.littleEndian) { Array($0) }
        for offset in 0..<8 {
            for len in 0..<40 {
                var data = (0..<len).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
                let want = data.enumerated().map { $0.element ^ keyBytes[($0.offset + offset) % 4] }
                data.withUnsafeMutableBytes { unmask($0, key: key, offset: offset) }
                XCTAssertEqual(data, want, "offset \(offset) len \(len)")
            }
        }
    }

    func testEncoderHeaderLengths() {
        XCTAssertEqual(FrameEncoder.frame(.text, Array("Hello".utf8)), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
        XCTAssertEqual(Array(FrameEncoder.frame(.binary, [UInt8](repeating: 0, count: 256)).prefix(4)), [0x82, 0x7E, 0x01, 0x00])
        XCTAssertEqual(Array(FrameEncoder.frame(.binary, [UInt8](repeating: 0, count: 65536)).prefix(10)), [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
    }

    func testClosePayloadCutsReasonOnAUTF8Boundary() {
        let reason = String(repeating: "é", count: 100)  // 200 bytes
        let p = FrameEncoder.closePayload(.policyViolation, reason: reason)
        XCTAssertLessThanOrEqual(p.count, 125)
        XCTAssertNotNil(String(validating: p[2...], as: UTF8.self))
    }
}

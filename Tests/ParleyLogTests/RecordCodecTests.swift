import XCTest
@testable import ParleyLog

final class RecordCodecTests: XCTestCase {
    func testCRC32CCheckValueAndIndependentVectors() throws {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Protocol/vectors/log/crc32c.jsonl")
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 10)
        for line in lines {
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let hex = Array((o["hex"] as! String).utf8)
            var bytes: [UInt8] = []
            var i = 0
            while i + 1 < hex.count {
                bytes.append(UInt8(String(decoding: hex[i...i + 1], as: UTF8.self), radix: 16)!)
                i += 2
            }
            XCTAssertEqual(CRC32C.checksum(bytes), UInt32(o["crc32c"] as! Int), "crc of \(bytes.count) bytes")
            // Incremental over two pieces equals one pass.
            let cut = bytes.count / 3
            let inc = CRC32C.update(CRC32C.update(0, bytes[0..<cut].withUnsafeBytes { $0 }), bytes[cut...].withUnsafeBytes { $0 })
            XCTAssertEqual(inc, UInt32(o["crc32c"] as! Int))
        }
    }

    func testRoundTripOfEveryRecordType() {
        let types: [RecordType] = [.noop, .tombstone, .message, .conversationCreated, .conversationAssigned, .conversationTransferred,
                                   .conversationResolved, .orderAttached, .csat, .readMarker, .order, .agentStatus, RecordType(200)]
        for (i, t) in types.enumerated() {
            for (keyLen, payloadLen) in [(0, 0), (1, 1), (63, 7), (64, 8), (0, 1000), (64, 65536)] {
                let r = Record(type: t, flags: UInt16(i), term: 7, offset: UInt64(1000 + i), timestampMs: 1_763_900_000_000 + Int64(i),
                               conversation: ConversationID(high: 0xDEAD_BEEF, low: UInt64(i)), sequence: UInt64(i * 3),
                               key: [UInt8](repeating: 0x41, count: keyLen), payload: (0..<payloadLen).map { UInt8(truncatingIfNeeded: $0) })
                let bytes = RecordCodec.encode(r)
                XCTAssertEqual(bytes.count % 8, 0, "8-byte aligned")
                XCTAssertEqual(RecordCodec.decode(bytes), .record(r, size: bytes.count), "\(t) key \(keyLen) payload \(payloadLen)")
            }
        }
    }

    func testEverySingleBitFlipIsDetected() {
        let r = Record(type: .message, term: 1, offset: 42, timestampMs: 1_763_900_000_000, conversation: ConversationID(high: 1, low: 2),
                       sequence: 5, key: Array("client-msg-1".utf8), payload: Array(#"{"text":"where is my order?"}"#.utf8))
        let good = RecordCodec.encode(r)
        let frameEnd = 4 + Int(UInt32(good[0]) | UInt32(good[1]) << 8)  // padding bytes are not part of the frame
        for bit in 0..<(frameEnd * 8) {
            var bad = good
            bad[bit / 8] ^= UInt8(1 << (bit % 8))
            if case .record = RecordCodec.decode(bad) { XCTFail("flip of bit \(bit) went unnoticed") }
        }
    }

    func testRefusesLimits() {
        XCTAssertThrowsError(try RecordCodec.validate(Record(type: .message, key: [UInt8](repeating: 1, count: 65))))
        XCTAssertThrowsError(try RecordCodec.validate(Record(type: .message, payload: [UInt8](repeating: 1, count: RecordCodec.maxPayloadBytes + 1))))
        XCTAssertEqual(RecordCodec.decode([UInt8](repeating: 0, count: 64)), .invalid("zero length"))
        XCTAssertEqual(RecordCodec.decode([0x50, 0, 0, 0]), .truncated)
    }

    func testConversationIDText() {
        let id = ConversationID(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210)
        XCTAssertEqual(id.description, "01234567-89ab-cdef-fedc-ba9876543210")
        XCTAssertEqual(ConversationID(id.description), id)
        XCTAssertEqual(ConversationID(high: 0, low: 1).description, "00000000-0000-0000-0000-000000000001")
        XCTAssertNil(ConversationID("not-a-uuid"))
        XCTAssertEqual(ConversationID("0123456789ABCDEFfedcba9876543210"), id, "dashes are optional, case is not significant")
        XCTAssertEqual(ConversationID("01234567-89AB-CDEF-FEDC-BA9876543210"), id)
    }

    /// The canonical 36-byte form is parsed eight digits at a time: every byte value at every
    /// position must give what the digit-by-digit reading gives.
    func testConversationIDWordParserAgreesWithDigitByDigit() {
        func reference(_ b: [UInt8]) -> ConversationID? {
            var h: UInt64 = 0, l: UInt64 = 0, n = 0
            for c in b where c != UInt8(ascii: "-") {
                guard c < 0x80, let d = Character(Unicode.Scalar(c)).hexDigitValue else { return nil }
                guard n < 32 else { return nil }
                if n < 16 { h = h << 4 | UInt64(d) } else { l = l << 4 | UInt64(d) }
                n += 1
            }
            return n == 32 ? ConversationID(high: h, low: l) : nil
        }
        let base = Array("0b6e3f9a-4A0c-4c8e-9f41-1a2b3c4d5e6f".utf8)
        for i in base.indices {
            for v in 0...255 {
                var b = base
                b[i] = UInt8(v)
                let got = b.withUnsafeBufferPointer { ConversationID(utf8: $0) }
                XCTAssertEqual(got, reference(b), "byte \(v) at \(i)")
            }
        }
    }
}

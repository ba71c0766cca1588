import PropertyBased
import Testing
@testable import ParleyLog

@Suite struct RecordPropertyTests {
    static let recordGen = zip(
        Gen.uint8(), Gen.uint16(), Gen.uint64(), Gen.int64(in: 0...Int64.max), Gen.uint64(),
        Gen.uint8().array(of: 0...64), Gen.uint8().array(of: 0...300)
    ).map { type, flags, offset, ts, seq, key, payload in
        Record(type: RecordType(type), flags: flags, term: 1, offset: offset, timestampMs: ts,
               conversation: ConversationID(high: seq &* 31, low: offset), sequence: seq, key: key, payload: payload)
    }

    @Test func encodeThenDecodeIsIdentity() async {
        await propertyCheck(count: 500, input: Self.recordGen) { r in
            let bytes = RecordCodec.encode(r)
            #expect(bytes.count % 8 == 0)
            #expect(RecordCodec.decode(bytes) == .record(r, size: bytes.count))
        }
    }

    @Test func anyPrefixIsTruncatedNeverARecord() async {
        await propertyCheck(count: 300, input: Self.recordGen, Gen.int(in: 0...1000)) { r, cut in
            let bytes = RecordCodec.encode(r)
            let frameEnd = 4 + Int(UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16)
            let prefix = Array(bytes.prefix(cut % frameEnd))
            #expect(RecordCodec.decode(prefix) == .truncated)
        }
    }

    @Test func anyByteChangeInTheFrameIsDetected() async {
        await propertyCheck(count: 500, input: Self.recordGen, Gen.int(in: 0...100_000), Gen.uint8(in: 1...255)) { r, at, delta in
            var bytes = RecordCodec.encode(r)
            let frameEnd = 4 + Int(UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16)
            bytes[at % frameEnd] &+= delta
            if case .record = RecordCodec.decode(bytes) { Issue.record("a changed byte at \(at % frameEnd) decoded as a record") }
        }
    }
}

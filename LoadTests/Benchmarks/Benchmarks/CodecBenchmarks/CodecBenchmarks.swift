import Benchmark
import Foundation
import ParleyHTTP
import ParleyJSON
import ParleyProtocol
import ParleyWebSocket
import ParleyUTF8

// Target: 0 mallocs to parse and unmask a frame that is complete in the read buffer.

/// A buffer of `count` masked client text frames of `size` bytes each. The key and payload are
/// chosen so unmasking twice (every other iteration re-masks in place) still yields valid ASCII.
private func maskedFrames(count: Int, size: Int) -> [UInt8] {
    let payload = [UInt8](repeating: UInt8(ascii: "a"), count: size)
    var out: [UInt8] = []
    for _ in 0..<count { out += payload.withUnsafeBytes { FrameEncoder.maskedFrame(.text, $0, key: 0x0403_0201) } }
    return out
}

private func parseAll(_ reader: inout FrameReader, _ buf: UnsafeMutableRawBufferPointer) -> Int {
    var delivered = 0
    _ = reader.read(buf) { ev in
        if case .text(let t) = ev { delivered &+= t.count }
        return true
    }
    return delivered
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.mallocCountTotal, .wallClock, .throughput], maxDuration: .seconds(2))

    /// Parse, unmask, validate and deliver `count` masked text frames of `size` bytes, read at once.
    func frameReaderBenchmark(_ name: String, count: Int, size: Int) {
        Benchmark(name) { benchmark in
            var frames = maskedFrames(count: count, size: size)
            var reader = FrameReader()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                blackHole(frames.withUnsafeMutableBytes { parseAll(&reader, $0) })
            }
        }
    }
    frameReaderBenchmark("FrameReader: one 16-byte text frame complete in the buffer", count: 1, size: 16)
    frameReaderBenchmark("FrameReader: 64 text frames of 150 bytes in one read", count: 64, size: 150)
    frameReaderBenchmark("FrameReader: one 16 KiB text frame", count: 1, size: 16 * 1024)

    Benchmark("FrameEncoder: server frame header") { benchmark in
        var header: (UInt64, UInt64) = (0, 0)
        for i in benchmark.scaledIterations {
            blackHole(withUnsafeMutableBytes(of: &header) { FrameEncoder.writeHeader(into: $0.baseAddress!, opcode: .text, length: 100 + i & 0xFFFF) })
        }
    }

    Benchmark("UTF8Validator: 1 KiB of mixed text") { benchmark in
        let text = Array(String(repeating: "hello κόσμε, order #12345 😀 ", count: 30).utf8.prefix(1024))
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(text.withUnsafeBytes { UTF8Validator.isValid($0) })
        }
    }

    // A client's message.send of 200 bytes and the stored event it becomes: what every node parses
    // per message. Target (issue 15): at most 2 allocations to decode the request (the text).
    let send = Array(#"{"type":"message.send","ref":"r-12","conversation":"0b6e3f9a-4a0c-4c8e-9f41-1a2b3c4d5e6f","clientMsgId":"c1-000042","text":"Hi, my order 1042 arrived damaged: the box was crushed, the mug is broken."}"#.utf8)
    precondition(send.count == 200)
    let stored = Array(#"{"type":"message","conversation":"0b6e3f9a-4a0c-4c8e-9f41-1a2b3c4d5e6f","seq":17,"ts":1764670000123,"from":{"id":"cust-42","role":"customer","name":"Ada Lovelace"},"text":"Hi, my order 1042 arrived damaged: the box was crushed.","clientMsgId":"c1-000042"}"#.utf8)
    Benchmark("ClientFrames.parse: message.send of 200 bytes") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ClientFrames.parse(send)) }
    }
    Benchmark("JSONParser.parse: the same message.send") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(JSONParser.parse(send)) }
    }
    Benchmark("JSONSerialization (baseline): the same message.send") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try? JSONSerialization.jsonObject(with: Data(send))) }
    }
    Benchmark("ServerFrames.decodeEvent: a stored message event") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(ServerFrames.decodeEvent(stored)) }
    }
    Benchmark("JSONScanner.skip: the same message.send (checking every byte, building nothing)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(send.withUnsafeBytes { b in var s = JSONScanner(b); return (try? s.skip()) != nil })
        }
    }

    Benchmark("HTTPRequestParser: WebSocket upgrade request") { benchmark in
        let req = Array(("GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: parley.v1\r\n\r\n").utf8)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var p = HTTPRequestParser()
            blackHole(req.withUnsafeBytes { p.parse($0) })
        }
    }
}

// libFuzzer harness for the WebSocket frame reader (built by scripts/fuzz.sh with -sanitize=fuzzer).
// Invariants: never traps, never consumes more than offered, and gives the same result whether
// the input arrives whole or in pieces.

@_cdecl("LLVMFuzzerTestOneInput")
public func frameReaderFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let piece = Int(data[0]) + 1
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let whole = feed(input, piece: input.count)
    let split = feed(input, piece: piece)
    precondition(whole == split, "whole and split input disagree")
    return 0
}

private func feed(_ input: [UInt8], piece: Int) -> [String] {
    var reader = FrameReader(limits: FrameReaderLimits(maxMessageBytes: 4096, allowRSV1: false))
    var pending: [UInt8] = []
    var out: [String] = []
    var at = 0
    var stopped = false
    while at < input.count, !stopped {
        let end = min(input.count, at + max(1, piece))
        pending += input[at..<end]
        at = end
        let outcome = pending.withUnsafeMutableBytes { buf in
            reader.read(buf) { ev in
                switch ev {
                case .text(let t): out.append("t\(Array(t))")
                case .binary(let b): out.append("b\(Array(b))")
                case .ping(let p): out.append("p\(Array(p))")
                case .pong(let p): out.append("P\(Array(p))")
                case .compressed(let op, let z): out.append("z\(op.rawValue)\(Array(z))")
                case .close(let c, let r): out.append("c\(String(describing: c))\(Array(r))"); stopped = true; return false
                }
                return true
            }
        }
        switch outcome {
        case .consumed(let n):
            precondition(n >= 0 && n <= pending.count)
            pending.removeFirst(n)
        case .fail(let code):
            out.append("fail\(code.rawValue)")
            return out
        }
    }
    return out
}

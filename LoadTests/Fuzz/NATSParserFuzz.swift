// libFuzzer harness for the NATS server-protocol parser (built by scripts/fuzz.sh).
// Invariants: never traps on any bytes; the same bytes give the same operations (or the same
// error) whole and cut in two at a point the input chooses; nothing is held past the limits.

@_cdecl("LLVMFuzzerTestOneInput")
public func natsParserFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    var limits = NATSLimits()
    limits.maxControlLineBytes = 512
    limits.maxMessageBytes = 4096
    let input = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    var whole = ServerParser(limits: limits)
    let a = whole.parse(input)
    precondition(whole.bufferedBytes <= limits.maxMessageBytes + limits.maxControlLineBytes + 2 || (try? a.get()) == nil)
    let cut = input.isEmpty ? 0 : Int(data[0]) % (input.count + 1)
    var split = ServerParser(limits: limits)
    let b1 = split.parse(Array(input[..<cut]))
    let b2 = split.parse(Array(input[cut...]))
    switch (a, b1, b2) {
    case (.success(let ops), .success(let x), .success(let y)): precondition(ops == x + y, "split changed the operations")
    case (.failure(let e), _, .failure(let f)): precondition(e == f || b1 == .failure(f), "split changed the error")
    case (.failure, .failure, _): break
    default: preconditionFailure("whole and split disagree: \(a) vs \(b1), \(b2)")
    }
    return 0
}

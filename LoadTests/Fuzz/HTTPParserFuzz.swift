// libFuzzer harness for the HTTP/1.1 request parser (built by scripts/fuzz.sh with -sanitize=fuzzer).
// Invariants: never traps; a complete request never claims more bytes than offered; the answer for
// the whole input equals the answer after offering it in two pieces.

@_cdecl("LLVMFuzzerTestOneInput")
public func httpParserFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    var limits = HTTPParserLimits()
    limits.maxHeadBytes = 2048
    limits.maxBodyBytes = 4096
    let cut = Int(data[0]) % size
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    var a = HTTPRequestParser(limits: limits)
    let whole = a.parse(input)
    if case .complete(let head, let bodyStart, let consumed) = whole {
        precondition(consumed <= input.count && bodyStart + head.contentLength == consumed)
    }
    var b = HTTPRequestParser(limits: limits)
    let first = b.parse(UnsafeRawBufferPointer(rebasing: input[0..<min(cut, input.count)]))
    if case .needMore = first {
        precondition(b.parse(input) == whole, "incremental parse disagrees")
    }
    return 0
}

// libFuzzer harness for the permessage-deflate receive path (built by scripts/fuzz.sh with
// -sanitize=fuzzer over Compression/Zlib.swift and Codec/DeflateNegotiation.swift).
// Byte 0 picks the mode. Inflate: never traps, never writes or reports more than the cap, and what
// it accepts compresses and inflates back to the same bytes; the same input inflates the same way
// twice on a reused stream (no state leaks between messages without context takeover).
// Negotiation: never traps, and an accepted offer's answer is accepted by the client side.

@_cdecl("LLVMFuzzerTestOneInput")
public func inflateFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 1 else { return 0 }
    let mode = data[0]
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    if mode & 1 == 0 {
        let cap = 1 + Int(mode >> 1) * 64  // 1 ... 8,129 bytes
        let bits = 9 + Int(mode >> 1) % 7
        guard let i = Inflater(windowBits: bits) else { preconditionFailure("inflateInit2 failed") }
        let out = UnsafeMutableRawPointer.allocate(byteCount: cap + 1 + 16, alignment: 16)
        defer { out.deallocate() }
        // A guard after the cap + 1 bytes: the inflater must never touch it.
        for k in 0..<16 { out.storeBytes(of: 0xA5, toByteOffset: cap + 1 + k, as: UInt8.self) }
        let first = i.inflate(input, into: out, cap: cap, keepContext: false)
        for k in 0..<16 { precondition(out.load(fromByteOffset: cap + 1 + k, as: UInt8.self) == 0xA5, "wrote past cap + 1") }
        if case .ok(let n) = first {
            precondition(n <= cap)
            let got = Array(UnsafeRawBufferPointer(start: out, count: n))
            precondition(i.inflate(input, into: out, cap: cap, keepContext: false) == first, "second inflate differs")
            precondition(Array(UnsafeRawBufferPointer(start: out, count: n)) == got)
            let d = Deflater(windowBits: 15)!
            let zcap = d.bound(n)
            let z = UnsafeMutableRawPointer.allocate(byteCount: zcap, alignment: 16)
            defer { z.deallocate() }
            let zn = got.withUnsafeBytes { d.compress($0, into: z, capacity: zcap) }
            let back = Inflater(windowBits: 15)!
            let r = back.inflate(UnsafeRawBufferPointer(start: z, count: zn), into: out, cap: cap, keepContext: false)
            precondition(r == .ok(n) && Array(UnsafeRawBufferPointer(start: out, count: n)) == got, "round trip differs")
        }
    } else {
        let text = String(decoding: input, as: UTF8.self)
        let values = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if let (params, response) = DeflateNegotiation.negotiate(values, policy: DeflatePolicy()) {
            precondition((9...15).contains(params.serverMaxWindowBits) && (8...15).contains(params.clientMaxWindowBits))
            guard case .success(let seen?) = DeflateNegotiation.clientAccept([response]) else { preconditionFailure("own answer refused: \(response)") }
            precondition(seen.clientMaxWindowBits == params.clientMaxWindowBits || !response.contains("client_max_window_bits"))
        }
    }
    return 0
}

// libFuzzer harness for the chat protocol's two decoders (built by scripts/fuzz.sh over
// ParleyProtocol, ParleyChat's model, ParleyJSON and ParleyLog's ids as one module).
// Invariants: neither decoder traps on any input; a request error points inside the input;
// what either accepts, encoded again, decodes to the same frame (so the encoder writes only
// what the decoder reads), except resume keys that are not conversation ids, which a request
// only reports (the server answers resume.failed for them) and the encoder does not write.

@_cdecl("LLVMFuzzerTestOneInput")
public func protocolFramesFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    check(ClientFrames.parse(input), ClientFrames.encode, ClientFrames.parse, canonical, \.message)
    check(ServerFrames.decode(input), ServerFrames.encode, ServerFrames.decode, { $0 }, \.message)
    return 0
}

/// One direction: an error says why; an accepted frame encodes to bytes that decode to it again
/// and encode the same.
private func check<F: Equatable, E: Error>(_ decoded: Result<F, E>, _ encode: (F) -> [UInt8], _ decode: ([UInt8]) -> Result<F, E>,
                                           _ canonical: (F) -> F, _ message: KeyPath<E, String>) {
    switch decoded {
    case .failure(let e):
        precondition(!e[keyPath: message].isEmpty, "an error without a message")
    case .success(let f):
        let out = encode(f)
        guard case .success(let again) = decode(out) else { preconditionFailure("its own frame refused: \(String(decoding: out, as: UTF8.self))") }
        precondition(again == canonical(f), "round trip changed it: \(String(decoding: out, as: UTF8.self))")
        precondition(encode(again) == out, "encoding not stable")
    }
}

private func canonical(_ f: ClientFrame) -> ClientFrame {
    guard case .hello(let token, let resume, _) = f.request else { return f }
    return ClientFrame(ref: f.ref, .hello(token: token, resume: resume, unknownResume: []))
}

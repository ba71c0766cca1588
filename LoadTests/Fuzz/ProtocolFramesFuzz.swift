// libFuzzer harness for the chat protocol's two decoders (built by scripts/fuzz.sh over
// ParleyProtocol, ParleyChat's model, ParleyJSON and ParleyLog's ids as one module).
// Invariants: neither decoder traps on any input; a request error points inside the input;
// what either accepts, encoded again, decodes to the same frame (so the encoder writes only
// what the decoder reads), except resume keys that are not conversation ids, which a request
// only reports (the server answers resume.failed for them) and the encoder does not write.

@_cdecl("LLVMFuzzerTestOneInput")
public func protocolFramesFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    switch ClientFrames.parse(input) {
    case .failure(let e):
        precondition(!e.message.isEmpty, "a request error without a message")
    case .success(let f):
        let out = ClientFrames.encode(f)
        guard case .success(let again) = ClientFrames.parse(out) else {
            preconditionFailure("its own request refused: \(String(decoding: out, as: UTF8.self))")
        }
        precondition(again == canonical(f), "request round trip changed it: \(String(decoding: out, as: UTF8.self))")
        precondition(ClientFrames.encode(again) == out, "request encoding not stable")
    }
    switch ServerFrames.decode(input) {
    case .failure(let e):
        precondition(!e.message.isEmpty, "a server-frame error without a message")
    case .success(let f):
        let out = ServerFrames.encode(f)
        guard case .success(let again) = ServerFrames.decode(out) else {
            preconditionFailure("its own server frame refused: \(String(decoding: out, as: UTF8.self))")
        }
        precondition(again == f, "server-frame round trip changed it: \(String(decoding: out, as: UTF8.self))")
        precondition(ServerFrames.encode(again) == out, "server-frame encoding not stable")
    }
    return 0
}

private func canonical(_ f: ClientFrame) -> ClientFrame {
    guard case .hello(let token, let resume, _) = f.request else { return f }
    return ClientFrame(ref: f.ref, .hello(token: token, resume: resume, unknownResume: []))
}

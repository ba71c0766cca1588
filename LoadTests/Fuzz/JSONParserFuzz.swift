// libFuzzer harness for the JSON parser every client frame goes through (built by scripts/fuzz.sh).
// Invariants: never traps (depth, escapes, UTF-8, numbers); a failure points inside the input;
// what it accepts, written back out, parses to the same value.

@_cdecl("LLVMFuzzerTestOneInput")
public func jsonParserFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    switch JSONParser.parse(input) {
    case .failure(let f):
        precondition(f.offset >= 0 && f.offset <= size, "failure offset outside the input")
    case .success(let v):
        var out: [UInt8] = []
        write(v, &out)
        guard case .success(let again) = JSONParser.parse(out) else { preconditionFailure("its own output refused: \(String(decoding: out, as: UTF8.self))") }
        precondition(again == v, "round trip changed the value")
    }
    return 0
}

private func write(_ v: JSONValue, _ out: inout [UInt8]) {
    switch v {
    case .null: out += Array("null".utf8)
    case .bool(let b): out += Array((b ? "true" : "false").utf8)
    case .number(let d): out += Array("\(d)".utf8)
    case .string(let s): writeString(s, &out)
    case .array(let xs):
        out.append(UInt8(ascii: "["))
        for (i, x) in xs.enumerated() { if i > 0 { out.append(UInt8(ascii: ",")) }; write(x, &out) }
        out.append(UInt8(ascii: "]"))
    case .object(let ms):
        out.append(UInt8(ascii: "{"))
        for (i, m) in ms.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            writeString(m.key, &out)
            out.append(UInt8(ascii: ":"))
            write(m.value, &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}

private func writeString(_ s: String, _ out: inout [UInt8]) {
    let hex: [UInt8] = Array("0123456789abcdef".utf8)
    out.append(UInt8(ascii: "\""))
    for c in s.utf8 {
        if c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { out += [UInt8(ascii: "\\"), c] }
        else if c < 0x20 { out += Array("\\u00".utf8) + [hex[Int(c >> 4)], hex[Int(c & 15)]] }
        else { out.append(c) }
    }
    out.append(UInt8(ascii: "\""))
}

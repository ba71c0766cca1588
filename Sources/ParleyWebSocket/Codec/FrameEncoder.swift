/// Server-to-client frame headers (never masked). A header depends only on opcode, FIN, RSV1 and
/// length, so a frame built once can be shared by every recipient.
public enum FrameEncoder {
    /// Largest header: 2 + 8 bytes.
    public static let maxHeaderBytes = 10

    /// Writes the header into `out` (at least 10 bytes) and returns its length.
    @inline(__always)
    public static func writeHeader(into out: UnsafeMutableRawPointer, opcode: Opcode, length: Int, fin: Bool = true, rsv1: Bool = false) -> Int {
        var b0 = opcode.rawValue
        if fin { b0 |= 0x80 }
        if rsv1 { b0 |= 0x40 }
        out.storeBytes(of: b0, as: UInt8.self)
        if length < 126 {
            out.storeBytes(of: UInt8(length), toByteOffset: 1, as: UInt8.self)
            return 2
        } else if length <= 0xFFFF {
            out.storeBytes(of: 126, toByteOffset: 1, as: UInt8.self)
            out.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
            return 4
        } else {
            out.storeBytes(of: 127, toByteOffset: 1, as: UInt8.self)
            out.storeBytes(of: UInt64(length).bigEndian, toByteOffset: 2, as: UInt64.self)
            return 10
        }
    }

    /// A whole frame as bytes (for control frames, tests and shared event frames).
    public static func frame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: maxHeaderBytes + payload.count)
        let n = out.withUnsafeMutableBytes { writeHeader(into: $0.baseAddress!, opcode: opcode, length: payload.count, fin: fin) }
        out.removeSubrange(n..<maxHeaderBytes)
        out.replaceSubrange(n..<(n + payload.count), with: payload)
        return out
    }

    public static func frame(_ opcode: Opcode, _ payload: [UInt8], fin: Bool = true) -> [UInt8] {
        payload.withUnsafeBytes { frame(opcode, $0, fin: fin) }
    }

    /// A close frame's payload: code and a reason cut to fit the 125-byte control limit on a
    /// UTF-8 boundary.
    public static func closePayload(_ code: CloseCode, reason: String = "") -> [UInt8] {
        var out: [UInt8] = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)]
        var r = Array(reason.utf8)
        if r.count > 123 {
            r = Array(r[0..<123])
            while let last = r.last, last & 0xC0 == 0x80 { r.removeLast() }
            if let last = r.last, last >= 0xC0 { r.removeLast() }
        }
        out += r
        return out
    }

    /// Writes a masked client frame into `out` (at least `maxHeaderBytes + 4 + payload.count` bytes)
    /// and returns its length. For the client SDK, the load tool and tests.
    @inline(__always)
    public static func writeMaskedFrame(into out: UnsafeMutableRawPointer, _ opcode: Opcode, _ payload: UnsafeRawBufferPointer, key: UInt32, fin: Bool = true, rsv1: Bool = false) -> Int {
        var n = writeHeader(into: out, opcode: opcode, length: payload.count, fin: fin, rsv1: rsv1)
        out.storeBytes(of: out.load(fromByteOffset: 1, as: UInt8.self) | 0x80, toByteOffset: 1, as: UInt8.self)
        out.storeBytes(of: key.littleEndian, toByteOffset: n, as: UInt32.self)
        n += 4
        if payload.count > 0 {
            (out + n).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
            unmask(UnsafeMutableRawBufferPointer(start: out + n, count: payload.count), key: key, offset: 0)
        }
        return n + payload.count
    }

    /// A masked client frame as bytes.
    public static func maskedFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, key: UInt32, fin: Bool = true) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: maxHeaderBytes + 4 + payload.count)
        let total = out.withUnsafeMutableBytes { writeMaskedFrame(into: $0.baseAddress!, opcode, payload, key: key, fin: fin) }
        out.removeSubrange(total...)
        return out
    }
}

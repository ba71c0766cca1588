import ParleyChat
import ParleyLog

/// A small JSON writer for the server's frames: keys in a fixed order (test vectors compare
/// bytes), strings escaped per RFC 8259, embedded JSON (stored orders, stored events) copied as is.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func open() { separator(); bytes.append(UInt8(ascii: "{")); needsComma = false }
    public mutating func close() { bytes.append(UInt8(ascii: "}")); needsComma = true }
    public mutating func openArray(_ key: StaticString) { self.key(key); bytes.append(UInt8(ascii: "[")); needsComma = false }
    public mutating func closeArray() { bytes.append(UInt8(ascii: "]")); needsComma = true }

    public mutating func key(_ k: StaticString) {
        separator()
        bytes.append(UInt8(ascii: "\""))
        k.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        needsComma = false
    }

    /// A member name known only at run time (a conversation id in `resume`), escaped.
    public mutating func dynamicKey(_ k: String) { string(k); bytes.append(UInt8(ascii: ":")); needsComma = false }

    public mutating func field(_ k: StaticString, _ v: String) { key(k); string(v) }
    public mutating func field(_ k: StaticString, _ v: String?) { key(k); if let v { string(v) } else { null() } }
    public mutating func field(_ k: StaticString, _ v: UInt64) { key(k); number(v) }
    public mutating func field(_ k: StaticString, _ v: Int64) { key(k); signed(v) }
    public mutating func field(_ k: StaticString, _ v: Int) { key(k); signed(Int64(v)) }
    public mutating func field(_ k: StaticString, _ v: Bool) { key(k); raw(v ? "true" : "false") }
    public mutating func field(_ k: StaticString, _ v: ConversationID) { key(k); string(v.description) }

    /// Embeds bytes that already are one JSON value.
    public mutating func rawValue(_ json: [UInt8]) { separator(); bytes.append(contentsOf: json); needsComma = true }
    public mutating func null() { raw("null") }

    public mutating func person(_ k: StaticString, _ p: Person?) {
        guard let p else { key(k); null(); return }
        key(k); open()
        field("id", p.id); field("role", p.role.rawValue); field("name", p.name)
        close()
    }

    public mutating func order(_ k: StaticString, _ o: OrderSnapshot?) {
        key(k)
        if let o { rawValue(o.json) } else { null() }
    }

    public mutating func string(_ s: String) {
        separator()
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { u in
            var start = 0
            for i in 0..<u.count {
                let b = u[i]
                guard b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[start..<i]))
                start = i + 1
                switch b {
                case UInt8(ascii: "\""): bytes += [0x5C, 0x22]
                case UInt8(ascii: "\\"): bytes += [0x5C, 0x5C]
                case 0x0A: bytes += [0x5C, UInt8(ascii: "n")]
                case 0x0D: bytes += [0x5C, UInt8(ascii: "r")]
                case 0x09: bytes += [0x5C, UInt8(ascii: "t")]
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    bytes += [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]]
                }
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[start..<u.count]))
        }
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    public mutating func number(_ v: UInt64) { separator(); appendDigits(v); needsComma = true }
    public mutating func signed(_ v: Int64) {
        separator()
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        appendDigits(v.magnitude)
        needsComma = true
    }

    private mutating func appendDigits(_ v: UInt64) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes ≥ 20 digits
        withUnsafeMutableBytes(of: &digits) { d in
            var n = v, i = 24
            repeat { i -= 1; d[i] = UInt8(ascii: "0") + UInt8(n % 10); n /= 10 } while n > 0
            bytes.append(contentsOf: d[i..<24])
        }
    }

    private mutating func raw(_ s: StaticString) {
        separator()
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
        needsComma = true
    }

    private mutating func separator() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = false
    }
}

import ParleyUTF8

/// A string as written in the JSON text, already checked by the scanner (valid UTF-8, valid
/// escapes): comparing it allocates nothing, decoding it allocates the `String` only.
public struct JSONString {
    /// The bytes between the quotes, escapes as written.
    public let raw: UnsafeBufferPointer<UInt8>
    /// Whether `raw` holds a backslash escape (then it differs from the decoded text).
    public let escaped: Bool

    /// Whether the decoded text is exactly `name`.
    @inlinable @inline(__always)
    public func equals(_ name: StaticString) -> Bool {
        guard !escaped else { return string == name.description }
        return Self.same(raw, name.utf8Start, name.utf8CodeUnitCount)
    }

    /// Whether the decoded text is exactly these UTF-8 bytes.
    public func equals(utf8 name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !escaped else { return string.utf8.elementsEqual(name) }
        return Self.same(raw, name.baseAddress, name.count)
    }

    /// Whether the decoded text is exactly `name` (a wire name from an enum's raw value).
    public func equals(string name: String) -> Bool {
        guard !escaped else { return string == name }
        return name.utf8.withContiguousStorageIfAvailable { equals(utf8: $0) } ?? (string == name)
    }

    /// A plain loop: names are short, and `elementsEqual` over buffers is not specialised into one.
    @inlinable @inline(__always) @usableFromInline
    static func same(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafePointer<UInt8>?, _ n: Int) -> Bool {
        guard a.count == n else { return false }
        guard n > 0, let a = a.baseAddress, let b else { return true }
        var i = 0
        while i < n {
            guard a[i] == b[i] else { return false }
            i &+= 1
        }
        return true
    }

    /// Calls `body` with a token of the decoded text (itself when there is no escape): a decoder
    /// matches an escaped member name, rare as it is, with the same code as a plain one.
    public func withDecoded<R, E: Error>(_ body: (JSONString) throws(E) -> R) throws(E) -> R {
        guard escaped else { return try body(self) }
        var text = string
        let r = text.withUTF8 { u in Result { () throws(E) -> R in try body(JSONString(raw: u, escaped: false)) } }
        return try r.get()
    }

    /// The decoded text's UTF-8 length.
    public var utf8Count: Int { escaped ? string.utf8.count : raw.count }

    /// Calls `body` with the decoded text's UTF-8 bytes (the raw bytes themselves when there is no escape).
    public func withUTF8<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        guard escaped else { return body(raw) }
        var s = string
        return s.withUTF8(body)
    }

    /// The decoded text.
    public var string: String {
        guard escaped else { return String(decoding: raw, as: UTF8.self) }
        // The decoded text is never longer than the escaped one.
        return String(unsafeUninitializedCapacity: raw.count) { out in
            var i = 0, o = 0
            func put(_ c: UInt8) { out[o] = c; o += 1 }
            while i < raw.count {
                let c = raw[i]
                i += 1
                guard c == UInt8(ascii: "\\") else { put(c); continue }
                let e = raw[i]
                i += 1
                switch e {
                case UInt8(ascii: "b"): put(0x08)
                case UInt8(ascii: "f"): put(0x0C)
                case UInt8(ascii: "n"): put(0x0A)
                case UInt8(ascii: "r"): put(0x0D)
                case UInt8(ascii: "t"): put(0x09)
                case UInt8(ascii: "u"):
                    var scalar = Self.hex4(raw, i) ?? 0xFFFD
                    i += 4
                    if (0xD800..<0xDC00).contains(scalar), let low = Self.hex4(raw, i + 2) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                    switch scalar {
                    case 0..<0x80: put(UInt8(scalar))
                    case 0x80..<0x800:
                        put(UInt8(0xC0 | scalar >> 6)); put(UInt8(0x80 | scalar & 0x3F))
                    case 0x800..<0x10000:
                        put(UInt8(0xE0 | scalar >> 12)); put(UInt8(0x80 | scalar >> 6 & 0x3F)); put(UInt8(0x80 | scalar & 0x3F))
                    default:
                        put(UInt8(0xF0 | scalar >> 18)); put(UInt8(0x80 | scalar >> 12 & 0x3F))
                        put(UInt8(0x80 | scalar >> 6 & 0x3F)); put(UInt8(0x80 | scalar & 0x3F))
                    }
                default: put(e)  // " \ /
                }
            }
            return o
        }
    }

    /// Four hex digits at `i`, or nil.
    static func hex4(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> UInt32? {
        guard i >= 0, i + 4 <= b.count else { return nil }
        var v: UInt32 = 0
        for k in i..<(i + 4) {
            guard let d = ASCII.hexValue(b[k]) else { return nil }
            v = v << 4 | UInt32(d)
        }
        return v
    }
}

/// A number as written in the JSON text, already checked against the RFC's grammar.
public struct JSONNumber {
    public let raw: UnsafeBufferPointer<UInt8>
    /// No fraction and no exponent.
    public let integerSyntax: Bool

    /// The exact integer: integer syntax within Int64, or a fraction or exponent form whose
    /// value is a whole number a double holds exactly (below 2^53). Nil otherwise.
    public var int: Int64? {
        if integerSyntax {
            var i = 0, negative = false
            if raw[0] == UInt8(ascii: "-") { negative = true; i = 1 }
            var v: Int64 = 0
            while i < raw.count {
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (s, o2) = negative ? m.subtractingReportingOverflow(Int64(raw[i] &- 48)) : m.addingReportingOverflow(Int64(raw[i] &- 48))
                guard !o1, !o2 else { return nil }
                v = s
                i += 1
            }
            return v
        }
        let d = double
        guard d.rounded() == d, abs(d) < 9_007_199_254_740_992 else { return nil }
        return Int64(d)
    }

    /// The value as a double (the nearest one).
    public var double: Double {
        // Integers within Int64 (every id, seq and timestamp) convert without strtod, rounded as it would.
        if integerSyntax, let v = int { return Double(v) }
        return Double(String(decoding: raw, as: UTF8.self)) ?? .nan
    }
}

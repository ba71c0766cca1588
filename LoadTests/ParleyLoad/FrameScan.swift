/// Reads the top-level fields of one JSON object in place, without building a tree: the load tool
/// reads tens of thousands of server frames a second and needs only a few fields of each.
/// Nested objects and arrays are skipped (their ranges kept, to scan them again if wanted);
/// strings are returned raw (between the quotes, escapes not undone: the fields read here are ids,
/// types and the tool's own ASCII text). Anything that is not a well-formed object gives nil.
struct FrameScan {
    typealias Bytes = UnsafeRawBufferPointer

    /// A top-level value: its kind and its bytes (a string without its quotes).
    struct Value {
        enum Kind { case string, number, object, array, literal }
        var kind: Kind
        var range: Range<Int>
    }

    private let bytes: Bytes
    /// Up to 16 top-level fields, in order (server frames have fewer).
    private(set) var keys: [(key: Range<Int>, value: Value)] = []

    init?(_ bytes: Bytes) {
        self.bytes = bytes
        var i = skipSpace(0)
        guard i < bytes.count, bytes[i] == UInt8(ascii: "{") else { return nil }
        i = skipSpace(i + 1)
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { return }
        keys.reserveCapacity(8)
        while true {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\""), let keyEnd = stringEnd(i + 1) else { return nil }
            let key = (i + 1)..<keyEnd
            i = skipSpace(keyEnd + 1)
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { return nil }
            i = skipSpace(i + 1)
            guard let (value, next) = value(at: i) else { return nil }
            keys.append((key, value))
            i = skipSpace(next)
            guard i < bytes.count else { return nil }
            if bytes[i] == UInt8(ascii: "}") { break }
            guard bytes[i] == UInt8(ascii: ",") else { return nil }
            i = skipSpace(i + 1)
        }
    }

    // MARK: reading fields

    func value(_ key: StaticString) -> Value? {
        let k = UnsafeRawBufferPointer(start: key.utf8Start, count: key.utf8CodeUnitCount)
        for (r, v) in keys where r.count == k.count {
            var same = true
            for j in 0..<k.count where bytes[r.lowerBound + j] != k[j] { same = false; break }
            if same { return v }
        }
        return nil
    }

    /// Whether the string field `key` equals `literal` exactly.
    func string(_ key: StaticString, is literal: StaticString) -> Bool {
        guard let v = value(key), v.kind == .string, v.range.count == literal.utf8CodeUnitCount else { return false }
        let l = UnsafeRawBufferPointer(start: literal.utf8Start, count: literal.utf8CodeUnitCount)
        for j in 0..<l.count where bytes[v.range.lowerBound + j] != l[j] { return false }
        return true
    }

    func string(_ key: StaticString) -> String? {
        guard let v = value(key), v.kind == .string else { return nil }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[v.range]), as: UTF8.self)
    }

    /// The raw bytes of a string field (valid as long as the frame is).
    func raw(_ key: StaticString) -> UnsafeRawBufferPointer? {
        guard let v = value(key), v.kind == .string else { return nil }
        return UnsafeRawBufferPointer(rebasing: bytes[v.range])
    }

    /// A non-negative integer field.
    func uint(_ key: StaticString) -> UInt64? {
        guard let v = value(key), v.kind == .number, !v.range.isEmpty else { return nil }
        var n: UInt64 = 0
        for j in v.range {
            let d = bytes[j] &- 48
            guard d < 10 else { return nil }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(d))
            guard !o1, !o2 else { return nil }
            n = s
        }
        return n
    }

    /// A nested object field, scanned in turn.
    func object(_ key: StaticString) -> FrameScan? {
        guard let v = value(key), v.kind == .object else { return nil }
        return FrameScan(UnsafeRawBufferPointer(rebasing: bytes[v.range]))
    }

    // MARK: lexing

    private func skipSpace(_ from: Int) -> Int {
        var i = from
        while i < bytes.count, bytes[i] == 32 || bytes[i] == 10 || bytes[i] == 13 || bytes[i] == 9 { i += 1 }
        return i
    }

    /// The index of the closing quote of a string whose content starts at `from`.
    private func stringEnd(_ from: Int) -> Int? {
        var i = from
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { return i }
            if c == UInt8(ascii: "\\") { i += 2; continue }
            if c < 0x20 { return nil }
            i += 1
        }
        return nil
    }

    private func value(at i: Int) -> (Value, Int)? {
        guard i < bytes.count else { return nil }
        switch bytes[i] {
        case UInt8(ascii: "\""):
            guard let end = stringEnd(i + 1) else { return nil }
            return (Value(kind: .string, range: (i + 1)..<end), end + 1)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            guard let end = containerEnd(i) else { return nil }
            return (Value(kind: bytes[i] == UInt8(ascii: "{") ? .object : .array, range: i..<end), end)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            var j = i + 1
            while j < bytes.count, isNumberByte(bytes[j]) { j += 1 }
            return (Value(kind: .number, range: i..<j), j)
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            var j = i
            while j < bytes.count, bytes[j] >= UInt8(ascii: "a"), bytes[j] <= UInt8(ascii: "z") { j += 1 }
            let word = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[i..<j]), as: UTF8.self)
            guard word == "true" || word == "false" || word == "null" else { return nil }
            return (Value(kind: .literal, range: i..<j), j)
        default:
            return nil
        }
    }

    private func isNumberByte(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
            || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
    }

    /// One past the bracket that closes the container opening at `from` (strings inside skipped).
    private func containerEnd(_ from: Int) -> Int? {
        var depth = 0
        var i = from
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "\""):
                guard let end = stringEnd(i + 1) else { return nil }
                i = end
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                depth += 1
                if depth > 64 { return nil }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return i + 1 }
            default: break
            }
            i += 1
        }
        return nil
    }
}

import ParleyUTF8

/// A pull scanner over one JSON text (RFC 8259): the caller walks objects and arrays and takes
/// each value as the kind it wants, and nothing is built that the caller does not ask for. It
/// validates as it goes — strings (UTF-8, escapes, no lone surrogates, no control characters),
/// numbers (the RFC's grammar), nesting (at most `maxDepth`) — and never traps on any input.
///
/// Strings and numbers come back as tokens over the input: comparing a key or a `type` with a
/// known name allocates nothing, and a value is decoded only when it is taken (`string`, `int`).
/// Every decoder of Parley's wire and stored JSON (client requests, server events, NATS replies)
/// and the `JSONValue` tree parser are built on it.
///
/// The scanner borrows the bytes: use it inside `withUnsafeBytes` and do not keep its tokens.
public struct JSONScanner {
    public static let maxDepth = 64

    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var offset: Int
        public var reason: String
        public init(offset: Int, reason: String) { self.offset = offset; self.reason = reason }
        public var description: String { "\(reason) at byte \(offset)" }
    }

    public enum Kind: Sendable { case object, array, string, number, bool, null }

    @usableFromInline let b: UnsafeBufferPointer<UInt8>
    @usableFromInline var _offset: Int
    @usableFromInline var depth = 0
    /// Whether a value was just completed inside the current container, so a `,` must come next.
    @usableFromInline var afterValue = false

    /// Where the next unread byte is.
    public var offset: Int { _offset }

    public init(_ bytes: UnsafeRawBufferPointer) {
        b = bytes.bindMemory(to: UInt8.self)
        _offset = 0
    }

    public init(_ bytes: UnsafeBufferPointer<UInt8>) {
        b = bytes
        _offset = 0
    }

    /// A scanner over the same bytes, at a value an earlier pass found (its `valueStart`).
    public func rewound(to offset: Int) -> JSONScanner {
        var s = JSONScanner(b)
        s._offset = offset
        return s
    }

    @usableFromInline
    func fail(_ reason: String) -> Failure { Failure(offset: _offset, reason: reason) }

    @usableFromInline @inline(__always)
    mutating func skipSpace() {
        while _offset < b.count {
            switch b[_offset] {
            case 0x20, 0x0A, 0x0D, 0x09: _offset += 1
            default: return
            }
        }
    }

    // MARK: structure

    /// The kind of the next value, without taking it.
    @inlinable
    public mutating func peek() throws(Failure) -> Kind {
        skipSpace()
        guard _offset < b.count else { throw fail("unexpected end") }
        switch b[_offset] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        default: throw fail("unexpected byte")
        }
    }

    /// Where the next value starts (after whitespace), for `rewound(to:)`.
    @inlinable
    public mutating func valueStart() -> Int { skipSpace(); return _offset }

    /// Enters an object; then `nextKey()` until it answers nil.
    @inlinable
    public mutating func beginObject() throws(Failure) {
        try enter(UInt8(ascii: "{"), "expected an object")
    }

    /// Enters an array; then `nextElement()` until it answers false.
    @inlinable
    public mutating func beginArray() throws(Failure) {
        try enter(UInt8(ascii: "["), "expected an array")
    }

    @usableFromInline @inline(__always)
    mutating func enter(_ open: UInt8, _ what: String) throws(Failure) {
        skipSpace()
        guard _offset < b.count, b[_offset] == open else { throw fail(what) }
        guard depth < Self.maxDepth else { throw fail("nested deeper than \(Self.maxDepth)") }
        depth += 1
        _offset += 1
        afterValue = false
    }

    /// The next member's name (then take or skip its value exactly once), or nil at the end of the object.
    @inlinable
    public mutating func nextKey() throws(Failure) -> JSONString? {
        guard try more(close: UInt8(ascii: "}"), first: UInt8(ascii: "\""), "expected a member name") else { return nil }
        let k = try stringToken()
        skipSpace()
        guard _offset < b.count, b[_offset] == UInt8(ascii: ":") else { throw fail("expected ':'") }
        _offset += 1
        afterValue = false
        return k
    }

    /// Whether another element follows (then take or skip it exactly once); false at the end of the array.
    @inlinable
    public mutating func nextElement() throws(Failure) -> Bool {
        try more(close: UInt8(ascii: "]"), first: nil, "expected a value")
    }

    @usableFromInline @inline(__always)
    mutating func more(close: UInt8, first: UInt8?, _ what: String) throws(Failure) -> Bool {
        skipSpace()
        guard _offset < b.count else { throw fail("unexpected end") }
        if b[_offset] == close {
            _offset += 1
            depth -= 1
            afterValue = true
            return false
        }
        if afterValue {
            guard b[_offset] == UInt8(ascii: ",") else { throw fail("expected ',' or '\(Character(Unicode.Scalar(close)))'") }
            _offset += 1
            skipSpace()
            guard _offset < b.count else { throw fail("unexpected end") }
            if b[_offset] == close { throw fail(what) }
        }
        if let first, b[_offset] != first { throw fail(what) }
        return true
    }

    /// Checks that only whitespace follows the value.
    @inlinable
    public mutating func end() throws(Failure) {
        skipSpace()
        guard _offset == b.count else { throw fail("data after the value") }
    }

    // MARK: values

    /// Takes a string.
    @inlinable
    public mutating func string() throws(Failure) -> JSONString {
        skipSpace()
        guard _offset < b.count, b[_offset] == UInt8(ascii: "\"") else { throw fail("expected a string") }
        let s = try stringToken()
        afterValue = true
        return s
    }

    /// Takes a number.
    @inlinable
    public mutating func number() throws(Failure) -> JSONNumber {
        skipSpace()
        let n = try numberToken()
        afterValue = true
        return n
    }

    /// Takes `true` or `false`.
    @inlinable
    public mutating func bool() throws(Failure) -> Bool {
        skipSpace()
        guard _offset < b.count else { throw fail("unexpected end") }
        let v = b[_offset] == UInt8(ascii: "t")
        try literal(v ? "true" : "false")
        afterValue = true
        return v
    }

    /// Takes `null`.
    @inlinable
    public mutating func null() throws(Failure) {
        skipSpace()
        try literal("null")
        afterValue = true
    }

    /// Takes the next value whatever it is, checking it as thoroughly as if it were read.
    public mutating func skip() throws(Failure) {
        switch try peek() {
        case .object:
            try beginObject()
            while try nextKey() != nil { try skip() }
        case .array:
            try beginArray()
            while try nextElement() { try skip() }
        case .string: _ = try string()
        case .number: _ = try number()
        case .bool: _ = try bool()
        case .null: try null()
        }
    }

    /// Takes the next value and answers its bytes exactly as written.
    public mutating func raw() throws(Failure) -> UnsafeBufferPointer<UInt8> {
        let start = valueStart()
        try skip()
        return UnsafeBufferPointer(rebasing: b[start..<_offset])
    }

    // MARK: tokens

    @usableFromInline @inline(__always)
    mutating func literal(_ word: StaticString) throws(Failure) {
        let n = word.utf8CodeUnitCount
        guard _offset + n <= b.count else { throw fail("unexpected end") }
        for k in 0..<n where b[_offset + k] != word.utf8Start[k] { throw fail("invalid literal") }
        _offset += n
    }

    /// At an opening quote: checks the string through its closing quote. The position lives in a
    /// local while it runs (`_offset` is written back on the way out, and where it fails).
    @usableFromInline
    mutating func stringToken() throws(Failure) -> JSONString {
        let n = b.count
        guard let p = b.baseAddress else { throw fail("unexpected end") }
        let start = _offset + 1
        var i = start
        var high: UInt64 = 0  // the OR of the string's bytes: bit 7 set when any is non-ASCII
        var escaped = false
        func failing(_ at: Int, _ reason: String) -> Failure { Failure(offset: at, reason: reason) }
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        while true {
            // Eight bytes at a time while none is a quote, a backslash or a control character
            // (bytewise zero tests; a borrow can only flag bytes above a true hit, so the lowest
            // flagged byte is the first special one, and the step jumps straight to it).
            while i &+ 8 <= n {
                let w = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                let q = w ^ (ones &* 0x22), e = w ^ (ones &* 0x5C)
                let flagged = (((q &- ones) & ~q) | ((e &- ones) & ~e) | ((w &- ones &* 0x20) & ~w)) & highs
                // The whole word counts for UTF-8, also the bytes before the special one (bytes
                // after it may not be the string's: then the check runs for nothing, no harm).
                high |= w
                guard flagged == 0 else { i &+= flagged.trailingZeroBitCount >> 3; break }
                i &+= 8
            }
            guard i < n else { throw failing(i, "unterminated string") }
            let c = p[i]
            if c == UInt8(ascii: "\"") {
                let raw = UnsafeBufferPointer(start: p + start, count: i - start)
                if high & highs != 0, !UTF8Validator.isValid(UnsafeRawBufferPointer(raw)) { throw failing(i, "invalid UTF-8") }
                _offset = i &+ 1
                return JSONString(raw: raw, escaped: escaped)
            }
            guard c >= 0x20 else { throw failing(i, "control character in a string") }
            high |= UInt64(c)
            i &+= 1
            guard c == UInt8(ascii: "\\") else { continue }
            escaped = true
            guard i < n else { throw failing(i, "unterminated string") }
            let e = p[i]
            i &+= 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                 UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                continue
            case UInt8(ascii: "u"):
                guard let scalar = JSONString.hex4(b, i) else { throw failing(i, "invalid \\u escape") }
                i &+= 4
                if (0xD800..<0xDC00).contains(scalar) {
                    guard i + 1 < n, p[i] == UInt8(ascii: "\\"), p[i + 1] == UInt8(ascii: "u") else { throw failing(i, "lone surrogate") }
                    i &+= 2
                    guard let low = JSONString.hex4(b, i) else { throw failing(i, "invalid \\u escape") }
                    guard (0xDC00..<0xE000).contains(low) else { throw failing(i, "lone surrogate") }
                    i &+= 4
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw failing(i, "lone surrogate")
                }
            default: throw failing(i, "invalid escape")
            }
        }
    }

    @usableFromInline
    mutating func numberToken() throws(Failure) -> JSONNumber {
        let start = _offset
        guard _offset < b.count else { throw fail("unexpected end") }
        if b[_offset] == UInt8(ascii: "-") { _offset += 1 }
        guard _offset < b.count, b[_offset] >= 48, b[_offset] <= 57 else { throw fail("invalid number") }
        if b[_offset] == 48 {
            _offset += 1
        } else {
            while _offset < b.count, b[_offset] >= 48, b[_offset] <= 57 { _offset += 1 }
        }
        var integer = true
        if _offset < b.count, b[_offset] == UInt8(ascii: ".") {
            integer = false
            _offset += 1
            guard _offset < b.count, b[_offset] >= 48, b[_offset] <= 57 else { throw fail("invalid number") }
            while _offset < b.count, b[_offset] >= 48, b[_offset] <= 57 { _offset += 1 }
        }
        if _offset < b.count, b[_offset] == UInt8(ascii: "e") || b[_offset] == UInt8(ascii: "E") {
            integer = false
            _offset += 1
            if _offset < b.count, b[_offset] == UInt8(ascii: "+") || b[_offset] == UInt8(ascii: "-") { _offset += 1 }
            guard _offset < b.count, b[_offset] >= 48, b[_offset] <= 57 else { throw fail("invalid number") }
            while _offset < b.count, b[_offset] >= 48, b[_offset] <= 57 { _offset += 1 }
        }
        let n = JSONNumber(raw: UnsafeBufferPointer(rebasing: b[start..<_offset]), integerSyntax: integer)
        if !integer || n.raw.count > 18, !n.double.isFinite { _offset = start; throw fail("number out of range") }
        return n
    }
}

/// Incremental UTF-8 validation (Unicode 15 Table 3-7: no overlongs, no surrogates, nothing past
/// U+10FFFF). Feed a message in any number of pieces; it fails at the first byte that cannot be
/// part of valid UTF-8, so a bad fragment is refused before the message ends.
public struct UTF8Validator: Sendable {
    /// Continuation bytes still expected for the current code point.
    private var need: UInt8 = 0
    /// Allowed range of the next continuation byte (narrowed after E0, ED, F0, F4).
    private var lower: UInt8 = 0x80
    private var upper: UInt8 = 0xBF

    public init() {}

    /// True when no code point is left unfinished.
    public var isComplete: Bool { need == 0 }

    /// Returns false at the first invalid byte.
    public mutating func validate(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        var i = 0
        while i < count {
            if need == 0 {
                // ASCII fast path, 8 bytes at a time: chat JSON is mostly ASCII.
                while i &+ 8 <= count, base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
                    i &+= 8
                }
                if i >= count { break }
                let b = base.load(fromByteOffset: i, as: UInt8.self)
                i &+= 1
                switch b {
                case 0x00...0x7F: continue
                case 0xC2...0xDF: need = 1
                case 0xE0: need = 2; lower = 0xA0
                case 0xE1...0xEC, 0xEE, 0xEF: need = 2
                case 0xED: need = 2; upper = 0x9F
                case 0xF0: need = 3; lower = 0x90
                case 0xF1...0xF3: need = 3
                case 0xF4: need = 3; upper = 0x8F
                default: return false
                }
            } else {
                let b = base.load(fromByteOffset: i, as: UInt8.self)
                i &+= 1
                guard b >= lower, b <= upper else { return false }
                lower = 0x80
                upper = 0xBF
                need &-= 1
            }
        }
        return true
    }

    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var v = UTF8Validator()
        return v.validate(bytes) && v.isComplete
    }
}

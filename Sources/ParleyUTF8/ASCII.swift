/// Byte-level ASCII helpers the decoders share (JSON `\u` escapes, conversation ids).
public enum ASCII {
    /// The value of one hexadecimal digit (either case), or nil.
    @inlinable
    public static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- 48
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- 87
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c &- 55
        default: return nil
        }
    }
}

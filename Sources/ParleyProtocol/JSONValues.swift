import Foundation

/// Helpers for values from `JSONSerialization`, where numbers and booleans are both `NSNumber`
/// (and on Linux an `NSNumber` holding 0 or 1 even answers `is Bool` with true).
public enum JSONValues {
    public static func isBool(_ v: Any) -> Bool {
        guard let n = v as? NSNumber else { return false }
        return String(cString: n.objCType) == "c"
    }

    /// An integer, not a boolean and not a fraction.
    public static func int(_ v: Any?) -> Int? {
        guard let v, !isBool(v), let n = v as? NSNumber else { return nil }
        let d = n.doubleValue
        guard d.rounded() == d, abs(d) < 9e15 else { return nil }
        return n.intValue
    }
}

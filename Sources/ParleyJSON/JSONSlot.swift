/// One member's value as a decoder collects it before it knows what the object is (a frame's
/// `type` may come last): scalars as tokens over the input, objects and arrays by where they start
/// (already checked; read them with `JSONScanner.rewound(to:)`). Nothing is allocated.
public enum JSONSlot {
    case absent
    case null
    case string(JSONString)
    case number(JSONNumber)
    case bool(Bool)
    case object(at: Int)
    case array(at: Int)

    public var isAbsent: Bool { if case .absent = self { return true } else { return false } }
    public var isNull: Bool { if case .null = self { return true } else { return false } }
    /// Absent or null: what optional members treat alike.
    public var isNone: Bool { isAbsent || isNull }
    public var token: JSONString? { if case .string(let s) = self { return s } else { return nil } }
    public var string: String? { token?.string }
    public var bool: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var int: Int64? { if case .number(let n) = self { return n.int } else { return nil } }
    /// A non-negative integer.
    public var uint: UInt64? { int.flatMap { $0 >= 0 ? UInt64($0) : nil } }
    public var objectStart: Int? { if case .object(let at) = self { return at } else { return nil } }
    public var arrayStart: Int? { if case .array(let at) = self { return at } else { return nil } }
}

extension JSONScanner {
    /// Takes the next value into a slot.
    @inlinable
    public mutating func slot() throws(Failure) -> JSONSlot {
        switch try peek() {
        case .string: return .string(try string())
        case .number: return .number(try number())
        case .bool: return .bool(try bool())
        case .null: try null(); return .null
        case .object: let at = valueStart(); try skip(); return .object(at: at)
        case .array: let at = valueStart(); try skip(); return .array(at: at)
        }
    }
}

extension JSONScanner {
    /// Walks the object that starts at `offset` (checked by an earlier pass, as a slot's is):
    /// `take` gets each member's name and takes or skips its value. False if it is no object.
    public func eachMember(at offset: Int, _ take: (JSONString, inout JSONScanner) throws(Failure) -> Void) -> Bool {
        var r = rewound(to: offset)
        do throws(Failure) {
            try r.beginObject()
            while let k = try r.nextKey() { try take(k, &r) }
            return true
        } catch {
            return false
        }
    }

    /// Walks the array that starts at `offset`: `take` takes or skips each element.
    public func eachElement(at offset: Int, _ take: (inout JSONScanner) throws(Failure) -> Void) -> Bool {
        var r = rewound(to: offset)
        do throws(Failure) {
            try r.beginArray()
            while try r.nextElement() { try take(&r) }
            return true
        } catch {
            return false
        }
    }
}

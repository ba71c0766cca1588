/// A strict JSON parser (RFC 8259) to a `JSONValue` tree: one value, surrounded by whitespace
/// only, checked by `JSONScanner` (strings, escapes, numbers, nesting at most `maxDepth`). For
/// documents read whole (tests, tools, cold paths); the hot decoders walk a `JSONScanner` instead.
public enum JSONParser {
    public static let maxDepth = JSONScanner.maxDepth
    public typealias Failure = JSONScanner.Failure

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<JSONValue, Failure> {
        var s = JSONScanner(bytes)
        do throws(Failure) {
            let v = try value(&s)
            try s.end()
            return .success(v)
        } catch {
            return .failure(error)
        }
    }

    public static func parse(_ bytes: [UInt8]) -> Result<JSONValue, Failure> {
        bytes.withUnsafeBytes { parse($0) }
    }

    /// Takes the scanner's next value as a tree.
    public static func value(_ s: inout JSONScanner) throws(Failure) -> JSONValue {
        switch try s.peek() {
        case .object:
            try s.beginObject()
            var members: [(key: String, value: JSONValue)] = []
            while let k = try s.nextKey() { members.append((k.string, try value(&s))) }
            return .object(members)
        case .array:
            try s.beginArray()
            var items: [JSONValue] = []
            while try s.nextElement() { items.append(try value(&s)) }
            return .array(items)
        case .string: return .string(try s.string().string)
        case .number: return .number(try s.number().double)
        case .bool: return .bool(try s.bool())
        case .null: try s.null(); return .null
        }
    }
}

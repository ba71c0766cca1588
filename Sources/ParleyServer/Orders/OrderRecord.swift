import Foundation
import ParleyProtocol
import ParleyLog

/// An order as the log stores it: who, which, when (for "latest"), and the order's JSON exactly as
/// the app sent it (with `id` added when absent), so amounts keep their text (`12.30` stays `12.30`).
///
/// Payload: `u16 userLen | user | u16 orderLen | order | i64 placedAtMs | JSON`, little-endian.
struct OrderRecord: Equatable {
    var userId: String
    var orderId: String
    var placedAtMs: Int64
    var json: [UInt8]

    func encode() -> [UInt8] {
        var out: [UInt8] = []
        let u = Array(userId.utf8), o = Array(orderId.utf8)
        withUnsafeBytes(of: UInt16(u.count).littleEndian) { out += $0 }
        out += u
        withUnsafeBytes(of: UInt16(o.count).littleEndian) { out += $0 }
        out += o
        withUnsafeBytes(of: placedAtMs.littleEndian) { out += $0 }
        out += json
        return out
    }

    static func decode(_ p: [UInt8]) -> OrderRecord? {
        var i = 0
        func take(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, i + n <= p.count else { return nil }
            defer { i += n }
            return p[i..<(i + n)]
        }
        func u16() -> Int? { take(2).map { Int($0[$0.startIndex]) | Int($0[$0.startIndex + 1]) << 8 } }
        guard let ul = u16(), let u = take(ul), let ol = u16(), let o = take(ol), let t = take(8) else { return nil }
        let ms = t.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
        return OrderRecord(userId: String(decoding: u, as: UTF8.self), orderId: String(decoding: o, as: UTF8.self),
                           placedAtMs: ms, json: Array(p[i...]))
    }

    var record: Record { Record(type: .order, payload: encode()) }
}

/// Why an order was refused (the message goes into the 400 body).
struct OrderInvalid: Error { let message: String }

enum OrderValidation {
    static let maxIdBytes = 128
    static let maxOrderBytes = 64 * 1024
    static let maxItems = 200
    static let maxMetadataBytes = 4096
    static let maxMetadataKeys = 50

    static func validId(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= maxIdBytes && s.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value != 0x7F }
    }

    /// Checks an order body; returns the JSON to store (with `id`) and its placedAt, or why not.
    static func validate(body: [UInt8], orderId: String) -> Result<(json: [UInt8], placedAtMs: Int64), OrderInvalid> {
        guard body.count <= maxOrderBytes else { return .failure(OrderInvalid(message: "order larger than \(maxOrderBytes) bytes")) }
        guard let o = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] else { return .failure(OrderInvalid(message: "body must be a JSON object")) }
        if let id = o["id"] {
            guard let s = id as? String, s == orderId else { return .failure(OrderInvalid(message: "id in the body must match the path")) }
        }
        guard let placed = o["placedAt"] as? String, let ms = parseTimestamp(placed) else {
            return .failure(OrderInvalid(message: "placedAt must be an RFC 3339 timestamp, e.g. 2026-11-23T10:15:00Z"))
        }
        guard let status = o["status"] as? String, !status.isEmpty, status.utf8.count <= 64 else { return .failure(OrderInvalid(message: "status (string, 1-64 bytes) is required")) }
        guard let total = o["total"], isAmount(total) else { return .failure(OrderInvalid(message: "total must be a number or a decimal string")) }
        guard let currency = o["currency"] as? String, currency.count == 3, currency.allSatisfy({ $0.isASCII && $0.isUppercase }) else {
            return .failure(OrderInvalid(message: "currency must be a 3-letter ISO 4217 code"))
        }
        guard let items = o["items"] as? [Any], items.count <= maxItems else { return .failure(OrderInvalid(message: "items must be an array of at most \(maxItems)")) }
        for (n, item) in items.enumerated() {
            guard let it = item as? [String: Any], let name = it["name"] as? String, !name.isEmpty,
                  let q = JSONValues.int(it["quantity"]), q >= 1 else {
                return .failure(OrderInvalid(message: "items[\(n)] needs a name and a quantity of at least 1"))
            }
            if let price = it["price"], !isAmount(price) { return .failure(OrderInvalid(message: "items[\(n)].price must be a number or a decimal string")) }
        }
        if let m = o["metadata"] {
            guard let md = m as? [String: Any], md.count <= maxMetadataKeys,
                  let bytes = try? JSONSerialization.data(withJSONObject: md), bytes.count <= maxMetadataBytes else {
                return .failure(OrderInvalid(message: "metadata must be an object of at most \(maxMetadataKeys) keys and \(maxMetadataBytes) bytes"))
            }
        }
        var json = body
        if o["id"] == nil {
            // Insert "id" right after the opening brace, keeping the rest of the text as sent.
            guard let brace = json.firstIndex(of: UInt8(ascii: "{")) else { return .failure(OrderInvalid(message: "body must be a JSON object")) }
            let idField = Array("\"id\":\"\(jsonEscapeString(orderId))\"".utf8) + (o.isEmpty ? [] : [UInt8(ascii: ",")])
            json.insert(contentsOf: idField, at: brace + 1)
        }
        return .success((json, ms))
    }

    static func isAmount(_ v: Any) -> Bool {
        if JSONValues.isBool(v) { return false }
        if let n = v as? NSNumber { return n.doubleValue.isFinite }
        guard let s = v as? String, !s.isEmpty, s.count <= 32 else { return false }
        return s.range(of: #"^-?[0-9]+(\.[0-9]+)?$"#, options: .regularExpression) != nil
    }

    static func parseTimestamp(_ s: String) -> Int64? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        f.formatOptions = [.withInternetDateTime]
        if let d = f.date(from: s) { return Int64((d.timeIntervalSince1970 * 1000).rounded()) }
        return nil
    }

    static func jsonEscapeString(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out
    }
}

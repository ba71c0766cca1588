/// An HTTP response, serialised in one piece.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func json(_ status: Int, _ text: String, headers: [(String, String)] = []) -> HTTPResponse {
        HTTPResponse(status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(text.utf8))
    }

    /// `{"error":{"code","message"}}`, the protocol's error body.
    public static func error(_ status: Int, code: String, message: String, headers: [(String, String)] = []) -> HTTPResponse {
        .json(status, #"{"error":{"code":"\#(code)","message":"\#(jsonEscape(message))"}}"#, headers: headers)
    }

    public func serialized(keepAlive: Bool, includeBody: Bool = true) -> [UInt8] {
        var s = "HTTP/1.1 \(status) \(HTTPResponse.reason(status))\r\n"
        var hasLength = false
        for (n, v) in headers {
            if n.lowercased() == "content-length" { hasLength = true }
            s += "\(n): \(v)\r\n"
        }
        if !hasLength, status != 101, status != 204, status != 304, !(100..<200).contains(status) { s += "Content-Length: \(body.count)\r\n" }
        if !keepAlive, status != 101 { s += "Connection: close\r\n" }
        s += "\r\n"
        var out = Array(s.utf8)
        if includeBody { out += body }
        return out
    }

    public static func reason(_ status: Int) -> String {
        switch status {
        case 101: return "Switching Protocols"
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 304: return "Not Modified"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Content Too Large"
        case 426: return "Upgrade Required"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 503: return "Service Unavailable"
        case 505: return "HTTP Version Not Supported"
        default: return "Status"
        }
    }
}

/// Escapes a string for a JSON string literal.
public func jsonEscape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 {
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out
}

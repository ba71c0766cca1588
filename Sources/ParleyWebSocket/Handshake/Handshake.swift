import COpenSSL
import ParleyHTTP

/// RFC 6455 §4.2 opening handshake, server side.
public enum Handshake {
    public static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    public struct Accepted: Equatable {
        public var acceptKey: String
        public var subprotocol: String?
        /// permessage-deflate, when an offer was accepted, and the response header value.
        public var deflate: DeflateParameters? = nil
        public var extensions: String? = nil
    }

    /// Validates an upgrade request. On failure returns the HTTP response to send instead.
    /// With `deflate` enabled, the first acceptable permessage-deflate offer is taken.
    public static func validate(_ head: HTTPRequestHead, subprotocols: [String], deflate: DeflatePolicy = DeflatePolicy(enabled: false)) -> Result<Accepted, HandshakeError> {
        guard head.method == "GET" else { return .failure(.methodNotGet) }
        guard head.versionMinor >= 1 else { return .failure(.notHTTP11) }
        guard head.headerHasToken("Upgrade", "websocket") else { return .failure(.missingUpgrade) }
        guard head.headerHasToken("Connection", "upgrade") else { return .failure(.missingConnectionUpgrade) }
        guard head.header("Sec-WebSocket-Version")?.trimmingCharacters() == "13" else { return .failure(.badVersion) }
        guard let key = head.header("Sec-WebSocket-Key")?.trimmingCharacters(), isValidKey(key) else { return .failure(.badKey) }
        var chosen: String? = nil
        if !subprotocols.isEmpty {
            outer: for h in head.headers where h.name.lowercased() == "sec-websocket-protocol" {
                for offered in h.value.split(separator: ",") {
                    let o = String(offered.trimmingSpaces())
                    if subprotocols.contains(o) { chosen = o; break outer }
                }
            }
        }
        guard let accept = acceptKey(for: key) else { return .failure(.digestUnavailable) }
        var accepted = Accepted(acceptKey: accept, subprotocol: chosen)
        if deflate.enabled {
            let offers = head.headers.filter { $0.name.lowercased() == "sec-websocket-extensions" }.map(\.value)
            if let (params, response) = DeflateNegotiation.negotiate(offers, policy: deflate) {
                accepted.deflate = params
                accepted.extensions = response
            }
        }
        return .success(accepted)
    }

    /// The 101 response; `extensions` is a negotiated Sec-WebSocket-Extensions value, if any.
    public static func response(_ a: Accepted) -> HTTPResponse {
        var headers = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", a.acceptKey)]
        if let p = a.subprotocol { headers.append(("Sec-WebSocket-Protocol", p)) }
        if let e = a.extensions { headers.append(("Sec-WebSocket-Extensions", e)) }
        return HTTPResponse(status: 101, headers: headers)
    }

    /// A 16-byte value in base64: 22 alphabet characters and "==".
    static func isValidKey(_ key: String) -> Bool {
        let u = Array(key.utf8)
        guard u.count == 24, u[22] == UInt8(ascii: "="), u[23] == UInt8(ascii: "=") else { return false }
        for c in u[0..<22] {
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "+"), UInt8(ascii: "/"):
                continue
            default:
                return false
            }
        }
        return true
    }

    /// The digest is fetched once: implicit per-call fetching costs in OpenSSL 3.
    nonisolated(unsafe) private static let sha1: OpaquePointer? = EVP_MD_fetch(nil, "SHA1", nil)

    /// base64(SHA-1(key + GUID)); nil if OpenSSL cannot compute SHA-1 (a broken or FIPS-restricted
    /// build): the handshake is then refused with 500, never a crash.
    public static func acceptKey(for key: String) -> String? {
        let input = Array((key + guid).utf8)
        var digest = [UInt8](repeating: 0, count: 20)
        var len: UInt32 = 0
        let ok = input.withUnsafeBytes { inp in
            digest.withUnsafeMutableBufferPointer { EVP_Digest(inp.baseAddress, inp.count, $0.baseAddress, &len, sha1, nil) }
        }
        guard ok == 1, len == 20 else { return nil }
        var out = [UInt8](repeating: 0, count: 29)  // 4 * ceil(20/3) + NUL
        let n = out.withUnsafeMutableBufferPointer { o in digest.withUnsafeBufferPointer { EVP_EncodeBlock(o.baseAddress, $0.baseAddress, 20) } }
        return String(decoding: out[0..<Int(n)], as: UTF8.self)
    }
}

public enum HandshakeError: Error, Equatable {
    case methodNotGet, notHTTP11, missingUpgrade, missingConnectionUpgrade, badVersion, badKey
    /// OpenSSL could not compute SHA-1: the server's fault, not the client's.
    case digestUnavailable

    public var response: HTTPResponse {
        switch self {
        case .methodNotGet:
            return .error(405, code: "invalid_request", message: "WebSocket upgrade requires GET", headers: [("Allow", "GET")])
        case .badVersion:
            return .error(426, code: "invalid_request", message: "unsupported WebSocket version", headers: [("Sec-WebSocket-Version", "13")])
        case .missingUpgrade:
            return .error(426, code: "invalid_request", message: "this endpoint needs a WebSocket upgrade", headers: [("Upgrade", "websocket")])
        case .notHTTP11:
            return .error(400, code: "invalid_request", message: "WebSocket upgrade requires HTTP/1.1")
        case .missingConnectionUpgrade:
            return .error(400, code: "invalid_request", message: "Connection header must contain Upgrade")
        case .badKey:
            return .error(400, code: "invalid_request", message: "Sec-WebSocket-Key must be 16 bytes in base64")
        case .digestUnavailable:
            return .error(500, code: "internal", message: "the server cannot compute the handshake's accept key")
        }
    }
}

extension String {
    func trimmingCharacters() -> String { String(self[...].trimmingSpaces()) }
}

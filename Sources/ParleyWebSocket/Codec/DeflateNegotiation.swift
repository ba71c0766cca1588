/// permessage-deflate (RFC 7692) parameters agreed for one connection.
public struct DeflateParameters: Equatable, Sendable {
    /// The server resets its compressor after every message (Parley's server always does).
    public var serverNoContextTakeover: Bool
    /// The client resets its compressor after every message.
    public var clientNoContextTakeover: Bool
    /// The largest LZ77 window (log2) the server's compressor may use.
    public var serverMaxWindowBits: Int
    /// The largest window the client's compressor may use: what the server's inflater needs.
    public var clientMaxWindowBits: Int

    public init(serverNoContextTakeover: Bool = true, clientNoContextTakeover: Bool = false, serverMaxWindowBits: Int = 15, clientMaxWindowBits: Int = 15) {
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }
}

/// How the server answers offers.
public struct DeflatePolicy: Sendable {
    public var enabled: Bool
    /// The window asked of clients that offered `client_max_window_bits` (smaller: less memory per
    /// connection for the inflater; 10 → ~8 KiB). Never sent to a client that did not offer it.
    public var clientWindowBits: Int
    /// The shared compressor's window when the client sets no `server_max_window_bits`.
    public var serverWindowBits: Int
    /// Messages smaller than this go out uncompressed (deflate gains little on them and costs CPU).
    public var minCompressBytes: Int
    /// zlib level for outgoing messages (1 is cheap and gains nearly as much on small JSON).
    public var level: Int

    public init(enabled: Bool = true, clientWindowBits: Int = 10, serverWindowBits: Int = 15, minCompressBytes: Int = 256, level: Int = 1) {
        self.enabled = enabled
        self.clientWindowBits = clientWindowBits
        self.serverWindowBits = serverWindowBits
        self.minCompressBytes = minCompressBytes
        self.level = level
    }
}

/// `Sec-WebSocket-Extensions` parsing (RFC 6455 §9.1) and permessage-deflate negotiation
/// (RFC 7692 §7.1). Pure: no zlib here.
public enum DeflateNegotiation {
    public static let name = "permessage-deflate"

    /// One offered extension: its name and parameters in order (a value-less parameter has nil).
    public struct Offer: Equatable, Sendable {
        public var name: String
        public var params: [Param]
    }

    public struct Param: Equatable, Sendable {
        public var name: String
        public var value: String?
    }

    /// Parses every `Sec-WebSocket-Extensions` header value, in order. Nil if any is malformed
    /// (then no extension is accepted: a header we cannot read is not half-honoured).
    public static func parse(_ values: [String]) -> [Offer]? {
        var offers: [Offer] = []
        for v in values {
            guard let more = parseOne(Array(v.utf8)) else { return nil }
            offers += more
        }
        return offers
    }

    /// The server's choice: the first acceptable permessage-deflate offer, its parameters and the
    /// response header value. Nil: compression is off for this connection (no offer, or none valid).
    public static func negotiate(_ headerValues: [String], policy: DeflatePolicy) -> (DeflateParameters, response: String)? {
        guard policy.enabled, !headerValues.isEmpty, let offers = parse(headerValues) else { return nil }
        for offer in offers where offer.name.lowercased() == name {
            if let accepted = accept(offer, policy: policy) { return accepted }
        }
        return nil
    }

    /// Validates one offer; nil declines it (unknown or repeated parameter, bad value, or a window
    /// of 8 for the server: raw deflate in zlib cannot compress with 256 bytes).
    static func accept(_ offer: Offer, policy: DeflatePolicy) -> (DeflateParameters, response: String)? {
        var seen = Set<String>()
        var clientNoTakeover = false
        var serverBits: Int? = nil
        var clientBitsOffered = false
        var clientBits: Int? = nil
        for p in offer.params {
            let n = p.name.lowercased()
            guard seen.insert(n).inserted else { return nil }
            switch n {
            case "server_no_context_takeover":
                guard p.value == nil else { return nil }
            case "client_no_context_takeover":
                guard p.value == nil else { return nil }
                clientNoTakeover = true
            case "server_max_window_bits":
                guard let v = p.value, let bits = windowBits(v) else { return nil }
                serverBits = bits
            case "client_max_window_bits":
                clientBitsOffered = true
                if let v = p.value {
                    guard let bits = windowBits(v) else { return nil }
                    clientBits = bits
                }
            default:
                return nil
            }
        }
        if let s = serverBits, s < 9 { return nil }
        var params = DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: clientNoTakeover)
        var response = name + "; server_no_context_takeover"
        if clientNoTakeover { response += "; client_no_context_takeover" }
        params.serverMaxWindowBits = min(serverBits ?? 15, policy.serverWindowBits)
        if serverBits != nil { response += "; server_max_window_bits=\(params.serverMaxWindowBits)" }
        if clientBitsOffered {
            // Only a client that offered the parameter may be asked for a smaller window (§7.1.2.2).
            params.clientMaxWindowBits = min(clientBits ?? 15, policy.clientWindowBits)
            response += "; client_max_window_bits=\(params.clientMaxWindowBits)"
        } else {
            params.clientMaxWindowBits = 15
        }
        return (params, response)
    }

    /// Why a client refuses the server's extension answer.
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// What Parley's client offers: no context takeover either way (so both ends can share one
    /// compressor and one inflater per loop) and any window the server asks for.
    public static let clientOffer = name + "; client_no_context_takeover; client_max_window_bits"

    /// Client side: checks the server's answer to `clientOffer`. Nil with an error if the server
    /// answered with something the offer did not allow (the client must then fail the connection).
    public static func clientAccept(_ headerValues: [String]) -> Result<DeflateParameters?, Refusal> {
        guard !headerValues.isEmpty else { return .success(nil) }
        guard let offers = parse(headerValues) else { return .failure(Refusal("malformed Sec-WebSocket-Extensions")) }
        guard offers.count == 1, offers[0].name.lowercased() == name else { return .failure(Refusal("unexpected extension in the response")) }
        var params = DeflateParameters(serverNoContextTakeover: false, clientNoContextTakeover: true)
        var seen = Set<String>()
        for p in offers[0].params {
            let n = p.name.lowercased()
            guard seen.insert(n).inserted else { return .failure(Refusal("repeated \(n)")) }
            switch n {
            case "server_no_context_takeover":
                guard p.value == nil else { return .failure(Refusal("server_no_context_takeover with a value")) }
                params.serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard p.value == nil else { return .failure(Refusal("client_no_context_takeover with a value")) }
            case "server_max_window_bits":
                guard let v = p.value, let bits = windowBits(v) else { return .failure(Refusal("bad server_max_window_bits")) }
                params.serverMaxWindowBits = bits
            case "client_max_window_bits":
                guard let v = p.value, let bits = windowBits(v) else { return .failure(Refusal("bad client_max_window_bits")) }
                params.clientMaxWindowBits = bits
            default:
                return .failure(Refusal("unknown parameter \(n)"))
            }
        }
        return .success(params)
    }

    /// 8...15 written as plain digits (no sign, no leading zero).
    static func windowBits(_ v: String) -> Int? {
        let u = Array(v.utf8)
        guard (1...2).contains(u.count), u.allSatisfy({ $0 >= 48 && $0 <= 57 }), u[0] != 48, let n = Int(v), (8...15).contains(n) else { return nil }
        return n
    }

    // MARK: grammar: extension *( "," extension ); extension = token *( ";" param ); param = token [ "=" (token | quoted-string) ]

    private static func parseOne(_ s: [UInt8]) -> [Offer]? {
        var i = 0
        var offers: [Offer] = []
        func skipSpace() { while i < s.count, s[i] == 32 || s[i] == 9 { i += 1 } }
        func token() -> String? {
            let start = i
            while i < s.count, isTokenChar(s[i]) { i += 1 }
            return i > start ? String(decoding: s[start..<i], as: UTF8.self) : nil
        }
        while true {
            skipSpace()
            if i == s.count { break }
            if s[i] == UInt8(ascii: ",") { i += 1; continue }  // empty list elements are allowed (#rule)
            guard let n = token() else { return nil }
            var offer = Offer(name: n, params: [])
            skipSpace()
            while i < s.count, s[i] == UInt8(ascii: ";") {
                i += 1
                skipSpace()
                guard let pn = token() else { return nil }
                skipSpace()
                var value: String? = nil
                if i < s.count, s[i] == UInt8(ascii: "=") {
                    i += 1
                    skipSpace()
                    if i < s.count, s[i] == UInt8(ascii: "\"") {
                        i += 1
                        var raw: [UInt8] = []
                        var closed = false
                        while i < s.count {
                            let c = s[i]
                            i += 1
                            if c == UInt8(ascii: "\"") { closed = true; break }
                            if c == UInt8(ascii: "\\") {
                                guard i < s.count else { return nil }
                                raw.append(s[i]); i += 1
                            } else {
                                raw.append(c)
                            }
                        }
                        // RFC 6455 §9.1: a quoted value must still be a token once unquoted.
                        guard closed, !raw.isEmpty, raw.allSatisfy(isTokenChar) else { return nil }
                        value = String(decoding: raw, as: UTF8.self)
                    } else {
                        guard let v = token() else { return nil }
                        value = v
                    }
                    skipSpace()
                }
                offer.params.append(Param(name: pn, value: value))
            }
            offers.append(offer)
            skipSpace()
            if i == s.count { break }
            guard s[i] == UInt8(ascii: ",") else { return nil }
            i += 1
        }
        return offers
    }

    private static func isTokenChar(_ c: UInt8) -> Bool {
        // RFC 7230 tchar
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(c)
        }
    }
}

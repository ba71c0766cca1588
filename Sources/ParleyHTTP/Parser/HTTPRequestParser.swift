// Pure HTTP/1.1 request parsing: standard library only, so it can be fuzzed on its own.

/// A parsed request head. Header names keep their case; look them up with `header(_:)`.
public struct HTTPRequestHead: Equatable, Sendable {
    public var method: String
    public var target: String
    public var versionMinor: Int
    public var headers: [(name: String, value: String)]
    public var contentLength: Int

    public init(method: String, target: String, versionMinor: Int, headers: [(name: String, value: String)], contentLength: Int) {
        self.method = method
        self.target = target
        self.versionMinor = versionMinor
        self.headers = headers
        self.contentLength = contentLength
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.method == b.method && a.target == b.target && a.versionMinor == b.versionMinor
            && a.contentLength == b.contentLength
            && a.headers.map { $0.name } == b.headers.map { $0.name } && a.headers.map { $0.value } == b.headers.map { $0.value }
    }

    /// The path without the query string.
    public var path: Substring {
        if let q = target.firstIndex(of: "?") { return target[..<q] }
        return target[...]
    }

    /// The first value of a header, by case-insensitive name.
    public func header(_ name: String) -> String? {
        for h in headers where h.name.count == name.count && h.name.lowercased() == name.lowercased() { return h.value }
        return nil
    }

    /// Whether a comma-separated header contains `token` (case-insensitive), e.g. `Connection: keep-alive, Upgrade`.
    public func headerHasToken(_ name: String, _ token: String) -> Bool {
        let t = token.lowercased()
        for h in headers where h.name.lowercased() == name.lowercased() {
            for part in h.value.split(separator: ",") where part.trimmingSpaces().lowercased() == t { return true }
        }
        return false
    }

    /// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 closes unless told to keep it.
    public var keepAlive: Bool {
        if headerHasToken("Connection", "close") { return false }
        if versionMinor == 0 { return headerHasToken("Connection", "keep-alive") }
        return true
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (HTTP's OWS).
    public func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}

/// Why a request was refused; `status` is the HTTP answer.
public enum HTTPParseError: Error, Equatable, Sendable {
    case malformed(String)
    case headTooLarge
    case bodyTooLarge
    case unsupportedVersion
    case unsupportedTransferEncoding

    public var status: Int {
        switch self {
        case .malformed: return 400
        case .headTooLarge: return 431
        case .bodyTooLarge: return 413
        case .unsupportedVersion: return 505
        case .unsupportedTransferEncoding: return 501
        }
    }
}

public enum HTTPParseResult: Equatable, Sendable {
    /// Not complete yet: offer the same bytes again with more appended.
    case needMore
    /// A whole request: the head, where its body lies in the offered bytes, and the total length consumed.
    case complete(HTTPRequestHead, bodyStart: Int, consumed: Int)
    case failed(HTTPParseError)
}

public struct HTTPParserLimits: Sendable {
    /// A request head (request line + headers) larger than this gets 431.
    public var maxHeadBytes = 64 * 1024
    /// A declared body larger than this gets 413, before any of it is buffered.
    public var maxBodyBytes = 1 << 20
    public var maxHeaders = 100
    public init() {}
}

/// Incremental request parser. It remembers how far it has searched for the end of the head,
/// so offering a growing buffer again does not rescan it.
public struct HTTPRequestParser: Sendable {
    public let limits: HTTPParserLimits
    private var scanned = 0

    public init(limits: HTTPParserLimits = .init()) { self.limits = limits }

    public mutating func reset() { scanned = 0 }

    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> HTTPParseResult {
        // Tolerate blank lines before a request (RFC 9112 §2.2).
        var start = 0
        while start + 1 < bytes.count, bytes[start] == 0x0D, bytes[start + 1] == 0x0A { start += 2 }
        guard let headEnd = findHeadEnd(bytes, from: start) else {
            if bytes.count - start > limits.maxHeadBytes { return .failed(.headTooLarge) }
            return .needMore
        }
        if headEnd - start > limits.maxHeadBytes { return .failed(.headTooLarge) }
        let head: HTTPRequestHead
        switch parseHead(UnsafeRawBufferPointer(rebasing: bytes[start..<headEnd])) {
        case .success(let h): head = h
        case .failure(let e): return .failed(e)
        }
        let bodyStart = headEnd + 4
        if head.contentLength > limits.maxBodyBytes { return .failed(.bodyTooLarge) }
        guard bytes.count - bodyStart >= head.contentLength else { return .needMore }
        scanned = 0
        return .complete(head, bodyStart: bodyStart, consumed: bodyStart + head.contentLength)
    }

    /// Index of the CRLFCRLF ending the head, or nil.
    private mutating func findHeadEnd(_ b: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var i = max(start, scanned - 3)
        while i + 3 < b.count {
            if b[i + 3] != 0x0A { i += b[i + 3] == 0x0D ? 1 : 4; continue }
            if b[i] == 0x0D, b[i + 1] == 0x0A, b[i + 2] == 0x0D { return i }
            i += 1
        }
        scanned = max(scanned, b.count)
        return nil
    }

    private func parseHead(_ b: UnsafeRawBufferPointer) -> Result<HTTPRequestHead, HTTPParseError> {
        var lines: [UnsafeRawBufferPointer] = []
        var lineStart = 0
        var i = 0
        while i < b.count {
            if b[i] == 0x0A {
                guard i > lineStart, b[i - 1] == 0x0D else { return .failure(.malformed("bare LF")) }
                lines.append(UnsafeRawBufferPointer(rebasing: b[lineStart..<(i - 1)]))
                lineStart = i + 1
            } else if b[i] == 0x0D, i + 1 < b.count, b[i + 1] != 0x0A {
                return .failure(.malformed("bare CR"))
            } else if b[i] == 0 {
                return .failure(.malformed("NUL in head"))
            }
            i += 1
        }
        if lineStart < b.count {
            if b[b.count - 1] == 0x0D { return .failure(.malformed("bare CR")) }
            lines.append(UnsafeRawBufferPointer(rebasing: b[lineStart..<b.count]))
        }
        guard let requestLine = lines.first else { return .failure(.malformed("empty request")) }
        if lines.count - 1 > limits.maxHeaders { return .failure(.headTooLarge) }

        // request-line = method SP request-target SP HTTP-version
        let parts = requestLine.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(.malformed("bad request line")) }
        let methodBytes = parts[0], targetBytes = parts[1], versionBytes = parts[2]
        guard !methodBytes.isEmpty, methodBytes.allSatisfy(isTokenChar) else { return .failure(.malformed("bad method")) }
        guard !targetBytes.isEmpty, targetBytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return .failure(.malformed("bad target")) }
        let version = Array(versionBytes)
        guard version.count == 8, Array(version[0..<5]) == Array("HTTP/".utf8), version[6] == UInt8(ascii: "."),
              (0x30...0x39).contains(version[5]), (0x30...0x39).contains(version[7])
        else { return .failure(.malformed("bad version")) }
        guard version[5] == UInt8(ascii: "1"), version[7] == UInt8(ascii: "0") || version[7] == UInt8(ascii: "1") else {
            return .failure(.unsupportedVersion)
        }

        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lines.count - 1)
        var contentLength: Int? = nil
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > 0 else {
                return .failure(.malformed(line.first == 0x20 || line.first == 0x09 ? "obsolete line folding" : "header without colon"))
            }
            let nameBytes = UnsafeRawBufferPointer(rebasing: line[0..<colon])
            guard nameBytes.allSatisfy(isTokenChar) else { return .failure(.malformed("bad header name")) }
            var vs = colon + 1, ve = line.count
            while vs < ve, line[vs] == 0x20 || line[vs] == 0x09 { vs += 1 }
            while ve > vs, line[ve - 1] == 0x20 || line[ve - 1] == 0x09 { ve -= 1 }
            let valueBytes = UnsafeRawBufferPointer(rebasing: line[vs..<ve])
            guard valueBytes.allSatisfy({ $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }) else {
                return .failure(.malformed("bad header value"))
            }
            let name = String(decoding: nameBytes, as: UTF8.self)
            let value = String(decoding: valueBytes, as: UTF8.self)
            let lower = name.lowercased()
            if lower == "content-length" {
                guard !valueBytes.isEmpty, valueBytes.count <= 18, valueBytes.allSatisfy({ (0x30...0x39).contains($0) }),
                      let n = Int(value)
                else { return .failure(.malformed("bad content-length")) }
                if let existing = contentLength, existing != n { return .failure(.malformed("conflicting content-length")) }
                contentLength = n
            } else if lower == "transfer-encoding" {
                // Only Content-Length bodies are accepted: refusing chunked also refuses smuggling.
                return .failure(.unsupportedTransferEncoding)
            }
            headers.append((name, value))
        }
        let head = HTTPRequestHead(
            method: String(decoding: methodBytes, as: UTF8.self),
            target: String(decoding: targetBytes, as: UTF8.self),
            versionMinor: version[7] == UInt8(ascii: "1") ? 1 : 0,
            headers: headers,
            contentLength: contentLength ?? 0)
        if head.versionMinor == 1, head.header("Host") == nil { return .failure(.malformed("missing Host")) }
        return .success(head)
    }
}

/// RFC 9110 tchar.
@inline(__always)
func isTokenChar(_ c: UInt8) -> Bool {
    switch c {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
        return true
    case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
         UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
         UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
        return true
    default:
        return false
    }
}

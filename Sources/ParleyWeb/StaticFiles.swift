import ParleyHTTP

/// How an asset goes out: its type, revalidation by ETag (`Cache-Control: no-cache` — the paths
/// are stable, so a browser asks each time and gets a 304 while nothing changed), gzip when the
/// client takes it, and the headers a page needs to be locked down.
public enum StaticFiles {
    /// Pages may run only the server's own scripts and styles (nothing inline, nothing from a CDN)
    /// and talk only to the server itself (`'self'` covers its ws:// and wss://) and to `connect`.
    public static func contentSecurityPolicy(connect: [String] = []) -> String {
        let c = (["'self'"] + connect).joined(separator: " ")
        return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src \(c); "
            + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    }

    /// `crossOrigin`: the SDK and the widget are loaded by other sites' pages (module scripts
    /// need CORS), the console and the demo are not.
    public static func response(_ asset: WebAssets.Asset, _ req: HTTPRequest, csp: String?, crossOrigin: Bool) -> HTTPResponse {
        var headers: [(String, String)] = [
            ("Content-Type", asset.contentType),
            ("Cache-Control", "no-cache"),
            ("ETag", asset.etag),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if asset.gzip != nil { headers.append(("Vary", "Accept-Encoding")) }
        if let csp, asset.contentType.hasPrefix("text/html") {
            headers += [("Content-Security-Policy", csp), ("Referrer-Policy", "no-referrer"), ("X-Frame-Options", "DENY")]
        }
        if crossOrigin { headers += [("Access-Control-Allow-Origin", "*"), ("Cross-Origin-Resource-Policy", "cross-origin")] }
        if let tags = req.head.header("If-None-Match"), matches(tags, asset.etag) {
            return HTTPResponse(status: 304, headers: headers.filter { $0.0 != "Content-Type" })
        }
        if let gz = asset.gzip, acceptsGzip(req.head.header("Accept-Encoding")) {
            return HTTPResponse(status: 200, headers: headers + [("Content-Encoding", "gzip")], body: gz)
        }
        return HTTPResponse(status: 200, headers: headers, body: asset.body)
    }

    /// `If-None-Match`: `*` or a list of entity tags (weak ones compare by their opaque part, RFC 9110 §13.1.2).
    static func matches(_ header: String, _ etag: String) -> Bool {
        for part in header.split(separator: ",") {
            var t = part.trimmingSpaces()
            if t == "*" { return true }
            if t.hasPrefix("W/") { t = t.dropFirst(2) }
            if t == etag[...] { return true }
        }
        return false
    }

    /// Whether `Accept-Encoding` takes gzip (and not with `q=0`).
    static func acceptsGzip(_ header: String?) -> Bool {
        guard let header else { return false }
        for part in header.split(separator: ",") {
            let fields = part.split(separator: ";").map { $0.trimmingSpaces().lowercased() }
            guard let name = fields.first, name == "gzip" || name == "x-gzip" || name == "*" else { continue }
            let q = fields.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return q > 0
        }
        return false
    }
}

import Foundation

/// The browser side the server serves: the JavaScript SDK, the agent console, the customer widget
/// and the demo shop. Read from the target's resources once at start, each with its content type,
/// a strong ETag and (when it helps) a gzip copy, so a request costs no file I/O.
public struct WebAssets: Sendable {
    public struct Asset: Sendable {
        public let path: String
        public let contentType: String
        public let body: [UInt8]
        public let gzip: [UInt8]?
        public let etag: String
    }

    public let assets: [String: Asset]

    /// Loads every file under the resources folder, keyed by URL path (`/sdk/parley.js`).
    public static func load() throws -> WebAssets {
        guard let root = Bundle.module.url(forResource: "Resources", withExtension: nil) else { throw WebAssetsError.missing("resources bundle") }
        return try load(from: root)
    }

    public static func load(from root: URL) throws -> WebAssets {
        let fm = FileManager.default
        guard let walker = fm.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else { throw WebAssetsError.missing(root.path) }
        var assets: [String: Asset] = [:]
        let base = root.standardizedFileURL.path
        for case let url as URL in walker {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true,
                  let type = contentType(url.pathExtension) else { continue }
            let body = [UInt8](try Data(contentsOf: url))
            let rel = String(url.standardizedFileURL.path.dropFirst(base.count))
            let digest = String(fnv1a64(body), radix: 16) + "-" + String(body.count, radix: 16)
            var gz: [UInt8]? = nil
            if body.count >= 512, type.hasPrefix("text/") || type.contains("javascript") || type.contains("json") || type.contains("svg"),
               let z = Gzip.compress(body), z.count < body.count * 9 / 10 { gz = z }
            assets[rel] = Asset(path: rel, contentType: type, body: body, gzip: gz, etag: "\"\(digest)\"")
        }
        guard !assets.isEmpty else { throw WebAssetsError.missing("no files in \(root.path)") }
        return WebAssets(assets: assets)
    }

    /// FNV-1a, 64-bit: an ETag needs a cheap fingerprint that changes with the content, not a MAC.
    static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return h
    }

    public subscript(path: String) -> Asset? { assets[path] }

    static func contentType(_ ext: String) -> String? {
        switch ext {
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "ts": return "application/typescript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "html": return "text/html; charset=utf-8"
        case "json": return "application/json"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "ico": return "image/x-icon"
        default: return nil
        }
    }
}

public enum WebAssetsError: Error, CustomStringConvertible {
    case missing(String)
    public var description: String {
        switch self { case .missing(let what): return "web assets not found: \(what)" }
    }
}

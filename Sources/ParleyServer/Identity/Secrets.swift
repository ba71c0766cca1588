import Foundation
import ParleyLog
#if canImport(Glibc)
import Glibc
#endif

/// The server's JWT signing secret and REST API key.
public struct Secrets: Sendable, Equatable {
    public var jwtSecret: String
    public var apiKey: String
}

public enum SecretsError: Error, CustomStringConvertible {
    case unreadable(String)
    case unwritable(String, Int32)
    public var description: String {
        switch self {
        case .unreadable(let p): return "cannot read secrets from \(p)"
        case .unwritable(let p, let e): return "cannot write \(p): \(String(cString: strerror(e)))"
        }
    }
}

/// Secrets come from flags/environment when given; otherwise from `<data-dir>/secrets.json`, which is
/// generated on first start (mode 0600) so `parley serve` works with no configuration.
public enum SecretsStore {
    public static func path(dataDir: String) -> String { dataDir + "/secrets.json" }

    /// Returns the secrets in force and whether any was generated now (print those once).
    public static func resolve(dataDir: String, jwtSecret: String?, apiKey: String?) throws -> (Secrets, generated: Bool) {
        let file = path(dataDir: dataDir)
        var stored: Secrets? = nil
        if FileManager.default.fileExists(atPath: file) {
            guard let data = FileManager.default.contents(atPath: file),
                  let o = try? JSONSerialization.jsonObject(with: data) as? [String: String],
                  let j = o["jwtSecret"], let a = o["apiKey"], !j.isEmpty, !a.isEmpty
            else { throw SecretsError.unreadable(file) }
            stored = Secrets(jwtSecret: j, apiKey: a)
        }
        if let j = jwtSecret, let a = apiKey { return (Secrets(jwtSecret: j, apiKey: a), false) }
        if let s = stored { return (Secrets(jwtSecret: jwtSecret ?? s.jwtSecret, apiKey: apiKey ?? s.apiKey), false) }
        let generated = Secrets(jwtSecret: jwtSecret ?? randomToken(), apiKey: apiKey ?? randomToken())
        try write(generated, to: file, dataDir: dataDir)
        return (generated, true)
    }

    /// 32 random bytes (getrandom via the system generator), base64url without padding, never
    /// starting with "-": a secret is pasted after `--api-key`/`--jwt-secret`, where a leading dash
    /// reads as an option (1 token in 64 did; the ~0.03 bits lost do not matter).
    static func randomToken() -> String {
        var g = SystemRandomNumberGenerator()
        while true {
            let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &g) }
            let t = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            if !t.hasPrefix("-") { return t }
        }
    }

    private static func write(_ s: Secrets, to file: String, dataDir: String) throws {
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let json = try JSONSerialization.data(withJSONObject: ["jwtSecret": s.jwtSecret, "apiKey": s.apiKey], options: [.sortedKeys])
        // Created 0600 from the start: the secret never exists readable by others, not even briefly.
        if let e = DurableFile.write(Array(json), to: file, directory: dataDir, mode: 0o600) { throw SecretsError.unwritable(file, e) }
    }
}

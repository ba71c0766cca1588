import Foundation

extension Server {
    /// `--demo`: what a newcomer opens in the browser. Console links carry a sign-in token for a
    /// demo agent in the URL fragment (never sent to a server; the console takes it out of the
    /// address bar at once). Printed on the terminal that started the server, never served.
    public func demoLinks() throws -> [String] {
        let host = (config.host == "0.0.0.0" || config.host == "::") ? "127.0.0.1" : (config.host.contains(":") ? "[\(config.host)]" : config.host)
        let scheme = (tls != nil && tlsPort == nil) ? "https" : "http"
        let base = "\(scheme)://\(host):\(port)"
        var lines = ["parley: demo mode (development only: anyone who can reach \(base) gets customer tokens)",
                     "  customer demo shop:  \(base)/demo"]
        for (sub, name) in [("ann", "Ann"), ("ben", "Ben")] {
            let claims = try TokenService.claims(sub: sub, role: "agent", name: name, ttlSeconds: Server.demoAgentTTLSeconds, capacity: nil)
            lines.append("  agent console (\(name)): \(base)/console#token=\(try tokens.signAndWait(claims))")
        }
        lines.append("  (agent links last \(Server.demoAgentTTLSeconds / 3600) h; another: \(CommandLine.arguments.first ?? "parley") token --role agent --sub <id> --ttl 43200)")
        return lines
    }

    static let demoAgentTTLSeconds = 12 * 3600
}

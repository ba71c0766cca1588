import ParleyHTTP
import ParleyWeb

/// The browser side on the server's one port: the SDK (`/sdk/parley.js`, `.d.ts`), the customer
/// widget (`/widget/…`), the agent console (`/console`) and, with `--demo`, the demo shop (`/demo`).
enum WebRoutes {
    static func install(into router: inout Router, assets: WebAssets, config: ServerConfig, tokens: TokenService, orders: OrderStore) {
        var connect: [String] = []
        if let url = config.consoleTokenURL, let origin = origin(of: url) { connect.append(origin) }
        let csp = StaticFiles.contentSecurityPolicy(connect: connect)
        func serve(_ prefix: String, crossOrigin: Bool, index: String? = nil) {
            if let index {
                router.add("GET", prefix) { req, _, _ in
                    guard let a = assets[prefix + "/" + index] else { return .respond(notFound) }
                    return .respond(StaticFiles.response(a, req, csp: csp, crossOrigin: crossOrigin))
                }
            }
            router.add("GET", prefix + "/{file}") { req, p, _ in
                guard let a = assets[prefix + "/" + (p["file"] ?? "")] else { return .respond(notFound) }
                return .respond(StaticFiles.response(a, req, csp: csp, crossOrigin: crossOrigin))
            }
        }
        // What the console needs to know of the deployment: where agents get a token.
        let consoleConfig = HTTPResponse.json(200, ConsoleConfig(tokenURL: config.consoleTokenURL).json, headers: [("Cache-Control", "no-cache")])
        router.add("GET", "/console/config.json") { _, _, _ in .respond(consoleConfig) }
        serve("/console", crossOrigin: false, index: "index.html")
        serve("/sdk", crossOrigin: true)
        serve("/widget", crossOrigin: true)
        if config.demo {
            router.add("POST", "/demo/token") { req, _, _ in DemoRoutes.token(req, tokens: tokens, orders: orders) }
            serve("/demo", crossOrigin: false, index: "index.html")
        }
    }

    static let notFound = HTTPResponse.error(404, code: "not_found", message: "no such file")

    /// `scheme://host[:port]` of an absolute http(s) URL, for the CSP's connect-src.
    static func origin(of url: String) -> String? {
        guard let r = url.range(of: "://"), url.hasPrefix("http") else { return nil }
        let rest = url[r.upperBound...]
        let host = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        return host.isEmpty ? nil : String(url[..<r.upperBound]) + host
    }
}

/// `GET /console/config.json`: `{"tokenUrl": string|null}`.
struct ConsoleConfig {
    var tokenURL: String?
    var json: String {
        guard let u = tokenURL else { return #"{"tokenUrl":null}"# }
        return #"{"tokenUrl":"\#(jsonEscape(u))"}"#
    }
}

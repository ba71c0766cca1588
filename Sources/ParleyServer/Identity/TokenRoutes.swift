import Foundation
import ParleyProtocol
import ParleyHTTP

/// `POST /v1/tokens` and the API-key check shared by the REST endpoints.
enum TokenRoutes {
    /// `Authorization: Bearer <api key>`, compared in constant time.
    static func authorized(_ req: HTTPRequest, apiKey: String) -> Bool {
        guard let h = req.head.header("Authorization"), h.hasPrefix("Bearer ") else { return false }
        let given = Array(h.dropFirst(7).utf8), want = Array(apiKey.utf8)
        var diff = UInt8(given.count == want.count ? 0 : 1)
        for i in 0..<max(given.count, want.count) {
            diff |= (i < given.count ? given[i] : 0) ^ (i < want.count ? want[i] : 0)
        }
        return diff == 0
    }

    static let unauthorized = HTTPResponse.error(401, code: "unauthorized", message: "missing or wrong API key",
                                                 headers: [("WWW-Authenticate", "Bearer")])

    /// Body `{"sub","role","name"?,"ttl"?,"capacity"?}` → `200 {"token"}`.
    static func mint(_ req: HTTPRequest, apiKey: String, tokens: TokenService) -> HTTPServiceResult {
        guard authorized(req, apiKey: apiKey) else { return .respond(unauthorized) }
        guard let o = (try? JSONSerialization.jsonObject(with: Data(req.body))) as? [String: Any] else {
            return .respond(.error(400, code: "invalid_request", message: "body must be a JSON object"))
        }
        guard let sub = o["sub"] as? String else { return .respond(.error(400, code: "invalid_request", message: "sub (string) is required")) }
        guard let role = o["role"] as? String else { return .respond(.error(400, code: "invalid_request", message: "role is required")) }
        if o["name"] != nil, !(o["name"] is String) { return .respond(.error(400, code: "invalid_request", message: "name must be a string")) }
        let ttl: Int
        if let t = o["ttl"] {
            guard let n = JSONValues.int(t) else { return .respond(.error(400, code: "invalid_request", message: "ttl must be an integer (seconds)")) }
            ttl = n
        } else {
            ttl = 3600
        }
        if o["capacity"] != nil, JSONValues.int(o["capacity"]) == nil { return .respond(.error(400, code: "invalid_request", message: "capacity must be an integer")) }
        let claims: ClientClaims
        do {
            claims = try TokenService.claims(sub: sub, role: role, name: o["name"] as? String, ttlSeconds: ttl, capacity: JSONValues.int(o["capacity"]))
        } catch {
            return .respond(.error(400, code: "invalid_request", message: "\(error)"))
        }
        return .deferred { reply in
            tokens.sign(claims) { result in
                switch result {
                case .success(let token): reply(.json(200, #"{"token":"\#(token)"}"#))
                case .failure: reply(.error(500, code: "internal", message: "could not sign the token"))
                }
            }
        }
    }
}

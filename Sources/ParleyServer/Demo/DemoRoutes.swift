import Foundation
import ParleyHTTP

/// Development only (`parley serve --demo`): the demo shop's backend. `POST /demo/token` plays the
/// part of an app's own backend: it knows its user by a session cookie (`parley_demo`, made on the
/// first call), mints a customer token for them, and gives a new user one order, so their
/// conversation opens on it. Agents sign in with the links the server prints at start.
enum DemoRoutes {
    /// Demo user ids: `demo-` and 4–32 lowercase letters or digits; any other cookie gets a new one.
    static func validSub(_ s: String) -> Bool {
        guard s.hasPrefix("demo-") else { return false }
        let rest = s.utf8.dropFirst(5)
        return (4...32).contains(rest.count) && rest.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) }
    }

    static let customerTTLSeconds = 3600

    static let cookie = "parley_demo"

    /// → `200 {"token","sub"}`, with the session cookie when it was new.
    static func token(_ req: HTTPRequest, tokens: TokenService, orders: OrderStore) -> HTTPServiceResult {
        let known = cookieValue(req.head.header("Cookie"), name: cookie).flatMap { validSub($0) ? $0 : nil }
        let user = known ?? "demo-" + String(UInt64.random(in: 0...UInt64.max), radix: 36)
        let setCookie: [(String, String)] = known != nil ? [] : [("Set-Cookie", "\(cookie)=\(user); Path=/demo; HttpOnly; SameSite=Strict; Max-Age=2592000")]
        let claims: ClientClaims
        do {
            claims = try TokenService.claims(sub: user, role: "customer", name: "Demo customer", ttlSeconds: customerTTLSeconds, capacity: nil)
        } catch {
            return .respond(.error(500, code: "internal", message: "\(error)"))
        }
        return .deferred { reply in
            let mint: @Sendable () -> Void = {
                tokens.sign(claims) { result in
                    switch result {
                    case .success(let t): reply(.json(200, #"{"token":"\#(t)","sub":"\#(user)"}"#, headers: setCookie + [("Cache-Control", "no-store")]))
                    case .failure: reply(.error(500, code: "internal", message: "could not sign the token"))
                    }
                }
            }
            guard orders.last(userId: user) == nil, let rec = demoOrder(user: user) else { mint(); return }
            orders.save(rec) { result in
                if case .failure(let e) = result { reply(.error(503, code: "unavailable", message: "the demo order was not saved: \(e)")); return }
                mint()
            }
        }
    }

    /// One cookie's value from a `Cookie` header (`a=1; b=2`).
    static func cookieValue(_ header: String?, name: String) -> String? {
        guard let header else { return nil }
        for part in header.split(separator: ";") {
            let kv = part.trimmingSpaces()
            if kv.hasPrefix(name + "=") { return String(kv.dropFirst(name.count + 1)) }
        }
        return nil
    }

    /// A plausible last order, placed an hour ago.
    static func demoOrder(user: String) -> OrderRecord? {
        let placed = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-3600))
        let body = #"{"placedAt":"\#(placed)","status":"shipped","total":"89.90","currency":"EUR","#
            + #""items":[{"name":"Espresso machine","quantity":1,"price":"79.90"},{"name":"Descaler","quantity":2,"price":"5.00"}],"#
            + #""metadata":{"carrier":"DHL","tracking":"JD014600006281"}}"#
        guard case .success(let v) = OrderValidation.validate(body: Array(body.utf8), orderId: "A-1042") else { return nil }
        return OrderRecord(userId: user, orderId: "A-1042", placedAtMs: v.placedAtMs, json: v.json)
    }
}

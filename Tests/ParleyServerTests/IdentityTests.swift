import Foundation
import XCTest
@testable import ParleyServer

private let secret32 = "0123456789abcdef0123456789abcdef"

final class IdentityTests: XCTestCase {
    func testShortSecretsAreRefusedNotCrashed() {
        XCTAssertThrowsError(try TokenService(secret: "short")) { e in
            XCTAssertTrue("\(e)".contains("at least 32 bytes"))
        }
    }

    func testSignVerifyRoundTripAndAgentCapacityDefault() async throws {
        let t = try TokenService(secret: secret32)
        let c = try TokenService.claims(sub: "agent-7", role: "agent", name: "Bo", ttlSeconds: 60, capacity: nil)
        let back = try await t.verify(try await t.sign(c))
        XCTAssertEqual(back.sub.value, "agent-7")
        XCTAssertEqual(back.role, .agent)
        XCTAssertEqual(back.name, "Bo")
        XCTAssertEqual(back.capacity, TokenService.defaultCapacity)
        XCTAssertEqual(try TokenService.claims(sub: "c", role: "customer", name: nil, ttlSeconds: 60, capacity: nil).capacity, nil)
    }

    func testWrongSecretAndTamperingAreRefused() async throws {
        let c = try TokenService.claims(sub: "u1", role: "customer", name: nil, ttlSeconds: 60, capacity: nil)
        let token = try await try TokenService(secret: secret32).sign(c)
        do { _ = try await try TokenService(secret: secret32 + "x").verify(token); XCTFail("verified with another secret") } catch {}
        var parts = token.split(separator: ".").map(String.init)
        parts[1] = Data(#"{"sub":"admin","role":"agent","exp":9999999999}"#.utf8).base64EncodedString()
            .replacingOccurrences(of: "=", with: "")
        do { _ = try await try TokenService(secret: secret32).verify(parts.joined(separator: ".")); XCTFail("tampered payload verified") } catch {}
        do { _ = try await try TokenService(secret: secret32).verify("not a token"); XCTFail("garbage verified") } catch {}
    }

    func testExpiryHasFiveSecondsOfLeewayAndNoMore() async throws {
        let t = try TokenService(secret: secret32)
        func token(expiredSecondsAgo s: Double) async throws -> String {
            var c = try TokenService.claims(sub: "u", role: "customer", name: nil, ttlSeconds: 60, capacity: nil)
            c.exp.value = Date().addingTimeInterval(-s)
            return try await t.sign(c)
        }
        _ = try await t.verify(try await token(expiredSecondsAgo: 2))
        do { _ = try await t.verify(try await token(expiredSecondsAgo: 8)); XCTFail("expired token accepted") } catch {}
    }

    func testClaimValidation() {
        XCTAssertThrowsError(try TokenService.claims(sub: "", role: "customer", name: nil, ttlSeconds: 60, capacity: nil))
        XCTAssertThrowsError(try TokenService.claims(sub: String(repeating: "x", count: 129), role: "customer", name: nil, ttlSeconds: 60, capacity: nil))
        XCTAssertThrowsError(try TokenService.claims(sub: "u", role: "admin", name: nil, ttlSeconds: 60, capacity: nil))
        XCTAssertThrowsError(try TokenService.claims(sub: "u", role: "customer", name: nil, ttlSeconds: 0, capacity: nil))
        XCTAssertThrowsError(try TokenService.claims(sub: "u", role: "customer", name: nil, ttlSeconds: 60, capacity: 3))
        XCTAssertThrowsError(try TokenService.claims(sub: "u", role: "agent", name: nil, ttlSeconds: 60, capacity: 0))
    }

    /// Generated secrets go after `--api-key` / `--jwt-secret` on command lines: none may start
    /// with "-" (it would read as an option; 1 in 64 did). 2,000 draws see a dash first ~31 times
    /// if the rule is broken.
    func testGeneratedSecretsNeverStartWithADash() {
        for _ in 0..<2000 {
            let t = SecretsStore.randomToken()
            XCTAssertFalse(t.hasPrefix("-"), t)
            XCTAssertEqual(t.count, 43)
        }
    }

    func testSecretsAreGeneratedOnceWithMode0600AndReused() throws {
        let dir = NSTemporaryDirectory() + "parley-secrets-" + UUID().uuidString
        let (first, generated) = try SecretsStore.resolve(dataDir: dir, jwtSecret: nil, apiKey: nil)
        XCTAssertTrue(generated)
        XCTAssertGreaterThanOrEqual(first.jwtSecret.count, 43)
        XCTAssertNotEqual(first.jwtSecret, first.apiKey)
        let attrs = try FileManager.default.attributesOfItem(atPath: SecretsStore.path(dataDir: dir))
        XCTAssertEqual((attrs[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        let (again, generatedAgain) = try SecretsStore.resolve(dataDir: dir, jwtSecret: nil, apiKey: nil)
        XCTAssertFalse(generatedAgain)
        XCTAssertEqual(again, first)
        let (overridden, _) = try SecretsStore.resolve(dataDir: dir, jwtSecret: "given", apiKey: nil)
        XCTAssertEqual(overridden, Secrets(jwtSecret: "given", apiKey: first.apiKey))
    }
}

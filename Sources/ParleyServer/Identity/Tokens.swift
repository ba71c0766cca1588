import Dispatch
import Foundation
import JWTKit
import ParleyJSON

public enum Role: String, Codable, Sendable {
    case customer, agent
}

/// Client token claims (protocol: `sub`, `role`, `name`, `exp`, agents' `capacity`).
public struct ClientClaims: JWTPayload, Equatable {
    public var sub: SubjectClaim
    public var role: Role
    public var name: String?
    public var exp: ExpirationClaim
    public var capacity: Int?

    /// Clock-skew leeway for `exp`.
    public static let leewaySeconds: TimeInterval = 5

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired(currentDate: Date().addingTimeInterval(-ClientClaims.leewaySeconds))
        guard !sub.value.isEmpty, sub.value.utf8.count <= TokenService.maxSubjectBytes else {
            throw JWTError.claimVerificationFailure(failedClaim: sub, reason: "sub must be 1...\(TokenService.maxSubjectBytes) bytes")
        }
    }
}

public enum TokenError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let why): return why }
    }
}

/// Mints and verifies HS256 client tokens with the server's secret (vapor/jwt-kit).
public final class TokenService: Sendable {
    public static let maxSubjectBytes = 128
    public static let maxNameBytes = 128
    public static let maxTTLSeconds = 30 * 24 * 3600
    public static let defaultCapacity = 5
    private let keys: JWTKeyCollection

    /// HS256 keys shorter than the hash output weaken the MAC (and jwt-kit refuses them).
    public static let minSecretBytes = 32

    /// Call off any connection loop: it waits for the key collection (an actor) to take the key.
    public init(secret: String) throws {
        guard secret.utf8.count >= TokenService.minSecretBytes else {
            throw TokenError.invalid("the JWT secret must be at least \(TokenService.minSecretBytes) bytes (it is \(secret.utf8.count))")
        }
        let keys = JWTKeyCollection()
        let ready = DispatchSemaphore(value: 0)
        Task {
            await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
            ready.signal()
        }
        ready.wait()
        self.keys = keys
    }

    /// Validates the request fields the way `POST /v1/tokens` and `parley token` need.
    public static func claims(sub: String, role: String, name: String?, ttlSeconds: Int, capacity: Int?) throws -> ClientClaims {
        guard !sub.isEmpty, sub.utf8.count <= maxSubjectBytes else { throw TokenError.invalid("sub must be 1 to \(maxSubjectBytes) bytes") }
        guard let r = Role(rawValue: role) else { throw TokenError.invalid("role must be customer or agent") }
        if let n = name, n.utf8.count > maxNameBytes { throw TokenError.invalid("name must be at most \(maxNameBytes) bytes") }
        guard (1...maxTTLSeconds).contains(ttlSeconds) else { throw TokenError.invalid("ttl must be 1 to \(maxTTLSeconds) seconds") }
        if let c = capacity {
            guard r == .agent else { throw TokenError.invalid("capacity is for agents") }
            guard (1...100).contains(c) else { throw TokenError.invalid("capacity must be 1 to 100") }
        }
        return ClientClaims(sub: SubjectClaim(value: sub), role: r, name: name, exp: ExpirationClaim(value: Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + TimeInterval(ttlSeconds)).rounded(.down))),
                            capacity: r == .agent ? (capacity ?? defaultCapacity) : nil)
    }

    public func sign(_ claims: ClientClaims) async throws -> String {
        try await keys.sign(claims)
    }

    /// Verifies algorithm, signature and expiry (with 5 s leeway). The header must say HS256
    /// itself: jwt-kit checks the signature with the one key it has whatever `alg` claims, so
    /// `none`, `RS256` or `HS384` headers are refused here, before it looks.
    public func verify(_ token: String) async throws -> ClientClaims {
        guard TokenService.headerAlgorithm(token) == "HS256" else { throw TokenError.invalid("the token's algorithm must be HS256") }
        return try await keys.verify(token, as: ClientClaims.self)
    }

    /// `alg` of a compact JWT's header (base64url JSON), or nil if it has none or does not parse.
    static func headerAlgorithm(_ token: String) -> String? {
        guard let dot = token.firstIndex(of: "."), dot != token.startIndex else { return nil }
        var b64 = token[..<dot].replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        guard b64.utf8.count <= 1024 else { return nil }
        b64 += String(repeating: "=", count: (4 - b64.utf8.count % 4) % 4)
        guard let data = Data(base64Encoded: b64), case .success(let header) = JSONParser.parse([UInt8](data)),
              header.members != nil else { return nil }
        return header["alg"]?.string
    }

    /// Callback forms for Dispatch code: `completion` runs on an arbitrary thread.
    public func sign(_ claims: ClientClaims, completion: @escaping @Sendable (Result<String, Error>) -> Void) {
        Task { do { completion(.success(try await sign(claims))) } catch { completion(.failure(error)) } }
    }

    public func verify(_ token: String, completion: @escaping @Sendable (Result<ClientClaims, Error>) -> Void) {
        Task { do { completion(.success(try await verify(token))) } catch { completion(.failure(error)) } }
    }

    /// Blocking form for the CLI.
    public func signAndWait(_ claims: ClientClaims) throws -> String {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<String, Error> = .failure(TokenError.invalid("not signed"))
        sign(claims) { result = $0; done.signal() }
        done.wait()
        return try result.get()
    }
}

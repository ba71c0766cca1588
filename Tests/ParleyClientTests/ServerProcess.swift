import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import JWTKit
import ParleyServer

/// The real `parley` binary for the SDK's tests: started on a free port (then restarted on the
/// same one), killed with SIGKILL, its data directory kept across restarts.
final class ServerProcess: @unchecked Sendable {
    static var binary: URL {
        if let p = ProcessInfo.processInfo.environment["PARLEY_BIN"] { return URL(fileURLWithPath: p) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/parley")
    }

    let dataDir: URL
    let secret = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    let apiKey = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    private(set) var port = 0
    private var process: Process?
    private let tokens: TokenService

    init() throws {
        dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("parley-swift-sdk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        tokens = try TokenService(secret: secret)
    }

    var url: String { "ws://127.0.0.1:\(port)/v1/ws" }

    /// Starts the server and returns once it listens (its log names the port).
    func start() throws {
        let p = Process()
        p.executableURL = Self.binary
        p.arguments = ["serve", "--port", String(port), "--data-dir", dataDir.path, "--jwt-secret", secret, "--api-key", apiKey]
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        process = p
        // Read the log until the port line, then keep draining it on a thread so the server never
        // blocks on a full pipe.
        let handle = err.fileHandleForReading
        var log = ""
        while true {
            let chunk = handle.availableData
            guard !chunk.isEmpty else { throw ServerError.exited(log) }
            log += String(decoding: chunk, as: UTF8.self)
            if let r = log.range(of: #"http\.port=(\d+)"#, options: .regularExpression) {
                port = Int(log[r].dropFirst("http.port=".count))!
                break
            }
        }
        Thread.detachNewThread { while !handle.availableData.isEmpty {} }
    }

    /// SIGKILL: nothing is flushed or closed cleanly (the log's durability is what is tested).
    func kill() {
        guard let p = process, p.isRunning else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    /// Killed, its data directory emptied, started again on the same port: another history (a
    /// new epoch), as after a restore from an older backup.
    func restartWithNewHistory() throws {
        kill()
        try FileManager.default.removeItem(at: dataDir)
        try FileManager.default.createDirectory(at: dataDir, withIntermediateDirectories: true)
        try start()
    }

    func stop() {
        kill()
        try? FileManager.default.removeItem(at: dataDir)
    }

    func token(_ sub: String, role: String, ttlSeconds: Int = 3600, expired: Bool = false) async throws -> String {
        var claims = try TokenService.claims(sub: sub, role: role, name: sub.uppercased(), ttlSeconds: ttlSeconds, capacity: nil)
        if expired { claims.exp = ExpirationClaim(value: Date().addingTimeInterval(-3600)) }
        return try await tokens.sign(claims)
    }

    /// `PUT /v1/users/{user}/orders/{id}`: the order a conversation opens on.
    func putOrder(user: String, id: String) async throws {
        var req = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v1/users/\(user)/orders/\(id)")!)
        req.httpMethod = "PUT"
        req.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization")
        req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        req.httpBody = Data(#"{"placedAt":"2026-11-20T09:00:00Z","status":"shipped","total":"24.90","currency":"EUR","items":[{"name":"Kettle","quantity":1}]}"#.utf8)
        let (_, response) = try await URLSession.shared.data(for: req)
        guard let http = response as? HTTPURLResponse, (200...201).contains(http.statusCode) else { throw ServerError.http("\(response)") }
    }

    enum ServerError: Error { case exited(String), http(String) }
}

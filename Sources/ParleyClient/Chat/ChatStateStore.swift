import Foundation

/// A message handed to `send` and not yet acknowledged: resent with the same `clientMsgId` after
/// reconnects and app restarts until the server acknowledges it (it stores each id once).
public struct OutboxEntry: Codable, Equatable, Sendable {
    public var conversation: String
    public var clientMsgId: String
    public var text: String
    /// When `send` was called (ms since 1970): the outbox is resent oldest first.
    public var at: Int64
}

/// What a client keeps between runs, per user: the last `seq` seen in each conversation (to
/// resume from), the history `epoch` those positions belong to, and the outbox.
public struct ChatState: Codable, Equatable, Sendable {
    public var epoch: String?
    public var positions: [String: UInt64]
    public var outbox: [OutboxEntry]
    public init(epoch: String? = nil, positions: [String: UInt64] = [:], outbox: [OutboxEntry] = []) {
        self.epoch = epoch; self.positions = positions; self.outbox = outbox
    }
}

/// Where `ChatClient` keeps `ChatState` (pluggable: a keychain, a database). `save` returns once
/// the state is durable: the outbox is saved before a message goes on the wire.
public protocol ChatStateStore: Sendable {
    func load(user: String) throws -> ChatState?
    func save(_ state: ChatState, user: String) throws
}

/// The default store: one JSON file per user in a directory, replaced atomically (written to a
/// temporary file, flushed, renamed), so a crash leaves the old state or the new, never half.
public struct FileStateStore: ChatStateStore {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// `Application Support/Parley` on Apple platforms, `$XDG_DATA_HOME/parley` (or
    /// `~/.local/share/parley`) elsewhere.
    public static func standard() -> FileStateStore {
        #if canImport(Darwin)
        let base = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask).first!
        #else
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_DATA_HOME"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: NSHomeDirectory()).appendingPathComponent(".local/share")
        #endif
        return FileStateStore(directory: base.appendingPathComponent("parley"))
    }

    private func file(_ user: String) -> URL {
        // The user id is the token's `sub`: any string. Hex keeps it a safe, unique file name.
        let name = user.utf8.map { String($0, radix: 16).leftPadded(2) }.joined()
        return directory.appendingPathComponent("chat-\(name.isEmpty ? "anonymous" : name).json")
    }

    public func load(user: String) throws -> ChatState? {
        let url = file(user)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        return try JSONDecoder().decode(ChatState.self, from: Data(contentsOf: url))
    }

    public func save(_ state: ChatState, user: String) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let data = try JSONEncoder().encode(state)
        let url = file(user)
        let tmp = url.appendingPathExtension("tmp")
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else { throw CocoaError(.fileWriteUnknown) }
        let h = try FileHandle(forWritingTo: tmp)
        do {
            try h.write(contentsOf: data)
            try h.synchronize()
            try h.close()
        } catch {
            try? h.close()
            throw error
        }
        // rename(2) replaces the old file atomically.
        guard rename(tmp.path, url.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }
}

/// Keeps state in memory only (tests, or an app that does not want to persist).
public final class MemoryStateStore: ChatStateStore, @unchecked Sendable {
    private let lock = NSLock()
    private var states: [String: ChatState] = [:]
    public init() {}
    public func load(user: String) -> ChatState? { lock.lock(); defer { lock.unlock() }; return states[user] }
    public func save(_ state: ChatState, user: String) { lock.lock(); defer { lock.unlock() }; states[user] = state }
}

extension String {
    fileprivate func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

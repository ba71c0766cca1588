/// The `type` of every client request (Protocol/SPEC.md §2): the one place these names are spelled.
public enum RequestType: String, CaseIterable, Sendable {
    case hello
    case open = "conversation.open"
    case send = "message.send"
    case typing
    case read
    case history
    case agentStatus = "agent.status"
    case claim = "conversation.claim"
    case transfer = "conversation.transfer"
    case resolve = "conversation.resolve"
    case csat
}

/// The `type` of every server frame (Protocol/SPEC.md §3): the sequenced events first, then the
/// rest. The one place these names are spelled.
public enum EventType: String, CaseIterable, Sendable {
    case created = "conversation.created"
    case message
    case orderAttached = "order.attached"
    case assigned = "conversation.assigned"
    case transferred = "conversation.transferred"
    case resolved = "conversation.resolved"
    case csat
    case welcome
    case opened = "conversation.opened"
    case ack
    case error
    case history
    case typing
    case read
    case presence
    case queue
    case resumeFailed = "resume_failed"
}

import ParleyJSON

/// Wire names as bytes, to find the one a token spells without allocating.
public struct WireNameTable<Name: RawRepresentable & CaseIterable & Sendable>: Sendable where Name.RawValue == String {
    let entries: [(name: Name, utf8: [UInt8])]
    public init() { entries = Name.allCases.map { ($0, Array($0.rawValue.utf8)) } }

    public func lookup(_ s: JSONString) -> Name? {
        for e in entries where e.utf8.withUnsafeBufferPointer({ s.equals(utf8: $0) }) { return e.name }
        return nil
    }
}

extension RequestType {
    static let table = WireNameTable<RequestType>()
    /// The request type a frame's `type` names, without allocating.
    public init?(_ s: JSONString) {
        guard let t = Self.table.lookup(s) else { return nil }
        self = t
    }
}

extension EventType {
    static let table = WireNameTable<EventType>()
    public init?(_ s: JSONString) {
        guard let t = Self.table.lookup(s) else { return nil }
        self = t
    }
}

extension CaseIterable where Self: RawRepresentable, RawValue == String {
    /// The case a token spells, for the small enums of member values (roles, statuses, error
    /// codes); the `type` of every frame goes through a `WireNameTable` instead.
    public init?(wireName s: JSONString) {
        guard let v = Self.allCases.first(where: { s.equals(string: $0.rawValue) }) else { return nil }
        self = v
    }
}

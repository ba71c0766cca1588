/// The append-only store the server's chat and orders live on: the embedded `Log` on one machine,
/// a replicated stream in cluster mode. Whatever the implementation, offsets are dense and
/// ordered, every sequenced record is its conversation's next (an append that breaks this is
/// refused whole), an idempotency key finds the record that first carried it, and a completion
/// means durable (or refused), called in append order.
public protocol EventStore: AnyObject, Sendable {
    /// Appends `records` all or nothing; `completion` gets their offsets once they are durable.
    func append(_ records: [Record], completion: @escaping Log.Completion)
    /// Records from `offset` on, in order, at most `limit`.
    func read(from offset: UInt64, limit: Int) -> [Record]
    func read(offset: UInt64) -> Record?
    /// A conversation's records with sequence > `afterSequence`, in order, at most `limit`.
    func read(conversation: ConversationID, afterSequence: UInt64, limit: Int) -> [Record]
    /// The record of `conversation` that carried idempotency key `key`, if any.
    func lookup(conversation: ConversationID, key: [UInt8]) -> (sequence: UInt64, offset: UInt64, timestampMs: Int64)?
    /// The oldest offset still held (retention drops older ones).
    var firstOffset: UInt64 { get }
    /// Everything up to here is durable.
    var durableOffset: UInt64 { get }
    /// Finishes what is queued (written and made durable), then stops taking appends.
    func close()
}

extension Log: EventStore {}

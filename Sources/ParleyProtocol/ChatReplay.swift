import ParleyChat
import ParleyLog

/// Turns stored records back into conversation state when the server starts: the one reading of
/// the log's chat records, used by the server's recovery and by the tests that restart the core.
public enum ChatReplay {
    public enum Outcome: Equatable { case event, read, ignored }

    /// Replays `r` (in log order) into the book of the partition that owns its conversation.
    @discardableResult
    public static func apply<S>(_ r: Record, to book: inout ConversationBook<S>) -> Outcome {
        guard !r.conversation.isNone else { return .ignored }
        switch r.type {
        case .readMarker:
            guard let (user, seq) = ReadMarkerCodec.decode(r.payload) else { return .ignored }
            book.restoreRead(r.conversation, user: user, seq: seq)
            return .read
        case .message:
            // Only its place matters to the state: no need to decode the text.
            book.restoreMessage(r.conversation, seq: r.sequence)
            return .event
        default:
            guard r.sequence > 0, let e = ServerFrames.decodeEvent(r.payload) else { return .ignored }
            book.restore(e)
            return .event
        }
    }
}

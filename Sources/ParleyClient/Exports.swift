// An app imports ParleyClient alone: the protocol's model types (Person, ConversationView,
// SequencedEvent, ConversationID, Welcome…) come with it.
@_exported import ParleyChat
@_exported import ParleyLog
@_exported import ParleyProtocol

import Dispatch
import ParleyChat
import ParleyHTTP
import ParleyLog
import ParleyProtocol

/// `GET /v1/conversations/{id}` (API key): the conversation and its events in `seq` order.
enum ConversationRoutes {
    static func get(id: String, chat: ChatService) -> HTTPServiceResult {
        guard let c = ConversationID(id) else { return .respond(.error(404, code: "not_found", message: "no such conversation")) }
        return .deferred { reply in
            chat.view(c) { view in
                guard let view else { return reply(.error(404, code: "not_found", message: "no such conversation")) }
                // The events are a pread away: off the partition's queue.
                DispatchQueue.global().async {
                    let events = LogChatStore(log: chat.log).payloads(c, after: 0, through: view.lastSeq)
                    var w = JSONWriter(capacity: 512 + events.reduce(0) { $0 + $1.count + 1 })
                    w.open()
                    w.key("conversation")
                    ServerFrames.view(&w, view)
                    w.openArray("events")
                    for e in events { w.rawValue(e) }
                    w.closeArray()
                    w.close()
                    reply(HTTPResponse(status: 200, headers: [("Content-Type", "application/json")], body: w.bytes))
                }
            }
        }
    }
}

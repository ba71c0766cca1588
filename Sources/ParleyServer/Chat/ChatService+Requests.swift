import ParleyChat
import ParleyProtocol

extension ChatService {
    /// Runs one request of a session (here, or forwarded from another node to this writer): the
    /// one place a frame becomes chat inputs. `error` sends a frame back to the requester.
    func run(_ f: ClientFrame, from me: SessionRef, orders: OrderStore, error: @escaping @Sendable ([UInt8]) -> Void) {
        let user = me.user
        switch f.request {
        case .hello:
            error(ServerFrames.error(ref: f.ref, .invalidRequest, "this session already said hello"))
        case .open(let choice):
            guard user.role == .customer else { return error(ServerFrames.error(ref: f.ref, .forbidden, "only customers open conversations")) }

            orders.snapshot(userId: user.id, choice: choice) { result in
                switch result {
                case .success(let order):
                    if case .none = choice {
                        self.toSwitchboard(.open(me, user, ref: f.ref, order: nil, attachOrder: false))
                    } else {
                        self.toSwitchboard(.open(me, user, ref: f.ref, order: order, attachOrder: order != nil))
                    }
                case .failure(let e):
                    error(ServerFrames.error(ref: f.ref, e.code, e.message))
                }
            }
        case .send(let c, let id, let text):
            self.toPartition(c, .message(me, user, c, ref: f.ref, clientMsgId: id, text: text))
        case .typing(let c, let active):
            self.toPartition(c, .typing(me, user, c, active: active, ref: f.ref))
        case .read(let c, let seq):
            self.toPartition(c, .read(me, user, c, seq: seq, ref: f.ref))
        case .history(let c, let before, let limit):
            self.toPartition(c, .history(me, user, c, ref: f.ref, before: before, limit: limit))
        case .agentStatus(let st):
            self.toSwitchboard(.agentStatus(me, user, st, ref: f.ref))
        case .claim(let c):
            self.toSwitchboard(.claim(me, user, c, ref: f.ref))
        case .transfer(let c, let to):
            self.toPartition(c, .transferRequest(me, user, c, ref: f.ref, to: to))
        case .resolve(let c):
            self.toPartition(c, .resolve(me, user, c, ref: f.ref))
        case .csat(let c, let score, let comment):
            self.toPartition(c, .csat(me, user, c, ref: f.ref, score: score, comment: comment))
        }
    }
}

import ParleyChat
import ParleyLog
import ParleyProtocol

/// Frames in: the welcome, replies, sequenced events and the rest (SPEC §3).
extension ChatClient {
    /// Handles one frame; true when it was a welcome (the connection is up).
    func receive(_ bytes: [UInt8]) -> Bool {
        let frame: ServerFrame
        switch ServerFrames.decode(bytes) {
        case .success(let f): frame = f
        case .failure(let e):
            emit(.error(ChatClientError(.invalid, "unreadable frame from the server: \(e)")))
            return false
        }
        switch frame {
        case .welcome(let w):
            onWelcome(w)
            return true
        case .reply(let r):
            if case .opened(_, let view) = r { merge(view) }
            let ref: String?
            switch r {
            case .ack(let x, _, _, _, _), .opened(let x, _), .error(let x, _, _): ref = x
            }
            if let ref, let p = pending.removeValue(forKey: ref) {
                settle(p, frame)
            } else if case .error(_, let code, let message) = r {
                emit(.error(ChatClientError(.server(code), message)))
            }
        case .history(let ref, _, _):
            if let ref, let p = pending.removeValue(forKey: ref) { settle(p, frame) }
        case .event(let e):
            onEvent(e)
        case .typing(let c, let user, let active):
            emit(.typing(c, user: user, active: active))
        case .read(let c, let user, let seq):
            emit(.read(c, user: user, seq: seq))
        case .presence(let id, let role, let status):
            emit(.presence(userId: id, role: role, status: status))
        case .queue(let entries):
            queue = entries
            emit(.queue(entries))
        case .resumeFailed(let c, let reason):
            persisted.positions[c] = nil
            saveSoon()
            emit(.resumeFailed(conversation: c, reason: reason))
        }
        return false
    }

    private func onWelcome(_ w: Welcome) {
        if let previous = persisted.epoch, previous != w.epoch {
            // History was restored or cut: positions mean nothing any more. Forget them and start
            // again without resume, so nothing is replayed against the wrong history.
            persisted.epoch = w.epoch
            persisted.positions = [:]
            conversations = [:]
            saveNow()
            emit(.reset(previousEpoch: previous, epoch: w.epoch))
            freshStart = true
            dropSocket()
            startAttempt()
            return
        }
        persisted.epoch = w.epoch
        welcome = w
        attempt = 0
        authFailures = 0
        for v in w.conversations {
            merge(v)
            // Not resumed: continue live from the welcome's lastSeq (the app loads history).
            if persisted.positions[v.id.description] == nil { persisted.positions[v.id.description] = v.lastSeq }
        }
        saveSoon()
        setState(.open)
        emit(.welcome(w))
        let waiters = welcomeWaiters
        welcomeWaiters = []
        for c in waiters { c.resume(returning: w) }
        if let status = agentStatus, w.user.role == .agent { transmit(.agentStatus(status)) }
        // The outbox first, in order, then whatever was asked while disconnected.
        for m in persisted.outbox { transmitSend(m) }
        let q = queued
        queued = []
        for r in q { transmit(r) }
    }

    private func onEvent(_ e: SequencedEvent) {
        let key = e.conversation.description
        let position = persisted.positions[key]
        if let p = position, e.seq <= p { return }  // already delivered (a replay)
        if let p = position, p > 0, e.seq > p + 1 { emit(.gap(e.conversation, after: p, seq: e.seq)) }
        persisted.positions[key] = e.seq
        if var v = conversations[e.conversation] {
            v.apply(e)
            conversations[e.conversation] = v
        } else if case .created(let customer, let order) = e.event {
            conversations[e.conversation] = ConversationView(id: e.conversation, status: .queued, customer: customer, agent: nil, order: order,
                                                             lastSeq: e.seq, readSeq: 0)
        }
        if case .message(let from, _, let clientMsgId) = e.event, from.id == welcome?.user.id,
           persisted.outbox.contains(where: { $0.clientMsgId == clientMsgId }) {
            // Our own message came back as an event: it is stored, whether or not the ack made it.
            acked(MessageAck(conversation: e.conversation, clientMsgId: clientMsgId, seq: e.seq, ts: e.ts))
        }
        saveSoon()
        emit(.event(e))
        if let v = conversations[e.conversation] { emit(.conversation(v)) }
    }

    func merge(_ v: ConversationView) {
        var merged = v
        if let known = conversations[v.id] {
            merged.lastSeq = max(known.lastSeq, v.lastSeq)
            merged.readSeq = max(known.readSeq, v.readSeq)
        }
        conversations[v.id] = merged
        emit(.conversation(merged))
    }

    private func settle(_ p: Pending, _ frame: ServerFrame) {
        switch p {
        case .request(let r):
            if case .reply(.error(_, let code, let message)) = frame {
                r.continuation.resume(throwing: ChatClientError(.server(code), message))
            } else {
                r.continuation.resume(returning: frame)
            }
        case .send(let m):
            switch frame {
            case .reply(.ack(_, let c, let seq, let ts, _)):
                acked(MessageAck(conversation: c ?? ConversationID(m.conversation) ?? .none, clientMsgId: m.clientMsgId, seq: seq ?? 0, ts: ts ?? 0))
            case .reply(.error(_, let code, let message)):
                sendFailed(m, ChatClientError(.server(code), message))
            default:
                break
            }
        }
    }

    func acked(_ ack: MessageAck) {
        let before = persisted.outbox.count
        persisted.outbox.removeAll { $0.clientMsgId == ack.clientMsgId }
        if persisted.outbox.count != before {
            saveNow()
            emit(.outbox(persisted.outbox))
        }
        let waiters = sendWaiters.removeValue(forKey: ack.clientMsgId) ?? []
        for w in waiters { w.resume(returning: ack) }
    }

    private func sendFailed(_ m: OutboxEntry, _ error: ChatClientError) {
        if error.retryable {
            // Nothing was stored: the same clientMsgId again, a little later.
            let ms = backoff.delayMs(attempt: 1)
            Task { [weak self] in
                try? await Task.sleep(nanoseconds: UInt64(ms) * 1_000_000)
                await self?.retrySend(m.clientMsgId)
            }
            return
        }
        persisted.outbox.removeAll { $0.clientMsgId == m.clientMsgId }
        saveNow()
        emit(.outbox(persisted.outbox))
        let waiters = sendWaiters.removeValue(forKey: m.clientMsgId) ?? []
        for w in waiters { w.resume(throwing: error) }
        emit(.sendFailed(m, error))
    }

    private func retrySend(_ clientMsgId: String) {
        guard state == .open, let m = persisted.outbox.first(where: { $0.clientMsgId == clientMsgId }) else { return }
        transmitSend(m)
    }

    // MARK: frames out

    /// A request without a reply wanted (typing, the agent status re-sent after a welcome).
    @discardableResult
    func transmit(_ r: ClientRequest) -> Bool {
        guard state == .open, let s = socket else { return false }
        s.send(ClientFrames.encode(r))
        return true
    }

    func transmit(_ q: Request) {
        guard state == .open, let s = socket else { queued.append(q); return }
        let ref = "r\(nextRef)"
        nextRef += 1
        pending[ref] = .request(q)
        s.send(ClientFrames.encode(ref: ref, q.request))
        Task { [weak self, requestTimeoutMs] in
            try? await Task.sleep(nanoseconds: UInt64(requestTimeoutMs) * 1_000_000)
            await self?.expire(ref)
        }
    }

    private func expire(_ ref: String) {
        guard case .request(let r)? = pending[ref] else { return }
        pending[ref] = nil
        r.continuation.resume(throwing: ChatClientError(.timeout, "no reply within \(requestTimeoutMs) ms"))
    }

    func transmitSend(_ m: OutboxEntry) {
        guard state == .open, let s = socket, let c = ConversationID(m.conversation) else { return }
        let ref = "s\(nextRef)"
        nextRef += 1
        pending[ref] = .send(m)
        s.send(ClientFrames.encode(ref: ref, .send(c, clientMsgId: m.clientMsgId, text: m.text)))
    }
}

extension ConversationView {
    /// Applies one sequenced event to what a client shows of the conversation.
    mutating func apply(_ e: SequencedEvent) {
        lastSeq = max(lastSeq, e.seq)
        switch e.event {
        case .created(let customer, let order): self.customer = customer; self.order = order
        case .orderAttached(let o): order = o
        case .assigned(let a): agent = a; status = .assigned
        case .transferred(_, let to): agent = to; status = to == nil ? .queued : .assigned
        case .resolved: status = .resolved
        case .message, .csat: break
        }
    }
}

/// Cluster mode: a node that does not write applies what the writer appended, in log order, the
/// way the writer's own book made it durable: state, deliveries to this node's sessions, typing
/// that a message or a resolve ends, and the replies it forwarded, released once their event is in.
extension ConversationBook {
    mutating func handleCluster(_ input: BookInput<S>, now: Int64, _ out: inout [BookOutput<S>]) {
        switch input {
        case .committed(let e, let payload, let members):
            committed(e, payload: payload, members: members, &out)

        case .committedRead(let id, let user, let seq):
            guard let c = conversations[id] else { break }
            let r = max(c.durableReads[user] ?? 0, seq)
            conversations[id]!.durableReads[user] = r
            conversations[id]!.reads[user] = max(c.reads[user] ?? 0, r)
            out.append(.read(id, person(user, in: c), seq: seq, to: others(of: user, in: c)))

        case .remoteTyping(let id, let user, let active):
            guard let c = conversations[id], !c.state.resolved, c.isParticipant(user.id) else { break }
            typing(id, user, active: active, now: now, &out)

        case .heldReply(let s, let reply, let id, let seq):
            if seq == 0 || (conversations[id]?.durableSeq ?? 0) >= seq {
                out.append(.deliver(reply, to: [s]))
            } else {
                held[id, default: []].append((seq, s, reply))
            }

        default:
            break
        }
    }

    private mutating func committed(_ e: SequencedEvent, payload: [UInt8], members: [S], _ out: inout [BookOutput<S>]) {
        let id = e.conversation
        if conversations[id] == nil {
            guard case .created(let customer, _) = e.event, e.seq == 1 else { return }
            let s = State(customer: customer)
            conversations[id] = Conversation(id: id, createdMs: e.ts, state: s, durable: s)
        }
        guard e.seq == conversations[id]!.durableSeq + 1 else { return }  // applied already
        let before = conversations[id]!.durable
        // Whoever joins with this event gets it (and what came before) like everyone else.
        let joining: String? = {
            switch e.event {
            case .created(let c, _): return c.id
            case .assigned(let a): return a.id
            case .transferred(_, let to): return to?.id
            default: return nil
            }
        }()
        if let user = joining {
            for s in members where conversations[id]!.subs[s] == nil {
                conversations[id]!.subs[s] = Sub(user: user, delivered: 0, live: true)
                sessionConversations[s, default: []].insert(id)
            }
        }
        makeDurable(e, payload: payload, &out)
        let c = conversations[id]!
        if c.pending.isEmpty {
            conversations[id]!.state = c.durable
            conversations[id]!.lastSeq = c.durableSeq
        } else {
            // Appends of this node still in flight cannot follow another writer's event: when they
            // are back (refused), the projection goes back to what is durable.
            conversations[id]!.refusal = conversations[id]!.refusal ?? Conversation.Refusal()
        }
        switch e.event {
        case .message(let from, _, _):
            if let t = conversations[id]!.typing.removeValue(forKey: from.id) {
                out.append(.typing(id, t.person, active: false, to: others(of: from.id, in: conversations[id]!)))
            }
        case .resolved:
            for (u, t) in c.typing { out.append(.typing(id, t.person, active: false, to: others(of: u, in: c))) }
            conversations[id]!.typing = [:]
        case .transferred(let from, _):
            // The agent transferred away stops receiving the conversation after this event.
            for (s, sub) in conversations[id]!.subs where sub.user == from.id {
                conversations[id]!.subs[s] = nil
                sessionConversations[s]?.remove(id)
            }
            if let t = conversations[id]!.typing.removeValue(forKey: from.id) {
                out.append(.typing(id, t.person, active: false, to: others(of: from.id, in: conversations[id]!)))
            }
        default:
            break
        }
        if let waiting = held[id] {
            let (ready, later) = (waiting.filter { $0.seq <= e.seq }, waiting.filter { $0.seq > e.seq })
            for h in ready { out.append(.deliver(h.reply, to: [h.session])) }
            held[id] = later.isEmpty ? nil : later
        }
        let after = conversations[id]!.durable
        if before.agent != after.agent || before.resolved != after.resolved || e.seq == 1 {
            out.append(.switchboard(.replicated(RestoredConversation(id: id, customer: after.customer, agent: after.agent,
                                                                     resolved: after.resolved, createdMs: c.createdMs))))
        }
    }

    private func person(_ user: String, in c: Conversation) -> Person {
        if c.durable.customer.id == user { return c.durable.customer }
        if let a = c.durable.agent, a.id == user { return a }
        return Person(id: user, role: .agent, name: user)
    }
}

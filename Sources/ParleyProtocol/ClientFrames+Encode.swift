import ParleyChat
import ParleyLog

extension ClientFrames {
    /// A request as clients write it (the SDK, `parley-load`, tests): `type`, `ref`, then the
    /// request's members in the order Protocol/SPEC.md lists them. `parse(encode(f)) == f`.
    public static func encode(_ f: ClientFrame) -> [UInt8] {
        var w = JSONWriter(capacity: 96 + (f.request.textBytes))
        w.open()
        w.field("type", f.request.type.rawValue)
        if let ref = f.ref { w.field("ref", ref) }
        switch f.request {
        case .hello(let token, let resume, _):
            w.field("token", token)
            if !resume.isEmpty {
                w.key("resume")
                w.open()
                for (c, seq) in resume.map({ ($0.key.description, $0.value) }).sorted(by: { $0.0 < $1.0 }) { w.dynamicKey(c); w.number(seq) }
                w.close()
            }
        case .open(let order):
            switch order {
            case .last: w.field("order", "last")
            case .id(let id): w.field("order", id)
            case .none: w.key("order"); w.null()
            }
        case .send(let c, let clientMsgId, let text):
            w.field("conversation", c); w.field("clientMsgId", clientMsgId); w.field("text", text)
        case .typing(let c, let active):
            w.field("conversation", c); w.field("active", active)
        case .read(let c, let seq):
            w.field("conversation", c); w.field("seq", seq)
        case .history(let c, let before, let limit):
            w.field("conversation", c)
            if let before { w.field("before", before) }
            if let limit { w.field("limit", limit) }
        case .agentStatus(let s):
            w.field("status", s.rawValue)
        case .claim(let c), .resolve(let c):
            w.field("conversation", c)
        case .transfer(let c, let to):
            w.field("conversation", c); w.field("to", to)
        case .csat(let c, let score, let comment):
            w.field("conversation", c); w.field("score", score)
            if let comment { w.field("comment", comment) }
        }
        w.close()
        return w.bytes
    }

    public static func encode(ref: String? = nil, _ r: ClientRequest) -> [UInt8] { encode(ClientFrame(ref: ref, r)) }
}

extension ClientRequest {
    /// Roughly how many bytes of text the request carries (a capacity hint for the encoder).
    var textBytes: Int {
        switch self {
        case .send(_, _, let text): return text.utf8.count + text.utf8.count / 8
        case .hello(let token, let resume, _): return token.utf8.count + 50 * resume.count
        default: return 0
        }
    }
}

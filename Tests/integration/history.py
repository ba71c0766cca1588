"""The history checker for cluster mode, independent of the server's code: it reads the JetStream
stream back over its own NATS connection (raw protocol), parses each record with its own parser
and crc32c, applies the chain rule itself, and checks what every client was acknowledged and
received against it:

- every acknowledged message is in the stream exactly once, at the acknowledged seq and ts;
- a clientMsgId acknowledged more than once (retries) got the same ack every time;
- no two counted events share a (conversation, seq), and each conversation's are 1, 2, 3, ...;
- every session received each conversation's events at most once, in seq order, with no gap;
  and every participant, over all their sessions (after resumes), got every event from where they
  joined to the end, exactly as stored.
"""
import base64, json, socket, struct
import crc32c


def read_stream(url, stream="PARLEY", timeout=20):
    """[(seq, headers dict, payload bytes)] for every message of the stream."""
    host, port = url.removeprefix("nats://").split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    f = s.makefile("rb")
    assert f.readline().startswith(b"INFO ")
    s.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nPING\r\n')
    assert f.readline().strip() == b"PONG"
    s.sendall(b"SUB _CHECK.* 1\r\n")

    def call(subject, body):
        s.sendall(b"PUB %s _CHECK.r %d\r\n%s\r\n" % (subject.encode(), len(body), body))
        while True:
            line = f.readline()
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
                continue
            parts = line.split()
            if parts[0] == b"MSG":
                data = f.read(int(parts[-1]) + 2)[:-2]
                return json.loads(data)
            if parts[0] == b"HMSG":
                f.read(int(parts[-1]) + 2)
                raise AssertionError(f"status reply to {subject}")

    info = call(f"$JS.API.STREAM.INFO.{stream}", b"")
    last = info["state"]["last_seq"]
    out = []
    for seq in range(1, last + 1):
        m = call(f"$JS.API.STREAM.MSG.GET.{stream}", json.dumps({"seq": seq}).encode())["message"]
        headers = {}
        if m.get("hdrs"):
            for line in base64.b64decode(m["hdrs"]).decode().split("\r\n")[1:]:
                if ": " in line:
                    k, v = line.split(": ", 1)
                    headers[k] = v
        out.append((m["seq"], headers, base64.b64decode(m.get("data", ""))))
    s.close()
    return out


def parse_record(frame):
    """((type, conversation hex, seq, key, payload), padded size) of the record frame at the start
    of `frame`, or None if it is not one."""
    if len(frame) < 64:
        return None
    frame_len, crc = struct.unpack_from("<II", frame, 0)
    size = (4 + frame_len + 7) & ~7
    body = frame[:4 + frame_len]
    if len(frame) < size or crc32c.crc32c(body[0:4] + body[8:]) != crc:
        return None
    version, rtype = body[8], body[9]
    conv = body[32:48].hex()
    (seq,) = struct.unpack_from("<Q", body, 48)
    key_len = body[56]
    (payload_len,) = struct.unpack_from("<I", body, 60)
    if version != 1 or 60 + key_len + payload_len != frame_len:
        return None
    return (rtype, conv, seq, body[64:64 + key_len], body[64 + key_len:64 + key_len + payload_len]), size


def parse_records(payload):
    """The records of one stream message (group commit: back to back), or None unless all of it is records."""
    out, at = [], 0
    while at < len(payload):
        r = parse_record(payload[at:])
        if r is None:
            return None
        out.append(r[0])
        at += r[1]
    return out or None


def uuid_hex(conversation_id):
    return conversation_id.replace("-", "")


def counted(messages):
    """The chain rule, applied independently, a stream message counting or not as a whole:
    {(conversation hex, seq): (key, event dict)}."""
    last_valid, last_seq, events = 0, {}, {}
    for seq, headers, payload in messages:
        records = parse_records(payload)
        after = headers.get("Parley-After")
        if records is None or after is None or int(after) != last_valid:
            continue
        scratch = {}
        for rtype, conv, cseq, key, body in records:
            if cseq > 0:
                if cseq != scratch.get(conv, last_seq.get(conv, 0)) + 1:
                    break
                scratch[conv] = cseq
        else:
            for rtype, conv, cseq, key, body in records:
                if cseq > 0:
                    assert (conv, cseq) not in events
                    events[(conv, cseq)] = (key, json.loads(body))
            last_seq.update(scratch)
            last_valid = seq
    return events


def check(messages, acks, sessions):
    """`acks`: {clientMsgId: [ack, ...]} (every ack received, retries included), sender in the id
    as "<user>:<n>"; `sessions`: {user: [[event, ...] per session, in arrival order]}."""
    events = counted(messages)
    by_conv = {}
    for (conv, seq), (_, e) in events.items():
        by_conv.setdefault(conv, {})[seq] = e
    for conv, seqs in by_conv.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), f"conversation {conv} has a gap: {sorted(seqs)}"
    # Acknowledged messages: once, where and when the ack said.
    keys = {}
    for (conv, seq), (key, e) in events.items():
        if key:
            assert key not in keys, f"key {key} stored twice"
            keys[key] = (conv, seq, e)
    for cmid, got in acks.items():
        assert all((a["seq"], a["ts"]) == (got[0]["seq"], got[0]["ts"]) for a in got), f"{cmid} acked differently: {got}"
        user = cmid.split(":")[0]
        key = user.encode() + b"\0" + cmid.encode()
        assert key in keys, f"acknowledged {cmid} is not in the stream"
        conv, seq, e = keys[key]
        assert (conv, seq, e["ts"]) == (uuid_hex(got[0]["conversation"]), got[0]["seq"], got[0]["ts"]), f"{cmid}: ack {got[0]} vs stored {e}"
    # What sessions received: each at most once, in order, no gap; every participant everything
    # from where they joined, as stored.
    for user, lists in sessions.items():
        seen = {}
        for events_of_session in lists:
            per = {}
            for e in events_of_session:
                conv = uuid_hex(e["conversation"])
                stored = by_conv.get(conv, {}).get(e["seq"])
                assert stored == e, f"{user} got {e}, the stream has {stored}"
                if conv in per:
                    assert e["seq"] == per[conv] + 1, f"{user}: seq {e['seq']} after {per[conv]} in one session"
                per[conv] = e["seq"]
                seen.setdefault(conv, set()).add(e["seq"])
        for conv, seqs in seen.items():
            lo, hi = min(seqs), max(by_conv[conv])
            missing = sorted(set(range(lo, hi + 1)) - seqs)
            # Events after the participant's last session ended are not theirs to miss; the
            # traffic runs each participant's last session to the end of its conversation.
            assert not missing or min(missing) > max(seqs), f"{user} missed {missing[:10]} of {conv}"
    return len(events), len(acks)

"""Fills a cluster's stream with N valid chat records (conversations of `per` events: created, then
messages), pipelined, for the start-up measurement in bench-cluster-startup.sh. Raw NATS protocol;
records in the log's format (FORMAT.md), chained by `Parley-After` as a writer would."""
import json, socket, struct, sys, uuid
import crc32c


def record(rtype, conv, seq, ts, key, payload):
    body = struct.pack("<BBHIQq", 1, rtype, 0, 1, 0, ts) + conv + struct.pack("<Q", seq) + bytes([len(key), 0, 0, 0])
    body += struct.pack("<I", len(payload)) + key + payload
    head = struct.pack("<I", len(body) + 4)
    frame = head + struct.pack("<I", crc32c.crc32c(head + body)) + body
    return frame + b"\0" * (-len(frame) % 8)


def main():
    url, total, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    host, port = url.removeprefix("nats://").split(":")
    s = socket.create_connection((host, int(port)))
    f = s.makefile("rb")
    f.readline()
    s.sendall(b'CONNECT {"verbose":false,"headers":true}\r\nPING\r\n')
    while f.readline().strip() != b"PONG":
        pass
    s.sendall(b"SUB _FILL.* 1\r\n")
    s.sendall(b"PUB $JS.API.STREAM.INFO.PARLEY _FILL.i 0\r\n\r\n")
    line = f.readline()
    info = json.loads(f.read(int(line.split()[-1]) + 2)[:-2])
    seq = info["state"]["last_seq"]
    assert seq == 0, "fill an empty stream"
    sent, acked, window = 0, 0, 2000
    conv, cseq, cid = None, 0, None
    while acked < total:
        out = []
        while sent < total and sent - acked < window:
            if cseq == 0 or cseq == per:
                u = uuid.uuid4()
                conv, cid, cseq = u.bytes, str(u), 0
            cseq += 1
            ts = 1_764_000_000_000 + sent
            person = {"id": f"u{sent // per}", "role": "customer", "name": f"u{sent // per}"}
            if cseq == 1:
                e = {"type": "conversation.created", "conversation": cid, "seq": 1, "ts": ts, "customer": person, "order": None}
                r = record(17, conv, 1, ts, b"", json.dumps(e, separators=(",", ":")).encode())
            else:
                cm = f"m{cseq}"
                e = {"type": "message", "conversation": cid, "seq": cseq, "ts": ts, "from": person, "text": "hello there, where is my order?", "clientMsgId": cm}
                r = record(16, conv, cseq, ts, person["id"].encode() + b"\0" + cm.encode(), json.dumps(e, separators=(",", ":")).encode())
            hdr = b"NATS/1.0\r\nParley-After: %d\r\n\r\n" % (sent)
            out.append(b"HPUB parley.events _FILL.a %d %d\r\n%s%s\r\n" % (len(hdr), len(hdr) + len(r), hdr, r))
            sent += 1
        s.sendall(b"".join(out))
        while acked < sent - window // 2 or (sent == total and acked < total):
            line = f.readline()
            if line.startswith(b"PING"):
                s.sendall(b"PONG\r\n")
                continue
            if line.startswith(b"MSG"):
                f.read(int(line.split()[-1]) + 2)
                acked += 1
    print(f"filled {total} records")


if __name__ == "__main__":
    main()

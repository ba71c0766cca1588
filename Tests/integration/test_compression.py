"""permessage-deflate (RFC 7692) against the real server: the negotiation table from
Protocol/vectors/ws/deflate-negotiation.jsonl, compressed and fragmented round trips built with
Python's zlib (independent of the server's), bombs, corrupt data, and compress-once fan-out."""
import asyncio, json, os, socket, struct, time, urllib.request, zlib
import pytest, websockets
from conftest import jsonl, metric
from chatclient import Client
import wsraw

TAIL = b"\x00\x00\xff\xff"


def deflate(data, wbits=15, level=6):
    c = zlib.compressobj(level, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def inflate(data, wbits=15):
    return zlib.decompressobj(-wbits).decompress(data + TAIL)


def read_frame(reader):
    """(fin, rsv1, opcode, payload) of the next server frame."""
    reader._need(2)
    b0 = reader.buf[0]
    fin, op, payload = reader.read()
    return fin, bool(b0 & 0x40), op, payload


def negotiated(server, offer="permessage-deflate; client_max_window_bits"):
    s = server.connect()
    head = wsraw.upgrade(s, extra=f"Sec-WebSocket-Extensions: {offer}\r\n")
    return s, head, wsraw.FrameReader(s)


def extension_header(head):
    for line in head.split(b"\r\n"):
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"sec-websocket-extensions":
            return v.strip().decode()
    return None


@pytest.mark.parametrize("case", jsonl("ws/deflate-negotiation.jsonl"), ids=lambda c: c["name"])
def test_negotiation_table(echo_server, case):
    s = echo_server.connect()
    extra = "".join(f"Sec-WebSocket-Extensions: {o}\r\n" for o in case["offers"])
    head = wsraw.upgrade(s, extra=extra)
    assert extension_header(head) == case["response"]
    s.close()


def test_declined_connection_refuses_rsv1(echo_server):
    s = echo_server.connect()
    wsraw.upgrade(s)
    s.sendall(wsraw.frame(0x1, deflate(b"hello"), rsv=4))
    assert wsraw.FrameReader(s).read_close() == 1002


def test_compressed_message_round_trip_and_server_compresses_large_replies(echo_server):
    s, head, r = negotiated(echo_server)
    assert extension_header(head) == "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
    big = json.dumps({"type": "message", "text": "Where is my order #1234? " * 40}).encode()
    s.sendall(wsraw.frame(0x1, deflate(big, wbits=10), rsv=4))
    fin, rsv1, op, payload = read_frame(r)
    assert (fin, rsv1, op) == (True, True, 0x1)
    assert len(payload) < len(big) // 4
    assert inflate(payload) == big
    # Small replies go out plain, even for a compressed request.
    s.sendall(wsraw.frame(0x1, deflate(b"short", wbits=10), rsv=4))
    fin, rsv1, op, payload = read_frame(r)
    assert (rsv1, payload) == (False, b"short")
    # Uncompressed messages are still fine on a compressing connection.
    s.sendall(wsraw.frame(0x2, b"\x00\x01plain"))
    assert read_frame(r) == (True, False, 0x2, b"\x00\x01plain")
    s.close()


def test_fragmented_compressed_message_rsv1_on_first_frame_only(echo_server):
    s, _, r = negotiated(echo_server)
    text = ("fragmented and compressed " * 200).encode()
    z = deflate(text, wbits=10)
    parts = [z[: len(z) // 3], z[len(z) // 3: 2 * len(z) // 3], z[2 * len(z) // 3:]]
    s.sendall(wsraw.frame(0x1, parts[0], fin=False, rsv=4))
    s.sendall(wsraw.frame(0x9, b"mid"))  # a control frame between fragments
    s.sendall(wsraw.frame(0x0, parts[1], fin=False))
    s.sendall(wsraw.frame(0x0, parts[2], fin=True))
    assert read_frame(r) == (True, False, 0xA, b"mid")
    fin, rsv1, op, payload = read_frame(r)
    assert rsv1 and inflate(payload) == text
    s.close()


def test_rsv1_on_a_continuation_frame_is_a_protocol_error(echo_server):
    s, _, r = negotiated(echo_server)
    z = deflate(b"x" * 1000, wbits=10)
    s.sendall(wsraw.frame(0x1, z[:5], fin=False, rsv=4) + wsraw.frame(0x0, z[5:], fin=True, rsv=4))
    assert r.read_close() == 1002


def test_rsv1_on_a_control_frame_is_a_protocol_error(echo_server):
    s, _, r = negotiated(echo_server)
    s.sendall(wsraw.frame(0x9, b"", rsv=4))
    assert r.read_close() == 1002


def test_context_takeover_from_the_client_is_honoured(echo_server):
    """Without client_no_context_takeover the client may refer back to earlier messages."""
    s, head, r = negotiated(echo_server, "permessage-deflate")
    assert "client_no_context_takeover" not in extension_header(head)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    msgs = [b"the same sentence again and again " * 20, b"the same sentence again and again " * 21]
    for m in msgs:
        z = c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH)
        s.sendall(wsraw.frame(0x1, z[:-4], rsv=4))
        fin, rsv1, op, payload = read_frame(r)
        assert (inflate(payload) if rsv1 else payload) == m
    s.close()


def test_decompression_bomb_is_refused_with_1009(echo_server):
    s, _, r = negotiated(echo_server)
    bomb = deflate(b"\x00" * (8 << 20), wbits=10)  # 8 MiB of zeros in ~8 KiB; the limit is 64 KiB
    assert len(bomb) < 65536
    s.sendall(wsraw.frame(0x2, bomb, rsv=4))
    assert r.read_close() == 1009


def test_bomb_split_across_fragments_is_refused_with_1009(echo_server):
    s, _, r = negotiated(echo_server)
    bomb = deflate(b"A" * (1 << 20), wbits=10)
    step = max(1, len(bomb) // 8)
    chunks = [bomb[i:i + step] for i in range(0, len(bomb), step)]
    out = wsraw.frame(0x1, chunks[0], fin=False, rsv=4)
    for i, ch in enumerate(chunks[1:], 1):
        out += wsraw.frame(0x0, ch, fin=i == len(chunks) - 1)
    s.sendall(out)
    assert r.read_close() == 1009


def test_exactly_the_limit_is_accepted(echo_server):
    s, _, r = negotiated(echo_server)
    m = b"z" * 65536
    s.sendall(wsraw.frame(0x2, deflate(m, wbits=10), rsv=4))
    fin, rsv1, op, payload = read_frame(r)
    assert inflate(payload) == m
    s.sendall(wsraw.frame(0x2, deflate(m + b"!", wbits=10), rsv=4))
    assert r.read_close() == 1009


def test_corrupt_compressed_data_closes_with_1007(echo_server):
    s, _, r = negotiated(echo_server)
    s.sendall(wsraw.frame(0x1, b"\xff\xff\xff\xff\x00\x13\x37", rsv=4))
    assert r.read_close() == 1007


def test_invalid_utf8_inside_compressed_text_closes_with_1007(echo_server):
    s, _, r = negotiated(echo_server)
    s.sendall(wsraw.frame(0x1, deflate(b"ok \xff\xfe not utf-8" * 30, wbits=10), rsv=4))
    assert r.read_close() == 1007


def test_websockets_library_with_default_compression(echo_server):
    async def run():
        async with websockets.connect(echo_server.url + "/v1/echo", max_size=None) as ws:
            assert ws.response.headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate; server_no_context_takeover")
            for m in ("x", "{}" * 1000, os.urandom(65536), "é" * 20000):
                await ws.send(m)
                assert await ws.recv() == m
            # A fragmented message from the library (an iterable of fragments).
            await ws.send(["part one, " * 50, "part two, " * 50, "end"])
            assert await ws.recv() == "part one, " * 50 + "part two, " * 50 + "end"
    asyncio.run(run())


def test_no_compression_flag_declines(fresh_server):
    s = fresh_server("--echo", "--no-compression")
    sock = s.connect()
    head = wsraw.upgrade(sock, extra="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    assert extension_header(head) is None


def test_one_event_to_many_recipients_is_compressed_once(fresh_server):
    """A customer with 12 sessions (devices) and an agent: one long message reaches 13 compressing
    sessions on two loops, and the server runs deflate for it at most once per loop (usually once:
    loops that reach it at the same moment each compress, the first to publish is shared, no lock)."""
    server = fresh_server("--loops", "2")

    async def run():
        agent = await Client.open(server, "agent-fan", role="agent", name="Ada")
        assert (await agent.request({"type": "agent.status", "status": "available"}))["type"] == "ack"
        first = await Client.open(server, "cust-fan", name="Cy")
        opened = await first.request({"type": "conversation.open"})
        assert opened["type"] == "conversation.opened", opened
        cid = opened["conversation"]["id"]
        await agent.wait(lambda m: m["type"] == "conversation.assigned")
        others = [await Client.open(server, "cust-fan", name="Cy") for _ in range(11)]
        for c in [agent, first, *others]:
            assert "permessage-deflate" in c.ws.response.headers.get("Sec-WebSocket-Extensions", "")
        runs0 = metric(server, "parley_ws_deflate_runs_total")
        sent0 = metric(server, "parley_ws_compressed_messages_sent_total")
        text = "My parcel from order 1234 has not arrived and the tracking page says nothing at all. " * 6
        ack = await first.request({"type": "message.send", "conversation": cid, "clientMsgId": "fan-1", "text": text})
        assert ack["type"] == "ack"
        for c in [agent, first, *others]:
            m = await c.wait(lambda m: m["type"] == "message" and m.get("text") == text)
            assert m["conversation"] == cid
        runs = metric(server, "parley_ws_deflate_runs_total") - runs0
        sent = metric(server, "parley_ws_compressed_messages_sent_total") - sent0
        for c in [agent, first, *others]:
            await c.ws.close()
        return runs, sent

    runs, sent = asyncio.run(run())
    assert sent >= 13
    assert 1 <= runs <= 2, f"deflate ran {runs} times for one event sent {sent} times on 2 loops"

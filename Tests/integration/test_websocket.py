import asyncio, os, signal, socket, struct, time
import pytest
import websockets
from conftest import ServerProcess, jsonl
from wsraw import FrameReader, frame, read_http_response, upgrade


def run(coro):
    return asyncio.run(coro)


def test_echo_text_binary_fragmented_and_ping(echo_server):
    async def go():
        async with websockets.connect(echo_server.url + "/v1/echo", max_size=None) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\xff")
            assert await ws.recv() == b"\x00\xff"
            await ws.send(["κό", "σμε"])
            assert await ws.recv() == "κόσμε"
            big = "x" * 65536
            await ws.send(big)
            assert await ws.recv() == big
            await (await ws.ping(b"p"))
    run(go())


def test_message_over_limit_closes_1009(echo_server):
    async def go():
        async with websockets.connect(echo_server.url + "/v1/echo", max_size=None) as ws:
            await ws.send("x" * 65537)
            with pytest.raises(websockets.ConnectionClosed) as e:
                await ws.recv()
            assert e.value.rcvd.code == 1009
    run(go())


def test_many_concurrent_clients(echo_server):
    async def client(i):
        async with websockets.connect(echo_server.url + "/v1/echo") as ws:
            for j in range(20):
                msg = f"{i}:{j}"
                await ws.send(msg)
                assert await ws.recv() == msg
    async def go():
        await asyncio.gather(*(client(i) for i in range(200)))
    run(go())


def test_echo_disabled_by_default(fresh_server):
    s = fresh_server()
    sock = s.connect()
    sock.sendall(b"GET /v1/echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    assert read_http_response(sock)[0] == 404


@pytest.mark.parametrize("case", jsonl("ws/handshake.jsonl"), ids=lambda c: c["name"])
def test_handshake_vectors(echo_server, case):
    s = echo_server.connect()
    head = "GET /v1/echo HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in case["headers"].items()) + "\r\n"
    s.sendall(head.encode())
    status, headers, _ = read_http_response(s)
    assert status == case["status"]
    if "accept" in case:
        assert headers["sec-websocket-accept"] == case["accept"]
    if "responseHeader" in case:
        k, v = case["responseHeader"]
        assert headers[k.lower()] == v


FRAME_CASES = jsonl("ws/frames.jsonl")


@pytest.fixture(scope="module")
def echo_server_for():
    """An echo server per message limit the frame vectors name, started on first use."""
    servers = {}
    def get(limit):
        if limit not in servers:
            servers[limit] = ServerProcess("--echo", "--max-message-bytes", str(limit))
        return servers[limit]
    yield get
    for s in servers.values():
        s.stop()


@pytest.mark.parametrize("case", FRAME_CASES, ids=lambda c: c["name"])
def test_frame_vectors_against_the_real_server(echo_server_for, case):
    """Every frame vector over a real socket, each against a server with the vector's message
    limit: the echo server answers each event, then closes as expected."""
    s = echo_server_for(case.get("maxMessageBytes", 65536)).connect()
    upgrade(s)
    s.sendall(bytes.fromhex(case["input"]))
    r = FrameReader(s)
    s.settimeout(5)
    for ev in case["events"]:
        if "pongHex" in ev:
            continue  # unsolicited pongs get no answer
        fin, op, payload = r.read()
        if "text" in ev:
            assert (op, payload) == (0x1, ev["text"].encode())
        elif "binaryHex" in ev:
            assert (op, payload.hex()) == (0x2, ev["binaryHex"])
        elif "pingHex" in ev:
            assert (op, payload.hex()) == (0xA, ev["pingHex"]), "ping is answered with a pong carrying its payload"
        else:
            assert op == 0x8
            expect = ev["close"]
            got = struct.unpack(">H", payload[:2])[0] if payload else None
            assert got == expect, "close code echoed"
            assert r.expect_eof(), "server closes TCP after the close handshake"
    if case["fail"] is not None:
        assert r.read_close() == case["fail"]
        assert r.expect_eof()


def test_close_handshake_initiated_by_client_is_echoed(echo_server):
    async def go():
        ws = await websockets.connect(echo_server.url + "/v1/echo")
        await ws.close(code=4000, reason="bye")
        assert ws.protocol.close_rcvd.code == 4000
    run(go())


def test_fragmented_message_with_interleaved_ping_over_many_writes(echo_server):
    s = echo_server.connect()
    upgrade(s)
    parts = [frame(0x1, b"ab", fin=False), frame(0x9, b"x"), frame(0x0, b"c" * 300, fin=False), frame(0x0, b"d")]
    for p in parts:
        for i in range(0, len(p), 3):
            s.send(p[i:i + 3])
    r = FrameReader(s)
    assert r.read()[1:] == (0xA, b"x")
    assert r.read()[1:] == (0x1, b"ab" + b"c" * 300 + b"d")


def test_graceful_shutdown_closes_sessions_with_1001(fresh_server):
    srv = fresh_server("--echo")
    socks = []
    for _ in range(5):
        s = srv.connect()
        upgrade(s)
        socks.append(s)
    start = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    for s in socks:
        r = FrameReader(s)
        assert r.read_close() == 1001
        s.sendall(frame(0x8, struct.pack(">H", 1001)))
    assert srv.proc.wait(timeout=10) == 0
    assert time.time() - start < 5


def test_idle_connection_gets_pinged(fresh_server):
    srv = fresh_server("--echo", "--ping-interval", "1")
    s = srv.connect()
    upgrade(s)
    s.settimeout(5)
    fin, op, payload = FrameReader(s).read()
    assert op == 0x9


def test_client_that_does_not_read_is_throttled_and_server_stays_up(echo_server):
    """Backpressure: a client that sends but never reads stops being read; others are unaffected."""
    s = echo_server.connect()
    upgrade(s)
    s.setblocking(False)
    msg = frame(0x2, b"z" * 60000)
    sent = 0
    deadline = time.time() + 10
    blocked = False
    while time.time() < deadline:
        try:
            sent += s.send(msg)
        except BlockingIOError:
            blocked = True
            break
    assert blocked, "the server kept reading a client that never reads"
    assert sent < 64 * 1024 * 1024
    async def healthy():
        async with websockets.connect(echo_server.url + "/v1/echo") as ws:
            await ws.send("still here")
            assert await ws.recv() == "still here"
    run(healthy())
    s.close()


def test_client_that_never_reads_is_dropped_after_the_write_stall(fresh_server):
    """Backpressure's last step: once the kernel's buffers are full and Parley's own queue makes no
    progress for 10 s, the connection is ended (the process keeps no memory for a dead reader)."""
    srv = fresh_server("--echo")
    s = srv.connect(timeout=30)
    upgrade(s)
    s.setblocking(False)
    msg = frame(0x2, b"z" * 60000)
    start = time.time()
    closed = False
    pending = b""
    while time.time() - start < 40:  # keep pushing: the server must queue output it cannot send
        try:
            if not pending:
                pending = msg
            n = s.send(pending)
            pending = pending[n:]
        except BlockingIOError:
            time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    elapsed = time.time() - start
    assert closed, "the server kept a connection whose output made no progress"
    assert 9 < elapsed < 35, elapsed
    assert srv.proc.poll() is None

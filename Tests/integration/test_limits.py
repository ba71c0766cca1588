"""Resource limits and liveness: descriptors, dead peers, configuration from the environment."""
import asyncio, os, resource, socket, time
import websockets
from conftest import ServerProcess
from wsraw import FrameReader, read_http_response, upgrade


def healthz(server):
    s = server.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    return read_http_response(s)[0]


def test_running_out_of_descriptors_pauses_accepting_and_never_crashes(fresh_server):
    limit = 400
    def lower_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    srv = ServerProcess.__new__(ServerProcess)
    import subprocess, re
    from conftest import BIN
    srv.proc = subprocess.Popen([BIN, "serve", "--port", "0", "--echo"], stderr=subprocess.PIPE, text=True, preexec_fn=lower_limit)
    srv.port = None
    for _ in range(50):
        line = srv.proc.stderr.readline()
        m = re.search(r"conn\.pause_at=(\d+).*http\.port=(\d+)", line)
        if m:
            pause_at, srv.port = int(m.group(1)), int(m.group(2))
            break
    try:
        assert pause_at < limit
        socks, upgraded = [], 0
        for i in range(pause_at + 100):  # more than the server may take
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            socks.append(s)
        for s in socks[:pause_at - 10]:
            upgrade(s)
            upgraded += 1
        assert upgraded == pause_at - 10
        # The ones past the limit wait in the backlog: no answer, but the process is alive.
        late = socks[-1]
        late.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        late.settimeout(1.0)
        try:
            got = late.recv(100)
            assert got == b"", "a connection beyond the limit must not be served yet"
        except socket.timeout:
            pass
        assert srv.proc.poll() is None, "server died at the descriptor limit"
        # Free a good share: accepting resumes and the waiting connection is answered.
        for s in socks[:150]:
            s.close()
        late.settimeout(10)
        status, _, _ = read_http_response(late, timeout=10)
        assert status == 200
        assert srv.proc.poll() is None
    finally:
        for s in socks:
            s.close()
        srv.proc.kill()
        srv.proc.wait()


def test_silent_peer_is_dropped_after_the_pong_timeout(fresh_server):
    srv = fresh_server("--echo", "--ping-interval", "1", "--pong-timeout", "1")
    s = srv.connect(timeout=10)
    upgrade(s)
    r = FrameReader(s)
    start = time.time()
    assert r.read()[1] == 0x9  # the ping, which we ignore
    assert r.expect_eof(timeout=8)
    assert time.time() - start < 6


def test_ponging_peer_stays_connected(fresh_server):
    srv = fresh_server("--echo", "--ping-interval", "1", "--pong-timeout", "1")
    async def go():
        async with websockets.connect(srv.url + "/v1/echo") as ws:  # answers pings automatically
            await asyncio.sleep(3.5)
            await ws.send("alive")
            assert await ws.recv() == "alive"
    asyncio.run(go())


def test_configuration_from_environment(fresh_server):
    srv = fresh_server(env={"PARLEY_ECHO": "1", "PARLEY_MAX_MESSAGE_BYTES": "1000"})
    async def go():
        async with websockets.connect(srv.url + "/v1/echo") as ws:
            await ws.send("x" * 1000)
            assert await ws.recv() == "x" * 1000
            await ws.send("x" * 1001)
            try:
                await ws.recv()
                assert False, "expected close"
            except websockets.ConnectionClosed as e:
                assert e.rcvd.code == 1009
    asyncio.run(go())


def _rss_bytes(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_pipelined_requests_behind_a_deferred_answer_wait_in_the_socket_not_in_memory(fresh_server):
    """A client puts orders (each answered once durable) and pipelines them without reading any
    answer: the server stops reading while an answer is pending and while its answers back up,
    so what the client can push is bounded by the sockets' buffers, the server's memory does not
    grow with it, and the connection is not dropped for it."""
    import json, select
    srv = fresh_server()
    body = json.dumps({"placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": "1.00", "currency": "EUR", "items": []}).encode()
    put = (f"PUT /v1/users/u/orders/o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.secrets['apiKey']}\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    chunk = put * 200
    rss0 = _rss_bytes(srv.proc.pid)
    s = srv.connect()
    s.setblocking(False)
    pushed, cap = 0, 64 << 20
    while pushed < cap:
        try:
            pushed += s.send(chunk)
        except BlockingIOError:
            # The server reads no more: once the sockets' buffers are full, nothing moves.
            if not select.select([], [s], [], 3)[1]:
                break
    grown = _rss_bytes(srv.proc.pid) - rss0
    assert pushed < 24 << 20, f"the server kept reading: {pushed >> 20} MiB taken while its answers waited"
    assert grown < 48 << 20, f"server memory grew {grown >> 20} MiB"
    # Still connected (nothing was dropped for it) and the server serves others.
    s.setblocking(True)
    s.settimeout(10)
    assert s.recv(4096).startswith(b"HTTP/1.1 20"), "the first answers are there to read"
    other = srv.connect()
    other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert other.recv(4096).startswith(b"HTTP/1.1 200")

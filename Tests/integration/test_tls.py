"""wss:// and https:// through the server's own TLS (OpenSSL over memory BIOs), from independent clients:
Python's ssl + websockets, and `openssl s_client`."""
import asyncio, hashlib, os, shutil, signal, socket, ssl, subprocess, threading, time, urllib.request
from pathlib import Path
import pytest, websockets
from conftest import BIN, ServerProcess, metric

OPENSSL = shutil.which("openssl")


def ctx_for(server, **kw):
    ctx = ssl.create_default_context(cafile=str(Path(server.data_dir) / "tls" / "cert.pem"))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def make_cert(directory, name="localhost", key_type="ec"):
    """A self-signed certificate made by the openssl CLI (not by the server)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ec" else ["-newkey", "rsa:2048"]
    subprocess.run([OPENSSL, "req", "-x509", *newkey, "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


async def peer_cert(port, cafile):
    ctx = ssl.create_default_context(cafile=str(cafile))
    async with websockets.connect(f"wss://127.0.0.1:{port}/v1/echo", ssl=ctx) as ws:
        return fingerprint(ws.transport.get_extra_info("ssl_object").getpeercert(binary_form=True))


@pytest.fixture(scope="module")
def tls_server():
    s = ServerProcess("--echo", "--tls-self-signed", "--tls-port", "0")
    assert s.tls_port and s.tls_port != s.port
    yield s
    s.stop()


def test_wss_echo_tls13_alpn_and_large_messages(tls_server):
    async def run():
        async with websockets.connect(f"wss://127.0.0.1:{tls_server.tls_port}/v1/echo", ssl=ctx_for(tls_server),
                                      max_size=None, compression=None) as ws:
            obj = ws.transport.get_extra_info("ssl_object")
            assert obj.version() == "TLSv1.3"
            assert obj.selected_alpn_protocol() in (None, "http/1.1")
            for n in (0, 1, 125, 126, 16383, 16384, 16385, 65536):
                m = os.urandom(n)
                await ws.send(m)
                assert await ws.recv() == m
            await ws.send("héllo wss")
            assert await ws.recv() == "héllo wss"
    asyncio.run(run())


def test_wss_with_compression_round_trips(tls_server):
    async def run():
        async with websockets.connect(f"wss://127.0.0.1:{tls_server.tls_port}/v1/echo", ssl=ctx_for(tls_server), max_size=None) as ws:
            assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
            text = '{"type":"message","text":"where is my order?"}' * 500
            for m in (text, text[:300], text[:10], os.urandom(40000)):
                await ws.send(m)
                assert await ws.recv() == m
    asyncio.run(run())


def test_alpn_http11_offered_h2_gets_http11(tls_server):
    ctx = ctx_for(tls_server)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "http/1.1"
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")


def test_graceful_close_sends_close_notify(tls_server):
    """Connection: close over TLS ends with close_notify: Python's ssl reads a clean end of stream,
    not SSLEOFError (a bare TCP close)."""
    with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=5) as raw:
        with ctx_for(tls_server).wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                c = s.recv(4096)  # raises ssl.SSLEOFError if the server closed without close_notify
                if not c:
                    break
                data += c
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b'{"status":"ok"}')


def test_tls12_client_still_works(tls_server):
    ctx = ctx_for(tls_server, maximum_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() == "TLSv1.2"
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b'{"status":"ok"}' in s.recv(4096)


def test_plain_port_stays_plain_next_to_tls(tls_server):
    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{tls_server.port}/v1/echo") as ws:
            await ws.send("plain")
            assert await ws.recv() == "plain"
    asyncio.run(run())


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI missing")
def test_openssl_s_client(tls_server):
    cert = Path(tls_server.data_dir) / "tls" / "cert.pem"
    p = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{tls_server.tls_port}", "-CAfile", str(cert),
                        "-verify_return_error", "-alpn", "http/1.1", "-servername", "localhost", "-ign_eof"],
                       input=b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", capture_output=True, timeout=20)
    out = p.stdout.decode(errors="replace")
    assert "Verify return code: 0 (ok)" in out
    assert "TLSv1.3" in out
    assert "ALPN protocol: http/1.1" in out
    assert "HTTP/1.1 200 OK" in out and '{"status":"ok"}' in out


def test_plain_http_on_tls_port_gets_a_clear_400(tls_server):
    before = metric(tls_server, "parley_tls_errors_total")
    with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            c = s.recv(4096)
            if not c:
                break
            data += c
    assert data.startswith(b"HTTP/1.1 400")
    assert b"use https:// or wss://" in data
    assert metric(tls_server, "parley_tls_errors_total") >= before + 1
    assert tls_server.proc.poll() is None


def test_garbage_and_truncated_handshakes_close_without_harm(tls_server):
    before = metric(tls_server, "parley_tls_errors_total")
    for junk in (os.urandom(300), b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\xff\xff" + os.urandom(100), b"\x80" * 64):
        with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
    assert metric(tls_server, "parley_tls_errors_total") >= before + 2
    # Still serving TLS.
    ctx = ctx_for(tls_server)
    with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")


def test_handshake_counter_and_untrusted_client_refusal(tls_server):
    before = metric(tls_server, "parley_tls_handshakes_total")
    ctx = ssl.create_default_context()  # the system store does not trust the dev certificate
    with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")
    asyncio.run(peer_cert(tls_server.tls_port, Path(tls_server.data_dir) / "tls" / "cert.pem"))
    assert metric(tls_server, "parley_tls_handshakes_total") >= before + 1


def test_handshake_flood_does_not_starve_an_open_session(fresh_server):
    s = fresh_server("--echo", "--tls-self-signed", "--loops", "1")
    cafile = Path(s.data_dir) / "tls" / "cert.pem"
    results = {"ok": 0, "fail": []}
    lock = threading.Lock()

    def handshake():
        ctx = ssl.create_default_context(cafile=str(cafile))
        try:
            with socket.create_connection(("127.0.0.1", s.port), timeout=20) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as t:
                    t.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    ok = t.recv(4096).startswith(b"HTTP/1.1 200")
            with lock:
                if ok:
                    results["ok"] += 1
                else:
                    results["fail"].append("no 200")
        except Exception as e:  # noqa: BLE001
            with lock:
                results["fail"].append(repr(e))

    async def run():
        async with websockets.connect(f"wss://127.0.0.1:{s.port}/v1/echo", ssl=ssl.create_default_context(cafile=str(cafile))) as ws:
            threads = [threading.Thread(target=handshake) for _ in range(300)]
            for t in threads:
                t.start()
            echoed = 0
            while any(t.is_alive() for t in threads):
                await ws.send(f"ping {echoed}")
                assert await asyncio.wait_for(ws.recv(), 10) == f"ping {echoed}"
                echoed += 1
            for t in threads:
                t.join()
            return echoed

    echoed = asyncio.run(run())
    assert results["fail"] == []
    assert results["ok"] == 300
    assert echoed >= 1


def test_self_signed_certificate_is_reused(fresh_server, tmp_path):
    a = fresh_server("--echo", "--tls-self-signed", data_dir=str(tmp_path))
    first = asyncio.run(peer_cert(a.port, tmp_path / "tls" / "cert.pem"))
    key_mode = os.stat(tmp_path / "tls" / "key.pem").st_mode & 0o777
    a.stop()
    b = fresh_server("--echo", "--tls-self-signed", data_dir=str(tmp_path))
    assert asyncio.run(peer_cert(b.port, tmp_path / "tls" / "cert.pem")) == first
    assert key_mode == 0o600
    assert any("self-signed" in l for l in a.log)


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI missing")
def test_sighup_reloads_the_certificate_without_dropping_connections(fresh_server, tmp_path):
    live = tmp_path / "live"
    cert, key = make_cert(live)
    s = fresh_server("--echo", "--tls-cert", str(cert), "--tls-key", str(key))

    old_copy = tmp_path / "old.pem"
    shutil.copy(cert, old_copy)

    async def run():
        old = await peer_cert(s.port, cert)
        async with websockets.connect(f"wss://127.0.0.1:{s.port}/v1/echo", ssl=ssl.create_default_context(cafile=str(cert))) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            # A broken file first: the reload is refused and the old certificate stays in service.
            cert.write_text("not a certificate")
            seen = len(s.log)
            s.proc.send_signal(signal.SIGHUP)
            seen = s.wait_log("TLS reload failed", after=seen)
            assert await peer_cert(s.port, old_copy) == old
            # Then a good pair: new connections get it.
            make_cert(tmp_path / "next")
            shutil.copy(tmp_path / "next" / "cert.pem", cert)
            shutil.copy(tmp_path / "next" / "key.pem", key)
            s.proc.send_signal(signal.SIGHUP)
            s.wait_log("TLS certificate reloaded", after=seen)
            assert await peer_cert(s.port, cert) != old
            # The connection made before both reloads is untouched.
            await ws.send("after")
            assert await ws.recv() == "after"
    asyncio.run(run())
    assert s.proc.poll() is None
    s.stop()
    log = "".join(s.log)
    assert "TLS reload failed" in log
    assert "TLS certificate reloaded" in log


def start_fails(*args):
    p = subprocess.run([BIN, "serve", "--port", "0", "--data-dir", args[0], *args[1:]], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    return p.stderr


@pytest.mark.skipif(OPENSSL is None, reason="openssl CLI missing")
def test_bad_certificates_fail_at_start_with_a_clear_error(tmp_path):
    cert_a, key_a = make_cert(tmp_path / "a")
    cert_b, key_b = make_cert(tmp_path / "b")
    rsa_cert, rsa_key = make_cert(tmp_path / "rsa", key_type="rsa")
    d = str(tmp_path / "data")
    err = start_fails(d, "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(key_a))
    assert "missing.pem" in err and "certificate" in err
    err = start_fails(d, "--tls-cert", str(cert_a), "--tls-key", str(key_b))
    assert "does not belong to the certificate" in err
    err = start_fails(d, "--tls-cert", str(cert_a), "--tls-key", str(rsa_key))
    assert "does not belong to the certificate" in err or "private key" in err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    err = start_fails(d, "--tls-cert", str(garbage), "--tls-key", str(key_a))
    assert "garbage.pem" in err
    err = start_fails(d, "--tls-cert", str(cert_a))
    assert "--tls-cert and --tls-key go together" in err
    err = start_fails(d, "--tls-port", "0")
    assert "--tls-port needs" in err


LOAD = os.environ.get("PARLEY_LOAD_BIN", str(Path(__file__).resolve().parents[2] / ".build" / "debug" / "parley-load"))


def test_our_client_over_wss_with_compression(tls_server):
    """ParleyClient (through parley-load): wss:// with the server's CA, permessage-deflate, chat
    with orders through the plain REST port; every delivery verified."""
    cert = str(Path(tls_server.data_dir) / "tls" / "cert.pem")
    before = metric(tls_server, "parley_ws_inflated_messages_total")
    r = subprocess.run([LOAD, "echo", "--url", f"wss://127.0.0.1:{tls_server.tls_port}/v1/echo", "--tls-ca", cert,
                        "--compression", "--connections", "10", "--size", "2000", "--warmup", "0.2", "--duration", "1"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "errors: 0" in r.stdout
    r = subprocess.run([LOAD, "chat", "--url", f"wss://127.0.0.1:{tls_server.tls_port}/v1/ws", "--tls-ca", cert, "--compression",
                        "--rest-port", str(tls_server.port), "--secrets", str(Path(tls_server.data_dir) / "secrets.json"),
                        "--customers", "20", "--agents", "2", "--total-rate", "40", "--size", "400", "--orders",
                        "--warmup", "0.5", "--duration", "1.5"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: PASS" in r.stdout
    assert metric(tls_server, "parley_ws_inflated_messages_total") > before  # the client really compressed


def test_our_client_refuses_an_untrusted_certificate(tls_server):
    r = subprocess.run([LOAD, "connect", "--url", f"wss://127.0.0.1:{tls_server.tls_port}/v1/echo", "--connections", "2",
                        "--duration", "0.5"], capture_output=True, text=True, timeout=60)
    assert "opened=0" in r.stdout and "failed=2" in r.stdout, r.stdout + r.stderr
    assert "certificate verification failed" in r.stdout, r.stdout

import socket, time
import pytest
from conftest import ServerProcess
from wsraw import read_http_response


def request(server, raw, timeout=5):
    s = server.connect()
    s.sendall(raw)
    r = read_http_response(s, timeout)
    s.close()
    return r


def test_healthz(echo_server):
    status, headers, body = request(echo_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    assert body == b'{"status":"ok"}'
    assert headers["content-type"] == "application/json"


def test_unknown_path_is_404_json(echo_server):
    status, _, body = request(echo_server, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404
    assert b'"code":"not_found"' in body


def test_wrong_method_is_405_with_allow(echo_server):
    status, headers, _ = request(echo_server, b"DELETE /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405
    assert headers["allow"] == "GET"


@pytest.mark.parametrize("raw", [b"HELLO\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
                                 b"\x00\x01\x02\r\n\r\n", b"GET /healthz HTTP/1.1\nHost: x\r\n\r\n"])
def test_garbage_is_400_and_closed(echo_server, raw):
    s = echo_server.connect()
    s.sendall(raw)
    status, headers, body = read_http_response(s)
    assert status == 400
    assert headers.get("connection") == "close"
    assert s.recv(10) == b""


def test_head_over_64k_is_431(echo_server):
    s = echo_server.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (70 * 1024))
    status, _, _ = read_http_response(s)
    assert status == 431


def test_body_over_1mib_is_413_before_upload(echo_server):
    s = echo_server.connect()
    s.sendall(b"PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n")
    status, _, _ = read_http_response(s)
    assert status == 413


def test_chunked_is_refused_with_501(echo_server):
    status, _, _ = request(echo_server, b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status == 501


def test_keep_alive_and_pipelining(echo_server):
    s = echo_server.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_http_response(s)[0] == 200
    assert read_http_response(s)[0] == 200
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, headers, _ = read_http_response(s)
    assert status == 200 and headers["connection"] == "close"
    assert s.recv(10) == b""


def test_request_split_into_single_bytes(echo_server):
    s = echo_server.connect()
    for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n":
        s.send(bytes([b]))
    assert read_http_response(s)[0] == 200


def test_incomplete_request_is_dropped_after_10s(echo_server):
    s = echo_server.connect(timeout=20)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    start = time.time()
    data = s.recv(100)
    elapsed = time.time() - start
    assert data == b""
    assert 9 <= elapsed <= 14, elapsed


def test_server_survives_garbage_flood(echo_server):
    import os
    for _ in range(50):
        s = echo_server.connect()
        s.sendall(os.urandom(4096))
        s.close()
    assert request(echo_server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200

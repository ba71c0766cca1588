"""Identity: generated secrets, POST /v1/tokens, parley token — verified by an independent JWT library."""
import json, os, stat, subprocess, time
import jwt
import pytest
from conftest import BIN, ServerProcess
from wsraw import read_http_response


def post(server, path, body, key=None, raw=None):
    s = server.connect()
    payload = raw if raw is not None else json.dumps(body).encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
    status, headers, data = read_http_response(s)
    s.close()
    return status, headers, json.loads(data) if data else None


@pytest.fixture(scope="module")
def server():
    s = ServerProcess()
    yield s
    s.stop()


def test_secrets_generated_on_first_start_0600_and_printed_once(tmp_path):
    d = str(tmp_path / "data")
    first = ServerProcess(data_dir=d)
    first.stop()
    out = first.proc.stdout.read()
    secrets = json.loads(open(os.path.join(d, "secrets.json")).read())
    assert f"PARLEY_API_KEY={secrets['apiKey']}" in out and f"PARLEY_JWT_SECRET={secrets['jwtSecret']}" in out
    assert stat.S_IMODE(os.stat(os.path.join(d, "secrets.json")).st_mode) == 0o600
    second = ServerProcess(data_dir=d)
    second.stop()
    assert "PARLEY_API_KEY" not in second.proc.stdout.read(), "printed only when generated"
    assert json.loads(open(os.path.join(d, "secrets.json")).read()) == secrets


def test_post_tokens_mints_a_verifiable_token(server):
    sec = server.secrets
    status, _, body = post(server, "/v1/tokens", {"sub": "u1", "role": "customer", "name": "Ann", "ttl": 120}, key=sec["apiKey"])
    assert status == 200, body
    claims = jwt.decode(body["token"], sec["jwtSecret"], algorithms=["HS256"])
    assert claims["sub"] == "u1" and claims["role"] == "customer" and claims["name"] == "Ann"
    assert abs(claims["exp"] - (time.time() + 120)) < 10
    status, _, body = post(server, "/v1/tokens", {"sub": "a1", "role": "agent"}, key=sec["apiKey"])
    assert jwt.decode(body["token"], sec["jwtSecret"], algorithms=["HS256"])["capacity"] == 5


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_post_tokens_without_the_api_key_is_401(server, key):
    status, headers, body = post(server, "/v1/tokens", {"sub": "u1", "role": "customer"}, key=key)
    assert status == 401 and body["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("raw,why", [
    (b"{not json", "body must be a JSON object"),
    (b"[1,2]", "body must be a JSON object"),
    (json.dumps({"role": "customer"}).encode(), "sub"),
    (json.dumps({"sub": "u", "role": "admin"}).encode(), "role"),
    (json.dumps({"sub": "u", "role": "customer", "ttl": "soon"}).encode(), "ttl"),
    (json.dumps({"sub": "u", "role": "customer", "ttl": 0}).encode(), "ttl"),
    (json.dumps({"sub": "u", "role": "customer", "ttl": True}).encode(), "ttl"),
    (json.dumps({"sub": "u", "role": "customer", "ttl": 1.5}).encode(), "ttl"),
    (json.dumps({"sub": "u", "role": "customer", "capacity": 3}).encode(), "capacity"),
])
def test_post_tokens_bad_input_is_400_with_a_clear_message(server, raw, why):
    status, _, body = post(server, "/v1/tokens", None, key=server.secrets["apiKey"], raw=raw)
    assert status == 400 and body["error"]["code"] == "invalid_request"
    assert why in body["error"]["message"]


def test_ttl_of_one_second_is_an_integer_not_a_boolean(server):
    status, _, body = post(server, "/v1/tokens", {"sub": "u1", "role": "customer", "ttl": 1}, key=server.secrets["apiKey"])
    assert status == 200, body


def test_pipelined_requests_behind_a_token_request_are_answered_in_order(server):
    key = server.secrets["apiKey"]
    body = json.dumps({"sub": "p", "role": "customer"}).encode()
    s = server.connect()
    s.sendall(f"POST /v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
              + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = read_http_response(s)
    second = read_http_response(s)
    assert first[0] == 200 and b"token" in first[2]
    assert second[0] == 200 and second[2] == b'{"status":"ok"}'


def test_parley_token_uses_the_same_secret(server):
    r = subprocess.run([BIN, "token", "--role", "agent", "--sub", "agent-9", "--capacity", "3", "--ttl", "60", "--data-dir", server.data_dir],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    claims = jwt.decode(r.stdout.strip(), server.secrets["jwtSecret"], algorithms=["HS256"])
    assert claims["sub"] == "agent-9" and claims["capacity"] == 3
    bad = subprocess.run([BIN, "token", "--role", "admin", "--sub", "x", "--data-dir", server.data_dir], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "role must be customer or agent" in bad.stderr


def test_secret_from_environment_wins(tmp_path):
    secret = "env-secret-" + "x" * 32
    s = ServerProcess(data_dir=str(tmp_path / "d"), env={"PARLEY_JWT_SECRET": secret, "PARLEY_API_KEY": "env-key"})
    try:
        status, _, body = post(s, "/v1/tokens", {"sub": "u", "role": "customer"}, key="env-key")
        assert status == 200
        assert jwt.decode(body["token"], secret, algorithms=["HS256"])["sub"] == "u"
    finally:
        s.stop()


def test_short_secret_is_a_clear_startup_error(tmp_path):
    r = subprocess.run([BIN, "serve", "--port", "0", "--data-dir", str(tmp_path / "d"), "--jwt-secret", "short"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "at least 32 bytes" in r.stderr

"""Transaction context over REST: orders stored in the log, the latest per user, across restarts."""
import json, signal, subprocess
import pytest
from conftest import BIN, ServerProcess
from wsraw import read_http_response


def call(server, method, path, body=None, key="__server__", raw=None):
    s = server.connect()
    key = server.secrets["apiKey"] if key == "__server__" else key
    payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    status, headers, data = read_http_response(s)
    s.close()
    return status, data


def order(oid, placed, total="12.30", **extra):
    o = {"placedAt": placed, "status": "paid", "total": total, "currency": "EUR",
         "items": [{"sku": "SKU-1", "name": "Kettle", "quantity": 1, "price": total}]}
    o.update(extra)
    return o


@pytest.fixture
def server(tmp_path):
    s = ServerProcess(data_dir=str(tmp_path / "data"))
    yield s
    s.stop(signal.SIGKILL)


def test_put_then_get_last_keeps_the_json_as_sent(server):
    raw = b'{"placedAt":"2026-11-20T09:00:00Z","status":"paid","total":12.30,"currency":"EUR","items":[{"name":"Kettle","quantity":1}],"metadata":{"channel":"ios"}}'
    status, body = call(server, "PUT", "/v1/users/u1/orders/o-1", raw=raw)
    assert status == 201
    assert json.loads(body)["id"] == "o-1"
    status, body = call(server, "GET", "/v1/users/u1/orders/last")
    assert status == 200
    assert b'"total":12.30' in body, "amounts keep their text"
    o = json.loads(body)
    assert o["id"] == "o-1" and o["metadata"] == {"channel": "ios"}
    # Replacing the same order is 200, not 201.
    status, _ = call(server, "PUT", "/v1/users/u1/orders/o-1", order("o-1", "2026-11-20T09:00:00Z", status="refunded"))
    assert status == 200
    assert json.loads(call(server, "GET", "/v1/users/u1/orders/last")[1])["status"] == "refunded"


def test_last_means_latest_placed_at_not_latest_written(server):
    assert call(server, "PUT", "/v1/users/u2/orders/new", order("new", "2026-11-22T10:00:00Z"))[0] == 201
    assert call(server, "PUT", "/v1/users/u2/orders/old", order("old", "2026-01-01T10:00:00.250+01:00"))[0] == 201
    assert json.loads(call(server, "GET", "/v1/users/u2/orders/last")[1])["id"] == "new"
    # Other users are separate.
    assert call(server, "GET", "/v1/users/u3/orders/last")[0] == 404


def test_orders_survive_restart_and_kill9(tmp_path):
    d = str(tmp_path / "data")
    s = ServerProcess(data_dir=d)
    for i in range(20):
        assert call(s, "PUT", f"/v1/users/u{i % 4}/orders/o{i}", order(f"o{i}", f"2026-11-{i + 1:02d}T00:00:00Z"))[0] == 201
    assert s.stop(signal.SIGTERM) == 0
    s = ServerProcess(data_dir=d)
    assert json.loads(call(s, "GET", "/v1/users/u3/orders/last")[1])["id"] == "o19"
    assert call(s, "PUT", "/v1/users/u9/orders/z", order("z", "2026-11-23T00:00:00Z"))[0] == 201  # acknowledged...
    s.stop(signal.SIGKILL)  # ...then the process dies at once
    s = ServerProcess(data_dir=d)
    try:
        assert json.loads(call(s, "GET", "/v1/users/u9/orders/last")[1])["id"] == "z"
        assert json.loads(call(s, "GET", "/v1/users/u0/orders/last")[1])["id"] == "o16"
    finally:
        s.stop(signal.SIGKILL)
    v = subprocess.run([BIN, "log", "verify", d + "/log"], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and "21 records" in v.stdout


@pytest.mark.parametrize("body,why", [
    ({"placedAt": "yesterday", "status": "paid", "total": 1, "currency": "EUR", "items": []}, "placedAt"),
    ({"placedAt": "2026-11-20T09:00:00Z", "total": 1, "currency": "EUR", "items": []}, "status"),
    ({"placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": "1,5", "currency": "EUR", "items": []}, "total"),
    ({"placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": 1, "currency": "euro", "items": []}, "currency"),
    ({"placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": 1, "currency": "EUR"}, "items"),
    ({"placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": 1, "currency": "EUR", "items": [{"name": "x", "quantity": 0}]}, "items[0]"),
    ({"placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": 1, "currency": "EUR", "items": [{"name": "x", "quantity": True}]}, "items[0]"),
    ({"placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": True, "currency": "EUR", "items": []}, "total"),
    ({"placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": 1, "currency": "EUR", "items": [], "metadata": {"k": "v" * 5000}}, "metadata"),
    ({"id": "other", "placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": 1, "currency": "EUR", "items": []}, "match the path"),
])
def test_bad_orders_are_400_and_nothing_is_stored(server, body, why):
    status, data = call(server, "PUT", "/v1/users/u5/orders/o5", body)
    assert status == 400
    err = json.loads(data)["error"]
    assert err["code"] == "invalid_request" and why in err["message"]
    assert call(server, "GET", "/v1/users/u5/orders/last")[0] == 404


def test_orders_need_the_api_key(server):
    assert call(server, "PUT", "/v1/users/u1/orders/o1", order("o1", "2026-11-20T09:00:00Z"), key=None)[0] == 401
    assert call(server, "GET", "/v1/users/u1/orders/last", key="nope")[0] == 401


def test_malformed_json_and_oversize(server):
    status, data = call(server, "PUT", "/v1/users/u1/orders/o1", raw=b"{oops")
    assert status == 400 and json.loads(data)["error"]["code"] == "invalid_request"
    big = order("o1", "2026-11-20T09:00:00Z", metadata={})
    big["items"] = [{"name": "x" * 1000, "quantity": 1}] * 70
    assert call(server, "PUT", "/v1/users/u1/orders/o1", big)[0] == 413

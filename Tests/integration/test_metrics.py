"""GET /metrics in the Prometheus text format, read by the official Python parser."""
import asyncio, json, time
import websockets
from prometheus_client.parser import text_string_to_metric_families
from conftest import ServerProcess
from wsraw import read_http_response


def scrape(server):
    s = server.connect()
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = read_http_response(s)
    s.close()
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for fam in text_string_to_metric_families(body.decode()):
        for smp in fam.samples:
            key = smp.name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(smp.labels.items())) + "}" if smp.labels else "")
            samples[key] = smp.value
    return samples


def test_metrics_count_connections_http_websocket_and_log(tmp_path):
    srv = ServerProcess("--echo", data_dir=str(tmp_path / "d"))
    try:
        before = scrape(srv)
        assert before["parley_connections_open"] >= 1  # the scrape itself
        key = srv.secrets["apiKey"]
        body = json.dumps({"placedAt": "2026-11-20T09:00:00Z", "status": "paid", "total": "1.00", "currency": "EUR", "items": []}).encode()
        s = srv.connect()
        s.sendall(f"PUT /v1/users/u/orders/o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        assert read_http_response(s)[0] == 201

        async def echo():
            async with websockets.connect(srv.url + "/v1/echo") as ws:
                for i in range(25):
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
        asyncio.run(echo())
        m = scrape(srv)
        assert m["parley_ws_messages_received_total"] >= 25
        assert m["parley_ws_messages_sent_total"] >= 25
        assert m["parley_log_appends_total"] >= 1
        assert m["parley_log_fsync_seconds_count"] >= 1
        assert m["parley_log_batch_records_count"] >= 1
        assert m["parley_log_durable_offset"] >= 1
        assert m["parley_http_responses_total{status=201}"] >= 1
        assert m["parley_http_responses_total{status=101}"] >= 1
        assert m["parley_connections_accepted_total"] >= before["parley_connections_accepted_total"] + 3
    finally:
        srv.stop()

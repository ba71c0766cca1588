"""The load tool against the real server: a short echo run must move messages with no errors."""
import json, os, subprocess
from conftest import ROOT, ServerProcess

LOAD = os.environ.get("PARLEY_LOAD_BIN", str(ROOT / ".build" / "debug" / "parley-load"))


def test_echo_smoke_run(echo_server, tmp_path):
    out = tmp_path / "echo.json"
    r = subprocess.run([LOAD, "echo", "--url", f"{echo_server.url}/v1/echo", "--connections", "20", "--inflight", "2",
                        "--warmup", "0.2", "--duration", "1", "--server-pid", str(echo_server.proc.pid), "--json", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "msg/s" in r.stdout
    s = json.loads(out.read_text())
    assert s["connections"] == 20
    assert s["errors"] == 0
    assert s["messages"] > 100
    assert s["latencyMicros"]["p50"] > 0
    assert s["serverCPUPercent"] is not None


def test_refuses_non_loopback_target():
    r = subprocess.run([LOAD, "echo", "--url", "ws://10.1.2.3:80/v1/echo", "--duration", "1"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert "loopback" in (r.stdout + r.stderr)


def test_validates_arguments():
    r = subprocess.run([LOAD, "echo", "--url", "http://x", "--duration", "1"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    r = subprocess.run([LOAD, "echo", "--url", "ws://127.0.0.1:1/v1/echo", "--inflight", "0"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0

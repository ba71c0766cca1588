"""The load tool against the real server: short echo, chat and reconnect runs, verified end to end."""
import json, os, signal, subprocess, time
from pathlib import Path
from conftest import ROOT, ServerProcess, metric, wait_for, wait_for_phase

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


def run_load(*args, timeout=120):
    return subprocess.run([LOAD, *args], capture_output=True, text=True, timeout=timeout)


def test_chat_smoke_run_verifies_every_delivery(fresh_server, tmp_path):
    srv = fresh_server()
    out, page = tmp_path / "chat.json", tmp_path / "chat.html"
    r = run_load("chat", "--url", f"{srv.url}/v1/ws", "--secrets", str(Path(srv.data_dir) / "secrets.json"), "--orders",
                 "--customers", "30", "--agents", "3", "--rate", "4", "--warmup", "0.5", "--duration", "2",
                 "--server-pid", str(srv.proc.pid), "--json", str(out), "--html", str(page))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: PASS" in r.stdout
    s = json.loads(out.read_text())
    assert s["customers"] == 30 and s["agents"] == 3
    assert s["connected"] == 33 and s["assigned"] == 30
    assert s["sent"] > 100 and abs(s["acked"] - s["sent"]) <= 10  # the window cuts a few in flight; none stays unacked (lost.unacknowledgedAtEnd)
    # Every customer message reached its agent, and each one was answered.
    assert s["deliveredCustomerToAgent"] > 100 and s["deliveredAgentToCustomer"] > 100
    assert all(v == 0 for v in s["violations"].values()), s["violations"]
    assert all(v == 0 for v in s["lost"].values()), s["lost"]
    assert all(v == 0 for v in s["errors"].values()), s["errors"]
    for k in ("ack", "customerToAgent", "agentToCustomer"):
        assert 0 < s["latencyMs"][k]["p50"] <= s["latencyMs"][k]["p99"] <= s["latencyMs"][k]["max"]
    assert s["serverCPUPercent"] is not None
    assert s["resolved"] == 30, "agents resolve what they were given at the end"
    html = page.read_text()
    assert html.count("<svg") >= 2 and "customer → agent" in html and "<script" not in html
    assert s["orders"] is True and s["violations"]["orderMismatches"] == 0, "every conversation opened on the tool's order"


def test_reconnect_storm_resumes_without_loss(fresh_server, tmp_path):
    srv = fresh_server()
    out = tmp_path / "reconnect.json"
    r = run_load("reconnect", "--url", f"{srv.url}/v1/ws", "--jwt-secret", srv.secrets["jwtSecret"],
                 "--customers", "30", "--agents", "3", "--total-rate", "150", "--warmup", "0.3", "--duration", "3",
                 "--drops", "15", "--down-ms", "200", "--drop-agents", "--json", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    s = json.loads(out.read_text())
    assert s["reconnects"] >= 20 and s["resumed"] >= s["reconnects"] - 3
    assert all(v == 0 for v in s["violations"].values()), s["violations"]
    assert all(v == 0 for v in s["lost"].values()), s["lost"]
    assert s["latencyMs"]["resume"]["count"] > 0


def test_chat_tokens_through_the_rest_api(fresh_server, tmp_path):
    srv = fresh_server()
    r = run_load("chat", "--url", f"{srv.url}/v1/ws", "--api-key", srv.secrets["apiKey"],
                 "--customers", "5", "--agents", "1", "--rate", "2", "--warmup", "0", "--duration", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: PASS" in r.stdout


def test_chat_fails_loudly_when_the_server_goes_away(fresh_server, tmp_path):
    """A server killed mid-run: the tool counts the lost connections and exits 2 (FAIL), with a summary."""
    srv = fresh_server()
    out = tmp_path / "dead.json"
    p = subprocess.Popen([LOAD, "chat", "--url", f"{srv.url}/v1/ws", "--jwt-secret", srv.secrets["jwtSecret"],
                          "--customers", "10", "--agents", "2", "--rate", "5", "--warmup", "0", "--duration", "4",
                          "--drain", "1", "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Killed mid-run: once all 12 users have a session (a scrape counts every session opened before it).
    wait_for(lambda: metric(srv, "parley_chat_sessions") >= 12, timeout=60, what="12 chat sessions")
    srv.stop(signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 2, stdout + stderr
    assert "verdict: FAIL" in stdout
    s = json.loads(out.read_text())
    assert s["errors"]["unexpectedCloses"] >= 12


def test_chat_needs_credentials():
    r = run_load("chat", "--url", "ws://127.0.0.1:1/v1/ws", "--rate", "1", timeout=30)
    assert r.returncode != 0
    assert "--jwt-secret" in r.stdout + r.stderr


def test_ctrl_c_prints_the_summary_so_far(echo_server, tmp_path):
    out = tmp_path / "int.json"
    p = subprocess.Popen([LOAD, "echo", "--url", f"{echo_server.url}/v1/echo", "--connections", "5", "--warmup", "0",
                          "--duration", "60", "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Interrupted in the measured phase, once echoes flow in it: the tool announces the phase on
    # stderr, and it sends each connection's next message only after the echo of its last, so 100
    # echoes sent by the server after the announcement means the tool has counted most of them.
    early = wait_for_phase(p, "measure")
    sent0 = metric(echo_server, "parley_ws_messages_sent_total")
    wait_for(lambda: metric(echo_server, "parley_ws_messages_sent_total") >= sent0 + 100, timeout=60, what="100 echoes")
    p.send_signal(signal.SIGINT)
    stdout, stderr = p.communicate(timeout=30)
    stderr = "".join(early) + stderr
    assert p.returncode == 0, stdout + stderr
    s = json.loads(out.read_text())
    assert s["interrupted"] is True and s["messages"] > 0 and s["durationSeconds"] < 30


def test_a_stalled_server_shows_in_the_percentiles(fresh_server, tmp_path):
    """Coordinated omission, end to end, through the tool's own recording: the server is stopped
    (SIGSTOP) for a second in the middle of a measured chat run. parley-load times every message
    from its scheduled send time, so every send due during the stall carries the stall: the ack
    max is at least most of it and the p99 is hundreds of milliseconds. A closed-loop tool (each
    customer waiting for its ack before the next send) would record the stall once per customer:
    2 samples of ~1,200, under the p99."""
    srv = fresh_server()
    out = tmp_path / "stall.json"
    p = subprocess.Popen([LOAD, "chat", "--url", f"{srv.url}/v1/ws", "--jwt-secret", srv.secrets["jwtSecret"],
                          "--customers", "2", "--agents", "1", "--total-rate", "200", "--reply-ratio", "0",
                          "--warmup", "0", "--duration", "6", "--drain", "10", "--json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Once messages flow, the run is measuring (--warmup 0): stall the server for a second.
        wait_for(lambda: metric(srv, 'parley_chat_events_total{type="message"}') >= 100, timeout=60, what="100 messages")
        srv.proc.send_signal(signal.SIGSTOP)
        time.sleep(1.0)
        srv.proc.send_signal(signal.SIGCONT)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        srv.proc.send_signal(signal.SIGCONT)
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, stdout + stderr
    assert "verdict: PASS" in stdout, "nothing is lost across the stall"
    ack = json.loads(out.read_text())["latencyMs"]["ack"]
    assert ack["max"] >= 900, ack
    assert ack["p99"] >= 500, ack

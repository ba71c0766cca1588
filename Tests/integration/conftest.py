"""Starts the real `parley` binary for the integration tests and talks to it over real sockets."""
import json, os, re, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "Protocol" / "vectors"
BIN = os.environ.get("PARLEY_BIN", str(ROOT / ".build" / "debug" / "parley"))


class ServerProcess:
    def __init__(self, *args, env=None, data_dir=None):
        import tempfile
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="parley-test-")
        if "--data-dir" not in args:
            args = (*args, "--data-dir", self.data_dir)
        self.args = [BIN, "serve", "--port", "0", "--log-level", "info", *args]
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(self.args, stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=e, text=True)
        self.port = None
        self.log = []
        deadline = time.time() + 20
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"http\.port=(\d+)", line)
            if m:
                self.port = int(m.group(1))
                t = re.search(r"tls\.port=(\d+)", line)
                self.tls_port = int(t.group(1)) if t else None
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("server did not start: " + "".join(self.log))

    @property
    def secrets(self):
        return json.loads((Path(self.data_dir) / "secrets.json").read_text())

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}"

    def connect(self, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def echo_server():
    s = ServerProcess("--echo", "--max-message-bytes", "65536")
    yield s
    s.stop()


@pytest.fixture
def fresh_server():
    servers = []
    def start(*args, **kw):
        s = ServerProcess(*args, **kw)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop(signal.SIGKILL)


def metric(server, name):
    """A counter or gauge from the server's /metrics (0 if absent). Loop counters reach it on the
    loops' 250 ms tick: wait ~0.6 s after the traffic."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def jsonl(name):
    return [json.loads(l) for l in (VECTORS / name).read_text().splitlines() if l.strip()]

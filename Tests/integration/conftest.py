"""Starts the real `parley` binary for the integration tests and talks to it over real sockets."""
import json, os, re, signal, socket, subprocess, sys, threading, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "Protocol" / "vectors"
BIN = os.environ.get("PARLEY_BIN", str(ROOT / ".build" / "debug" / "parley"))


# The readiness mode each server said it started in ("listening ... readiness=epoll"); written
# to $PARLEY_TEST_MODES_FILE at the end, so scripts/test.sh can check a pass ran in its mode.
STARTED_MODES = []
# Every server the suite started: any still running when the session ends is killed, so a test
# that fails before its own clean-up leaves no process behind.
STARTED = []


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
        STARTED.append(self.proc)
        self.port = None
        self.log = []
        self._logged = threading.Condition()
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
                r = re.search(r"readiness=(\w+)", line)
                STARTED_MODES.append(r.group(1) if r else "?")
                break
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("server did not start: " + "".join(self.log))
        # Keep reading its log, so the pipe never fills and tests can wait for a line.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            with self._logged:
                self.log.append(line)
                self._logged.notify_all()

    def wait_log(self, text, timeout=30, after=0):
        """Waits for a log line containing `text` among lines number `after` onwards; returns
        the index after it (pass it as `after` to wait for the next one)."""
        deadline = time.monotonic() + timeout
        with self._logged:
            while True:
                for i in range(after, len(self.log)):
                    if text in self.log[i]:
                        return i + 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no log line with {text!r} within {timeout}s: {self.log[-5:]}")
                self._logged.wait(left)

    @property
    def secrets(self):
        # Given on the command line (a cluster's nodes share theirs), or generated into the data dir.
        if "--jwt-secret" in self.args and "--api-key" in self.args:
            return {"jwtSecret": self.args[self.args.index("--jwt-secret") + 1], "apiKey": self.args[self.args.index("--api-key") + 1]}
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
    """A counter or gauge from the server's /metrics (0 if absent). A scrape counts everything the
    server did before the request arrived."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def wait_for_phase(proc, phase):
    """Reads a running parley-load's stderr until it announces `phase` (off a terminal it writes
    `phase: NAME` as each starts); returns the lines read, for the failure report."""
    early = []
    for line in proc.stderr:
        early.append(line)
        if line.startswith(f"phase: {phase}"):
            return early
    raise AssertionError(f"parley-load never reached its {phase} phase: " + "".join(early))


def jsonl(name):
    return [json.loads(l) for l in (VECTORS / name).read_text().splitlines() if l.strip()]


def wait_for(check, timeout=30.0, what="condition"):
    """Polls `check()` until it returns something true, and returns that; for states no message
    announces (a file, another process's progress). Fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.02)


class PowerCut:
    """Tests/integration/powercut/powercut.c, preloaded into a process: beside its data dir it
    keeps exactly what a power cut would leave (fsynced bytes, names made durable by a directory
    fsync), so a test can kill -9 it and start again from that."""

    def __init__(self, lib):
        self.lib = lib

    def env(self, data_dir, shadow_dir):
        return {"LD_PRELOAD": self.lib, "PARLEY_POWERCUT_DIR": str(data_dir), "PARLEY_POWERCUT_SHADOW": str(shadow_dir)}

    @staticmethod
    def after(shadow_dir):
        """The data dir the machine comes back with. Checks that the shim ran and saw syncs."""
        stats = (Path(shadow_dir) / "powercut.log").read_text()
        assert int(re.search(r"syncs=(\d+)", stats).group(1)) > 0, stats
        return str(Path(shadow_dir) / "data")


@pytest.fixture(scope="session")
def powercut(tmp_path_factory):
    lib = tmp_path_factory.mktemp("powercut") / "powercut.so"
    src = ROOT / "Tests" / "integration" / "powercut" / "powercut.c"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-Wall", "-Wno-format-truncation", "-o", str(lib), str(src), "-ldl"], check=True)
    return PowerCut(str(lib))


def pytest_sessionfinish(session, exitstatus):
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()
    out = os.environ.get("PARLEY_TEST_MODES_FILE")
    if out:
        Path(out).write_text(json.dumps(STARTED_MODES))

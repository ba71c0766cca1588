"""A real three-server NATS JetStream cluster (the pinned nats-server from .venv) on loopback,
each server syncing every write (`sync_interval: always`), for the cluster-mode tests."""
import json, os, re, socket, subprocess, tempfile, threading, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NATS_BIN = str(ROOT / ".venv" / "bin" / "nats-server")


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class NATSServer:
    def __init__(self, name, port, cluster_port, monitor_port, routes, store):
        self.name, self.port, self.cluster_port, self.monitor_port = name, port, cluster_port, monitor_port
        self.store = store
        conf = Path(store) / f"{name}.conf"
        conf.write_text(
            f'server_name: {name}\nhost: 127.0.0.1\nport: {port}\nhttp_port: {monitor_port}\n'
            f'jetstream {{ store_dir: "{store}/{name}", sync_interval: always }}\n'
            f'cluster {{ name: parley, host: 127.0.0.1, port: {cluster_port}, '
            f'routes: [{", ".join(f"nats-route://127.0.0.1:{r}" for r in routes)}] }}\n')
        self.conf = conf
        self.log = []
        self.start()

    def start(self):
        self.proc = subprocess.Popen([NATS_BIN, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()

    def _drain(self, proc):
        for line in proc.stderr:
            self.log.append(line)

    @property
    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def jsz(self, **q):
        qs = "&".join(f"{k}={v}" for k, v in q.items())
        return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{self.monitor_port}/jsz?{qs}", timeout=5).read())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class NATSCluster:
    def __init__(self, size=3):
        self.dir = tempfile.mkdtemp(prefix="parley-nats-")
        ports = free_ports(3 * size)
        client, route, monitor = ports[:size], ports[size:2 * size], ports[2 * size:]
        self.servers = [NATSServer(f"nats{i + 1}", client[i], route[i], monitor[i], route, self.dir) for i in range(size)]
        self.wait_ready()

    @property
    def urls(self):
        return ",".join(s.url for s in self.servers)

    def wait_ready(self, timeout=60):
        """Until a JetStream meta leader is elected and every running server sees it."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                leaders = {s.jsz().get("meta_cluster", {}).get("leader") for s in self.servers if s.proc.poll() is None}
                if len(leaders) == 1 and None not in leaders and "" not in leaders:
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError("the NATS cluster elected no JetStream leader: " + "".join(self.servers[0].log[-10:]))

    def stream_leader(self, stream="PARLEY"):
        for s in self.servers:
            if s.proc.poll() is not None:
                continue
            try:
                info = s.jsz(streams="true")
            except Exception:
                continue
            for acc in info.get("account_details", []):
                for st in acc.get("stream_detail", []):
                    if st.get("name") == stream and st.get("cluster", {}).get("leader"):
                        return st["cluster"]["leader"]
        return None

    def stop(self):
        for s in self.servers:
            s.stop()

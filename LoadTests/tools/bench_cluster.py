"""Embedded vs cluster, back to back, and failover times. Called by LoadTests/bench-cluster.sh.

Servers (one parley, or three NATS JetStream servers and three parley nodes) share CPU 0;
parley-load runs on CPU 1. Server CPU is read from /proc for every server process (all of them in
cluster mode), over the measured run. Failover: a probe sends one message after another (each
waiting for its ack, retrying `unavailable` with the same clientMsgId) while a machine is killed;
the longest wait for an ack around the kill is the stall."""
import asyncio, json, os, signal, statistics as st, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))
os.environ.setdefault("PARLEY_BIN", str(ROOT / ".build" / "release" / "parley"))
from conftest import ServerProcess  # noqa: E402
from natscluster import NATSCluster  # noqa: E402
from chatclient import Client  # noqa: E402

LOAD = str(ROOT / ".build" / "release" / "parley-load")
SECRET = "bench-cluster-jwt-secret-0123456789abcdef"
KEY = "bench-cluster-api-key-0123456789"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def pin(pid, cpu):
    # Every thread of it (-a): servers start their threads before they can be pinned.
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], stdout=subprocess.DEVNULL, check=False)


def start_node(nats, name, data=None):
    args = ["--cluster", nats.urls, "--node", name, "--jwt-secret", SECRET, "--api-key", KEY, "--loops", "1"]
    if data:
        args += ["--data-dir", data]
    n = ServerProcess(*args)
    pin(n.proc.pid, 0)
    return n


def role(n):
    import re
    roles = re.findall(r"cluster\.role=(\w+)", "".join(n.log))
    return roles[-1] if roles else "follower"


def load(urls, pids, customers, agents, rate, duration, out):
    secrets = Path(tempfile.mkdtemp()) / "secrets.json"
    secrets.write_text(json.dumps({"jwtSecret": SECRET, "apiKey": KEY}))
    cmd = ["taskset", "-c", "1", LOAD, "chat", "--url", urls[0], "--secrets", str(secrets), "--customers", str(customers),
           "--agents", str(agents), "--total-rate", str(rate), "--orders", "--warmup", "2", "--duration", str(duration), "--json", out]
    if len(urls) > 1:
        cmd += ["--urls", ",".join(urls[1:])]
    before = {p: cpu_seconds(p) for p in pids}
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    wall = time.monotonic() - t0
    used = {p: cpu_seconds(p) - before[p] for p in pids}
    report = json.load(open(out))
    report["serverCPUAllPercent"] = 100 * sum(used.values()) / wall
    # The first pids are parley's (one node, or three), the rest NATS servers'.
    report["parleyCPUPercent"] = 100 * sum(used[p] for p in pids[:len(urls)]) / wall
    report["stdout"] = r.stdout[-3000:]
    return report


def embedded(customers, agents, rate, duration, out):
    s = ServerProcess("--jwt-secret", SECRET, "--api-key", KEY, "--loops", "1")
    pin(s.proc.pid, 0)
    try:
        return load([s.url + "/v1/ws"], [s.proc.pid], customers, agents, rate, duration, out)
    finally:
        s.stop(signal.SIGKILL)


class Cluster:
    """Three NATS servers and three parley nodes, all on CPU 0, with a writer chosen."""
    def __enter__(self):
        self.nats = NATSCluster(3)
        for s in self.nats.servers:
            pin(s.proc.pid, 0)
        self.nodes = [start_node(self.nats, f"n{i + 1}") for i in range(3)]
        deadline = time.time() + 30
        while not any(role(n) == "writer" for n in self.nodes) and time.time() < deadline:
            time.sleep(0.05)
        return self.nats, self.nodes

    def __exit__(self, *_):
        for n in self.nodes:
            n.stop(signal.SIGKILL)
        self.nats.stop()


def cluster(customers, agents, rate, duration, out):
    with Cluster() as (nats, nodes):
        pids = [n.proc.pid for n in nodes] + [s.proc.pid for s in nats.servers]
        return load([n.url + "/v1/ws" for n in nodes], pids, customers, agents, rate, duration, out)


async def probe(nodes, kill, seconds=12):
    """Sends messages one after another from a customer on a node that survives; kills at 4 s."""
    victim_box = {}
    survivors = [n for n in nodes]
    acks, t_kill = [], None
    c = None
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < seconds:
        if t_kill is None and time.monotonic() - start > 4:
            victim_box["v"] = kill()
            t_kill = time.monotonic()
        try:
            if c is None:
                target = next(x for x in survivors if x.proc.poll() is None and x is not victim_box.get("v"))
                c = await Client.open(target, "probe", secret=SECRET)
                opened = await c.request({"type": "conversation.open", "order": None}, timeout=30)
                conv = opened["conversation"]["id"]
            while True:
                r = await c.request({"type": "message.send", "conversation": conv, "clientMsgId": f"p{n}", "text": "x"}, timeout=30)
                if r["type"] == "ack":
                    break
                await asyncio.sleep(0.01)
            acks.append(time.monotonic())
            n += 1
        except Exception:
            c = None
            await asyncio.sleep(0.01)
    after = [a for a in acks if a > t_kill]
    stall = (after[0] - t_kill) if after else float("inf")
    gaps = [b - a for a, b in zip(acks, acks[1:])]
    return stall, max(gaps) if gaps else float("inf")


def failover(kind):
    with Cluster() as (nats, nodes):
        # The probe lives on a follower, so the writer can be killed under it.
        writer = next(n for n in nodes if role(n) == "writer")
        followers = [n for n in nodes if n is not writer]

        def kill():
            if kind == "writer":
                writer.stop(signal.SIGKILL)
                return writer
            if kind == "stream-leader":
                leader = nats.stream_leader()
                next(s for s in nats.servers if s.name == leader).kill()
                return None
            victim = followers[0]
            victim.stop(signal.SIGKILL)
            return victim

        # Killing a follower: the probe starts on it and moves to the other one.
        stall, worst = asyncio.run(probe(followers, kill))
        return stall, worst


def main():
    out = Path(sys.argv[1])
    customers, agents, rate, duration, rounds = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    rows = {"embedded": [], "cluster": []}
    for r in range(rounds):
        for mode, fn in (("embedded", embedded), ("cluster", cluster)):
            rep = fn(customers, agents, rate, duration, str(out / f"{mode}-r{r}.json"))
            rows[mode].append(rep)
            print(rep["stdout"], file=sys.stderr)
    kinds = ("writer", "stream-leader", "follower") if os.environ.get("FAILOVER", "1") != "0" else ()
    fo = {k: [failover(k) for _ in range(rounds)] for k in kinds}

    def med(rs, f):
        v = [f(x) for x in rs if f(x) is not None]
        return st.median(v) if v else float("nan")

    def lat(x, k, p):
        return x["latencyMs"].get(k, {}).get(p)

    def bad(x):
        return sum(x["violations"].values()) + sum(x["lost"].values())

    print(f"| mode | msgs/s sent (customers + agents' answers) | ack p50 / p99 / p99.9 ms | customer→agent p50 / p99 / p99.9 ms | server CPU % (all server processes / parley's) | violations + lost |")
    print("|---|---|---|---|---|---|")
    for mode, rs in rows.items():
        print(f"| {mode} ({len(rs)} rounds) | {med(rs, lambda x: x['messagesPerSecond']):,.0f} "
              f"| {med(rs, lambda x: lat(x, 'ack', 'p50')):.2f} / {med(rs, lambda x: lat(x, 'ack', 'p99')):.2f} / {med(rs, lambda x: lat(x, 'ack', 'p999')):.2f} "
              f"| {med(rs, lambda x: lat(x, 'customerToAgent', 'p50')):.2f} / {med(rs, lambda x: lat(x, 'customerToAgent', 'p99')):.2f} / {med(rs, lambda x: lat(x, 'customerToAgent', 'p999')):.2f} "
              f"| {med(rs, lambda x: x['serverCPUAllPercent']):.0f} / {med(rs, lambda x: x['parleyCPUPercent']):.0f} | {sum(bad(x) for x in rs)} |")
    e, c = rows["embedded"], rows["cluster"]
    print(f"\ncluster / embedded throughput: {med(c, lambda x: x['messagesPerSecond']) / med(e, lambda x: x['messagesPerSecond']):.2f}")
    print("\n| failover (kill -9) | next ack after the kill, median s | longest wait for an ack, median s |")
    print("|---|---|---|")
    for k, v in fo.items():
        print(f"| {k} | {st.median(s for s, _ in v):.2f} | {st.median(w for _, w in v):.2f} |")


if __name__ == "__main__":
    main()

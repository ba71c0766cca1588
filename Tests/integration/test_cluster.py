"""Cluster mode: three Parley nodes on a three-server NATS JetStream cluster (all real, on
loopback), one replicated stream. Customers and agents on different nodes chat as on one."""
import asyncio, json, os, signal, subprocess, urllib.error, urllib.request
import pytest
from conftest import ROOT, ServerProcess, metric, wait_for
from chatclient import Client, run, eventually
from natscluster import NATSCluster

SECRET = "cluster-test-jwt-secret-0123456789abcdef"
KEY = "cluster-test-api-key-0123456789"
DEBUG = bool(os.environ.get("PARLEY_CLUSTER_DEBUG"))


def node(nats, name, *extra):
    return ServerProcess("--cluster", nats.urls, "--node", name, "--jwt-secret", SECRET, "--api-key", KEY,
                         "--lease-ttl", "1", "--presence-grace", "2", *extra, *(("--log-level", "debug") if DEBUG else ()))


@pytest.fixture(scope="module")
def cluster():
    nats = NATSCluster(3)
    nodes = []
    try:
        nodes = [node(nats, f"n{i + 1}") for i in range(3)]
        # One of them writes once the lease is taken; the stream may still be electing its leader
        # (on a loaded machine a PubAck can then take longer than the append timeout, and appends
        # are refused 503 `unavailable`, as a client is told to retry). The tests start once an
        # append through every node has been confirmed.
        wait_for(lambda: any("cluster.role=writer" in l for n in nodes for l in n.log), what="a writer")
        wait_for(lambda: all(accepts_writes(n) for n in nodes), timeout=120, what="the stream confirming an append through every node")
        yield nats, nodes
    finally:
        for n in nodes:
            n.stop(signal.SIGKILL)
        nats.stop()


PROBE_ORDER = {"placedAt": "2026-01-01T00:00:00Z", "status": "placed", "total": "1.00", "currency": "EUR", "items": [{"name": "Probe", "quantity": 1}]}


def accepts_writes(server):
    """Whether an append through this node is confirmed by the stream now (503: not yet)."""
    try:
        status, _ = put_order(server, "cluster-probe", f"probe-{server.port}", PROBE_ORDER)
        return status in (200, 201)
    except urllib.error.HTTPError as e:
        if e.code == 503:
            return False
        raise


def put_order(server, user, order, body):
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/v1/users/{user}/orders/{order}", data=json.dumps(body).encode(),
                                 method="PUT", headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return r.status, json.loads(r.read())


def test_parley_load_spreads_over_the_nodes_and_every_delivery_checks_out(cluster, tmp_path):
    """parley-load with --urls: customers and agents on all three nodes, orders put over REST,
    every delivery verified by the tool (in order, none lost or doubled) across nodes. First in
    the module: the tool expects a server with none of its users' conversations open already
    (it resolves all of its own at the end, so the tests after it start clean)."""
    nats, nodes = cluster
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"jwtSecret": SECRET, "apiKey": KEY}))
    before = [metric(n, "parley_ws_messages_received_total") for n in nodes]
    out = tmp_path / "load.json"
    load = os.environ.get("PARLEY_LOAD_BIN", str(ROOT / ".build" / "debug" / "parley-load"))
    r = subprocess.run([load, "chat", "--url", f"{nodes[0].url}/v1/ws", "--urls", ",".join(f"{n.url}/v1/ws" for n in nodes[1:]),
                        "--secrets", str(secrets), "--orders", "--customers", "30", "--agents", "3", "--rate", "3",
                        "--warmup", "0.5", "--duration", "2", "--json", str(out)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: PASS" in r.stdout, r.stdout
    s = json.loads(out.read_text())
    assert s["connected"] == 33 and s["assigned"] == 30
    assert s["deliveredCustomerToAgent"] > 50 and s["deliveredAgentToCustomer"] > 50
    assert all(v == 0 for v in s["violations"].values()), s["violations"]
    assert all(v == 0 for v in s["lost"].values()), s["lost"]
    after = [metric(n, "parley_ws_messages_received_total") for n in nodes]
    assert all(a - b > 20 for a, b in zip(after, before)), (before, after)


def test_a_customer_on_one_node_chats_with_an_agent_on_another(cluster):
    nats, (n1, n2, n3) = cluster
    # The order goes in on one node; the conversation opens on another, straight on that order.
    status, _ = put_order(n3, "cust-x", "o-77", {"placedAt": "2026-12-01T10:00:00Z", "status": "shipped", "total": "42.00", "currency": "EUR", "items": [{"name": "Lamp", "quantity": 1, "price": "42.00"}]})
    assert status == 201

    async def go():
        agent = await Client.open(n2, "agent-x", role="agent", name="Ada")
        assert agent.welcome["type"] == "welcome"
        ack = await agent.request({"type": "agent.status", "status": "available"})
        assert ack["type"] == "ack"
        cust = await Client.open(n1, "cust-x", name="Cy")
        assert cust.welcome["epoch"] == agent.welcome["epoch"], "one stream, one epoch on every node"
        opened = await cust.request({"type": "conversation.open"}, timeout=20)
        assert opened["type"] == "conversation.opened", opened
        conv = opened["conversation"]["id"]
        assert opened["conversation"]["order"]["id"] == "o-77"
        # The agent on n2 is routed the conversation and sees the order before the first word.
        assigned = await agent.until(lambda: any(e["type"] == "conversation.assigned" and e["conversation"] == conv for e in agent.events),
                                     timeout=20, what="assignment on n2")
        first = [e for e in agent.events if e["conversation"] == conv]
        assert first[0]["type"] == "conversation.created" and first[0]["order"]["id"] == "o-77"
        ack = await cust.request({"type": "message.send", "conversation": conv, "clientMsgId": "c1", "text": "where is my parcel?"}, timeout=20)
        assert ack["type"] == "ack" and ack["seq"] == 3, ack
        await agent.caught_up(conv, 3, timeout=20)
        reply = await agent.request({"type": "message.send", "conversation": conv, "clientMsgId": "a1", "text": "on its way"}, timeout=20)
        assert reply["type"] == "ack" and reply["seq"] == 4
        await cust.caught_up(conv, 4, timeout=20)
        # A retried clientMsgId gets the same ack and stores nothing.
        again = await cust.request({"type": "message.send", "conversation": conv, "clientMsgId": "c1", "text": "where is my parcel?"}, timeout=20)
        assert (again["seq"], again["ts"]) == (ack["seq"], ack["ts"])
        assert cust.seqs(conv) == [1, 2, 3, 4] and agent.seqs(conv) == [1, 2, 3, 4]
        # Typing crosses nodes and is never stored.
        await cust.send({"type": "typing", "conversation": conv, "active": True})
        t = await agent.wait(lambda m: m["type"] == "typing", timeout=20)
        assert t["active"] is True and t["user"]["id"] == "cust-x"
        # A third node, a second agent session: the same conversation, resumed exactly.
        other = await Client.open(n3, "cust-x", resume={conv: 2})
        await other.caught_up(conv, 4, timeout=20)
        assert other.seqs(conv) == [3, 4]
        # Presence is the union of a user's sessions on every node: the agent, now also on n3,
        # leaves n2; their status set on n3 reaches the customer on n1; offline only once the
        # n3 session goes too.
        agent3 = await Client.open(n3, "agent-x", role="agent", name="Ada")
        await agent.close()
        await agent3.request({"type": "agent.status", "status": "away"})
        away = await cust.wait(lambda m: m["type"] == "presence" and m["status"] == "away", timeout=20)
        assert away["user"]["id"] == "agent-x"
        await agent3.close()
        gone = await cust.wait(lambda m: m["type"] == "presence" and m["status"] == "offline", timeout=20)
        assert gone["user"]["id"] == "agent-x"
        for c in (cust, other):
            await c.close()
    try:
        run(go())
    except BaseException:
        for n in (n1, n2, n3):
            print(f"--- {n.args[n.args.index('--node') + 1]} ---\n" + "".join(l for l in n.log[-400:] if "agent-x" in l or "role" in l or "warning" in l)[-6000:])
        raise


def test_each_node_reports_its_role_and_how_far_it_has_applied(cluster):
    """/metrics in cluster mode: one writer, the others followers; what the writer published
    (group commit: records per stream message); every node's copy reaches the writer's."""
    nats, nodes = cluster
    # The chat test before this one made the writer publish.
    roles = [{r: metric(n, f'parley_cluster_role{{role="{r}"}}') for r in ("writer", "follower", "catchingUp", "suspended")} for n in nodes]
    assert all(sum(r.values()) == 1 for r in roles), roles
    writers = [n for n, r in zip(nodes, roles) if r["writer"] == 1]
    assert len(writers) == 1 and sum(r["follower"] for r in roles) == 2, roles
    w = writers[0]
    messages, records = metric(w, "parley_cluster_stream_messages_published_total"), metric(w, "parley_cluster_records_published_total")
    assert records >= messages > 0
    end = metric(w, "parley_cluster_applied_sequence")
    assert end >= messages
    for n in nodes:
        wait_for(lambda: metric(n, "parley_cluster_applied_sequence") >= end, what="a follower applying the stream")


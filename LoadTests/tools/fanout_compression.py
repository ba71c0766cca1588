#!/usr/bin/env python3
"""Fan-out of one compressed event: N sessions of one customer (and the agent) negotiate
permessage-deflate; one 600-byte message reaches all of them. Prints the server's deflate runs and
compressed sends for that one event (from /metrics). Usage: fanout_compression.py PORT DATA_DIR [N=1000]"""
import asyncio, json, sys, time, urllib.request
import jwt, websockets

port, data, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1000
secret = json.load(open(f"{data}/secrets.json"))["jwtSecret"]
url = f"ws://127.0.0.1:{port}/v1/ws"


def tok(sub, role):
    return jwt.encode({"sub": sub, "role": role, "name": sub, "exp": int(time.time()) + 3600}, secret, algorithm="HS256")


def metric(name):
    for line in urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


async def session(sub, role):
    ws = await websockets.connect(url, subprotocols=["parley.v1"], max_size=2**22, open_timeout=60)
    await ws.send(json.dumps({"type": "hello", "token": tok(sub, role)}))
    while json.loads(await ws.recv())["type"] != "welcome":
        pass
    return ws


async def until(ws, pred):
    while True:
        m = json.loads(await ws.recv())
        if pred(m):
            return m


async def main():
    agent = await session("fan-agent", "agent")
    await agent.send(json.dumps({"type": "agent.status", "status": "available", "ref": "s"}))
    await until(agent, lambda m: m.get("ref") == "s")
    first = await session("fan-customer", "customer")
    await first.send(json.dumps({"type": "conversation.open", "ref": "o"}))
    cid = (await until(first, lambda m: m.get("ref") == "o"))["conversation"]["id"]
    others = []
    for i in range(0, n - 1, 100):
        others += await asyncio.gather(*[session("fan-customer", "customer") for _ in range(min(100, n - 1 - i))])
    everyone = [agent, first, *others]
    await asyncio.sleep(1.0)
    runs0, sent0 = metric("parley_ws_deflate_runs_total"), metric("parley_ws_compressed_messages_sent_total")
    text = "Order 1234: the parcel left the warehouse on Monday and the tracking page has said nothing since. " * 6
    await first.send(json.dumps({"type": "message.send", "conversation": cid, "clientMsgId": "fan", "text": text, "ref": "m"}))
    await asyncio.gather(*[until(ws, lambda m: m.get("type") == "message" and m.get("text") == text) for ws in everyone])
    await asyncio.sleep(1.0)
    runs, sent = metric("parley_ws_deflate_runs_total") - runs0, metric("parley_ws_compressed_messages_sent_total") - sent0
    print(json.dumps({"recipients": len(everyone), "eventBytes": len(text), "deflateRuns": runs, "compressedSends": sent}))
    await asyncio.gather(*[ws.close() for ws in everyone])

asyncio.run(main())

#!/usr/bin/env python3
"""Worst case for idle compressed connections: N clients that keep their compression context
(Python websockets' default offer: client_max_window_bits, no client_no_context_takeover), each
sends one compressed message so the server makes its own inflater, then all stay idle. Prints the
server's RSS growth per connection. Usage: idle_inflaters.py PORT SERVER_PID [N=2000]"""
import asyncio, json, sys
import websockets

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 2000


def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024


async def one(i):
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/echo", open_timeout=60, ping_interval=None)
    await ws.send('{"type":"message","text":"hello from an idle client that keeps its context"}' * 8)
    await ws.recv()
    return ws


async def main():
    # Warm the allocator and the loop's shared buffers first.
    warm = await asyncio.gather(*[one(i) for i in range(50)])
    await asyncio.sleep(0.5)
    before = rss()
    conns = []
    for i in range(0, n, 200):
        conns += await asyncio.gather(*[one(i + k) for k in range(min(200, n - i))])
    await asyncio.sleep(1.0)
    after = rss()
    ext = conns[0].response.headers.get("Sec-WebSocket-Extensions")
    print(json.dumps({"connections": n, "extension": ext, "serverRSSPerConnectionBytes": (after - before) / n}))
    await asyncio.gather(*[c.close() for c in conns + warm])

asyncio.run(main())

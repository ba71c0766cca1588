#!/usr/bin/env bash
# TLS and permessage-deflate, each beside plain, back to back, ROUNDS rounds, medians and ratios.
# Server on CPU 0 (--loops 1), parley-load on CPU 1. Measures:
#   1. idle memory per connection: ws, wss, ws + deflate, wss + deflate (N connections, RSS growth);
#      and the worst case for compression (Python clients that keep their context: one inflater each);
#   2. connects/s (TLS handshake + upgrade) and the server's CPU for them;
#   3. echo throughput and latency over ws and wss (100 connections x 10 in flight, 64 B and 1 KiB);
#   4. fan-out of one compressed event to 1,000 sessions: deflate runs vs compressed sends.
# Usage: LoadTests/bench-tls.sh [connections=10000] [rounds=3] [echo-seconds=5]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}; rounds=${2:-3}; dur=${3:-5}
swift build -c release --product parley >/dev/null
swift build -c release --product parley-load >/dev/null
R=.build/release
out=LoadTests/results/tls-$(date +%Y%m%d-%H%M%S); mkdir -p "$out"
port=$((20000 + RANDOM % 20000))
spid=""
trap '[ -n "$spid" ] && kill $spid 2>/dev/null || true' EXIT

start() {  # extra server flags...; sets spid, sport, data
  port=$((port + 1)); sport=$port
  data=$(mktemp -d /var/tmp/parley-bench-XXXXXX)
  taskset -c 0 $R/parley serve --port $sport --echo --loops 1 --data-dir "$data" --log-level warning "$@" >/dev/null 2>&1 &
  spid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$sport) 2>/dev/null && return 0; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}
stop() { kill $spid; wait $spid 2>/dev/null || true; spid=""; rm -rf "$data"; }
url() { if [ "$1" = tls ]; then echo "wss://127.0.0.1:$sport/v1/echo --tls-ca $data/tls/cert.pem"; else echo "ws://127.0.0.1:$sport/v1/echo"; fi; }

for round in $(seq "$rounds"); do
  for mode in plain tls; do
    flags=(); [ $mode = tls ] && flags=(--tls-self-signed)
    for z in off on; do
      zf=(); [ $z = on ] && zf=(--compression)
      start "${flags[@]}"
      taskset -c 1 $R/parley-load connect --url $(url $mode) "${zf[@]}" --connections "$n" --duration 1 \
        --server-pid $spid --json "$out/idle-$mode-z$z-r$round.json" > "$out/idle-$mode-z$z-r$round.txt" || true
      stop
    done
    start "${flags[@]}"
    for size in 64 1024; do
      for z in off on; do
        zf=(); [ $z = on ] && zf=(--compression)
        taskset -c 1 $R/parley-load echo --url $(url $mode) "${zf[@]}" --connections 100 --inflight 10 --size $size \
          --warmup 1 --duration "$dur" --server-pid $spid --json "$out/echo-$mode-$size-z$z-r$round.json" > "$out/echo-$mode-$size-z$z-r$round.txt" || true
      done
    done
    stop
  done
  start
  taskset -c 1 .venv/bin/python LoadTests/tools/idle_inflaters.py $sport $spid 2000 > "$out/inflaters-r$round.json" || true
  stop
done
start
taskset -c 1 .venv/bin/python LoadTests/tools/fanout_compression.py $sport "$data" 1000 > "$out/fanout.json" || true
stop

python3 - "$out" <<'PY' | tee "$out/summary.md"
import json, glob, statistics as st, sys
out = sys.argv[1]
def load(p): 
    r = []
    for f in sorted(glob.glob(f"{out}/{p}-r*.json")):
        try: r.append(json.load(open(f)))
        except Exception: pass
    return r
def med(rs, k): 
    v = [x[k] for x in rs if x.get(k) is not None]
    return st.median(v) if v else float("nan")
print("| idle connections | bytes per connection (median) | connects/s (median) | server CPU % while connecting |")
print("|---|---|---|---|")
for mode in ("plain", "tls"):
    for z in ("off", "on"):
        rs = load(f"idle-{mode}-z{z}")
        name = ("wss" if mode == "tls" else "ws") + (" + deflate" if z == "on" else "")
        print(f"| {name} | {med(rs, 'serverRSSPerConnectionBytes'):,.0f} | {med(rs, 'connectsPerSecond'):,.0f} | {med(rs, 'serverCPUPercent'):.0f} |")
inf = load("inflaters")
if inf:
    print(f"| ws + deflate, client keeps its context (own inflater, Python clients, 2,000) | {med(inf, 'serverRSSPerConnectionBytes'):,.0f} | | |")
print()
print("| echo, 100 conns x 10 in flight | msg/s (median) | p50 µs | p99 µs | server CPU % | vs ws, same size |")
print("|---|---|---|---|---|---|")
for size in (64, 1024):
    base = med(load(f"echo-plain-{size}-zoff"), "messagesPerSecond")
    for mode in ("plain", "tls"):
        for z in ("off", "on"):
            rs = load(f"echo-{mode}-{size}-z{z}")
            if not rs: continue
            mps = med(rs, "messagesPerSecond")
            p50 = st.median(r["latencyMicros"]["p50"] for r in rs) if all("latencyMicros" in r for r in rs) else float("nan")
            p99 = st.median(r["latencyMicros"]["p99"] for r in rs) if all("latencyMicros" in r for r in rs) else float("nan")
            name = ("wss" if mode == "tls" else "ws") + (" + deflate" if z == "on" else "")
            print(f"| {name}, {size} B | {mps:,.0f} | {p50:,.0f} | {p99:,.0f} | {med(rs, 'serverCPUPercent'):.0f} | {mps / base:.2f}x |")
try:
    f = json.load(open(f"{out}/fanout.json"))
    print()
    print(f"Fan-out: one {f['eventBytes']}-byte event to {f['recipients']} compressing sessions: "
          f"{f['deflateRuns']:.0f} deflate run(s), {f['compressedSends']:.0f} compressed sends.")
except Exception as e:
    print("fan-out: no result", e)
PY

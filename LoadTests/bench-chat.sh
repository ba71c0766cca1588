#!/usr/bin/env bash
# Chat latency at fixed rates and a reconnect storm, server on CPU 0 (--loops 1, --fsync always, a
# fresh data dir on disk each run), parley-load on CPU 1. ROUNDS rounds of each, medians.
# Usage: LoadTests/bench-chat.sh [customers=10000] [agents=200] [rates="500 1000 2000"] [duration=20] [rounds=3]
# PARLEY_LOAD=path runs that parley-load binary instead of this tree's (comparing two builds).
# A rate is customer messages per second over all customers; agents answer each one, so the server
# carries twice that in messages (each stored, acked, and delivered to both sides).
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${1:-10000}; agents=${2:-200}; rates=${3:-"500 1000 2000"}; duration=${4:-20}; rounds=${5:-3}
swift build -c release --product parley >/dev/null
swift build -c release --product parley-load >/dev/null
R=.build/release
LOAD=${PARLEY_LOAD:-$R/parley-load}  # another build of the tool, to compare two back to back
out=LoadTests/results/chat-$(date +%Y%m%d-%H%M%S); mkdir -p "$out"
port=$((20000 + RANDOM % 20000))

run() {  # name, then parley-load arguments after the URL
  local name=$1; shift
  local data; data=$(mktemp -d /var/tmp/parley-bench-XXXXXX)
  port=$((port + 1))
  taskset -c 0 $R/parley serve --port $port --loops 1 --fsync always --data-dir "$data" --log-level warning >/dev/null 2>&1 &
  local spid=$!
  for _ in $(seq 100); do [ -s "$data/secrets.json" ] && (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  taskset -c 1 "$LOAD" "$1" --url ws://127.0.0.1:$port/v1/ws --secrets "$data/secrets.json" "${@:2}" \
    --server-pid $spid --json "$out/$name.json" --html "$out/$name.html" > "$out/$name.txt" || true
  tail -n 14 "$out/$name.txt"
  kill $spid; wait $spid 2>/dev/null || true
  rm -rf "$data"
}

for round in $(seq "$rounds"); do
  for rate in $rates; do
    run "chat-$rate-r$round" chat --customers "$customers" --agents "$agents" --total-rate "$rate" \
      --orders --warmup 2 --duration "$duration"
  done
  run "reconnect-r$round" reconnect --customers "$customers" --agents "$agents" --total-rate 1000 \
    --drops 100 --down-ms 500 --drop-agents --warmup 2 --duration "$duration"
done

python3 - "$out" "$rates" <<'PY' | tee "$out/summary.md"
import json, glob, statistics as st, sys
out, rates = sys.argv[1], sys.argv[2].split()
def med(rs, f):
    v = [f(r) for r in rs]
    v = [x for x in v if x is not None]
    return st.median(v) if v else float("nan")
def lat(r, k, p): return r["latencyMs"].get(k, {}).get(p)
def bad(r): return sum(r["violations"].values()) + sum(r["lost"].values()) + sum(r["errors"].values())
print("| scenario | msgs/s sent (median) | ack p50 / p99 ms | customer→agent p50 / p99 / p99.9 / max ms | agent→customer p99 ms | server CPU % | tool CPU % | errors + violations + lost (all rounds) |")
print("|---|---|---|---|---|---|---|---|")
for name in [f"chat-{r}" for r in rates] + ["reconnect"]:
    rs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{name}-r*.json"))]
    if not rs: continue
    print(f"| {name} ({len(rs)} rounds) | {med(rs, lambda r: r['messagesPerSecond']):,.0f} "
          f"| {med(rs, lambda r: lat(r,'ack','p50')):.2f} / {med(rs, lambda r: lat(r,'ack','p99')):.2f} "
          f"| {med(rs, lambda r: lat(r,'customerToAgent','p50')):.2f} / {med(rs, lambda r: lat(r,'customerToAgent','p99')):.2f} / "
          f"{med(rs, lambda r: lat(r,'customerToAgent','p999')):.2f} / {med(rs, lambda r: lat(r,'customerToAgent','max')):.2f} "
          f"| {med(rs, lambda r: lat(r,'agentToCustomer','p99')):.2f} "
          f"| {med(rs, lambda r: r.get('serverCPUPercent')):.0f} | {med(rs, lambda r: r['toolCPUPercent']):.0f} "
          f"| {sum(bad(r) for r in rs)} |")
rc = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/reconnect-r*.json"))]
if rc:
    print(f"\nreconnect: {med(rc, lambda r: r['reconnects']):.0f} drops per run (median), "
          f"resumed {med(rc, lambda r: r['resumed']):.0f}; reconnect → welcome p50 {med(rc, lambda r: lat(r,'resume','p50')):.2f} ms, "
          f"p99 {med(rc, lambda r: lat(r,'resume','p99')):.2f} ms")
PY

#!/usr/bin/env bash
# Idle memory per WebSocket connection: server RSS growth over N idle connections (kernel socket
# buffers are not in RSS), for Parley (both readiness modes) and the SwiftNIO peer, ROUNDS rounds,
# medians. Usage: LoadTests/bench-memory.sh [connections=10000] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}; rounds=${2:-3}
swift build -c release --product parley >/dev/null
swift build -c release --product parley-load >/dev/null
(cd LoadTests/NIOEchoPeer && swift build -c release >/dev/null)
R=.build/release; NIO=LoadTests/NIOEchoPeer/.build/release/NIOEchoPeer
out=LoadTests/results/memory-$(date +%Y%m%d-%H%M%S); mkdir -p "$out"
port=$((20000 + RANDOM % 20000))
for round in $(seq "$rounds"); do
  for server in parley-epoll parley-sources nio; do
    port=$((port + 1))
    case $server in
      parley-epoll)   taskset -c 0 $R/parley serve --port $port --echo --loops 1 --readiness epoll 2>/dev/null & ;;
      parley-sources) taskset -c 0 $R/parley serve --port $port --echo --loops 1 --readiness sources 2>/dev/null & ;;
      nio)            taskset -c 0 $NIO $port 1 >/dev/null & ;;
    esac
    spid=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    taskset -c 1 $R/parley-load connect --url ws://127.0.0.1:$port/v1/echo --connections "$n" --duration 1 \
      --server-pid $spid --json "$out/$server-r$round.json" >/dev/null
    kill $spid; wait $spid 2>/dev/null || true
  done
done
python3 - "$out" <<'PY' | tee "$out/summary.md"
import json, glob, statistics, sys
out = sys.argv[1]
print("| server | bytes per idle connection (median) | connects/s (median) |")
print("|---|---|---|")
for s in ("parley-epoll", "parley-sources", "nio"):
    r = [json.load(open(f)) for f in glob.glob(f"{out}/{s}-r*.json")]
    print(f"| {s} | {statistics.median(x['serverRSSPerConnectionBytes'] for x in r):,.0f} | {statistics.median(x['connectsPerSecond'] for x in r):,.0f} |")
PY

#!/usr/bin/env bash
# Echo benchmark: Parley (both readiness modes) vs the SwiftNIO peer, back to back.
# Server pinned to one core, load to the other (taskset), 16-byte text, ROUNDS rounds,
# medians and ratios printed as a Markdown table (and saved under LoadTests/results/).
#
# Usage: LoadTests/bench-echo.sh [duration-seconds=5] [rounds=3]
#   env: SERVER_CPU (default 0), LOAD_CPU (default 1), LOOPS (server loops, default 1),
#        CONFIGS (default "100:1 100:10 1000:1 1000:10" as connections:inflight),
#        SERVERS (default "parley-epoll parley-sources nio"), TOOL_LOOPS (load tool loops, default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-5}; rounds=${2:-3}
server_cpu=${SERVER_CPU:-0}; load_cpu=${LOAD_CPU:-1}; loops=${LOOPS:-1}
configs=${CONFIGS:-"100:1 100:10 1000:1 1000:10"}
servers=${SERVERS:-"parley-epoll parley-sources nio"}

swift build -c release --product parley >/dev/null
swift build -c release --product parley-load >/dev/null
(cd LoadTests/NIOEchoPeer && swift build -c release >/dev/null)
R=.build/release
NIO=LoadTests/NIOEchoPeer/.build/release/NIOEchoPeer
out=LoadTests/results/echo-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"

port=$((20000 + RANDOM % 20000))
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start_server() { # name -> sets spid, sport
  sport=$((port++))
  case $1 in
    parley-epoll)   taskset -c "$server_cpu" $R/parley serve --port $sport --echo --loops "$loops" --readiness epoll 2>/dev/null & ;;
    parley-sources) taskset -c "$server_cpu" $R/parley serve --port $sport --echo --loops "$loops" --readiness sources 2>/dev/null & ;;
    nio)            taskset -c "$server_cpu" $NIO $sport "$loops" >/dev/null & ;;
  esac
  spid=$!
  pids+=("$spid")
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$sport) 2>/dev/null && return 0; sleep 0.1; done
  echo "server $1 did not start" >&2; exit 1
}

for round in $(seq "$rounds"); do
  for cfg in $configs; do
    c=${cfg%%:*}; d=${cfg##*:}
    for server in $servers; do
      start_server $server
      taskset -c "$load_cpu" $R/parley-load echo --url ws://127.0.0.1:$sport/v1/echo --connections "$c" --inflight "$d" --loops "${TOOL_LOOPS:-1}" \
        --warmup 1 --duration "$dur" --server-pid "$spid" --json "$out/$server-c$c-d$d-r$round.json" >/dev/null
      kill "$spid"; wait "$spid" 2>/dev/null || true
      echo "round $round c=$c d=$d $server: $(python3 -c "import json;print(round(json.load(open('$out/$server-c$c-d$d-r$round.json'))['messagesPerSecond']))") msg/s" >&2
    done
  done
done

python3 - "$out" "$configs" <<'PY' | tee "$out/summary.md"
import json, statistics, sys, glob, os
out, configs = sys.argv[1], sys.argv[2].split()
def runs(server, c, d):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{server}-c{c}-d{d}-r*.json"))]
print("| connections | in flight | parley epoll msg/s | parley sources msg/s | NIO msg/s | epoll / NIO | sources / NIO | p99 µs epoll / sources / NIO |")
print("|---|---|---|---|---|---|---|---|")
for cfg in configs:
    c, d = cfg.split(":")
    med = {}; p99 = {}
    for s in ("parley-epoll", "parley-sources", "nio"):
        r = runs(s, c, d) or [{"messagesPerSecond": float("nan"), "latencyMicros": {}}]
        med[s] = statistics.median(x["messagesPerSecond"] for x in r)
        p99[s] = statistics.median(x["latencyMicros"].get("p99", 0) for x in r)
    print(f"| {c} | {d} | {med['parley-epoll']:,.0f} | {med['parley-sources']:,.0f} | {med['nio']:,.0f} | "
          f"{med['parley-epoll']/med['nio']:.2f}x | {med['parley-sources']/med['nio']:.2f}x | "
          f"{p99['parley-epoll']:,.0f} / {p99['parley-sources']:,.0f} / {p99['nio']:,.0f} |")
PY

#!/usr/bin/env bash
# Embedded log vs cluster mode (three NATS JetStream servers with sync_interval: always, R3 stream,
# three parley nodes), the same parley-load chat run back to back, ROUNDS rounds, medians; then
# failover: the stall of a probe's acks when the writer, the stream's JetStream leader, or a
# follower is killed (-9). Servers on CPU 0, parley-load on CPU 1.
# Usage: LoadTests/bench-cluster.sh [customers=200] [agents=20] [rate=400] [duration=15] [rounds=3]
set -euo pipefail
cd "$(dirname "$0")/.."
customers=${1:-200}; agents=${2:-20}; rate=${3:-400}; duration=${4:-15}; rounds=${5:-3}
scripts/setup.sh >/dev/null
swift build -c release --product parley >/dev/null
swift build -c release --product parley-load >/dev/null
out=LoadTests/results/cluster-$(date +%Y%m%d-%H%M%S); mkdir -p "$out"
.venv/bin/python LoadTests/tools/bench_cluster.py "$out" "$customers" "$agents" "$rate" "$duration" "$rounds" 2>"$out/runs.txt" | tee "$out/summary.md"

#!/usr/bin/env bash
# Cluster start-up: how long a node takes to rebuild its state from a stream of N events (default
# 1,000,000: conversations of 100 events), fresh (an empty data dir: the whole stream comes over the
# consumer) and from its local copy (a restart: only what is new comes over). One NATS server
# (sync_interval: always), an R1 stream (what is measured is the node, not replication).
# Usage: LoadTests/bench-cluster-startup.sh [events=1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
swift build -c release --product parley >/dev/null
d=$(mktemp -d /var/tmp/parley-startup-XXXXXX)
port=$((30000 + RANDOM % 20000))
printf 'host: 127.0.0.1\nport: %s\njetstream { store_dir: "%s/js", sync_interval: always }\n' $port $d > $d/nats.conf
.venv/bin/nats-server -c $d/nats.conf > $d/nats.log 2>&1 &
npid=$!
sleep 1
B=.build/release/parley
common="--cluster nats://127.0.0.1:$port --stream-replicas 1 --allow-unreplicated --jwt-secret 0123456789abcdef0123456789abcdef --api-key k --port 0"
# Parley makes the stream, then stops.
$B serve $common --node maker --data-dir $d/maker > $d/maker.log 2>&1 &
p=$!; for i in $(seq 100); do grep -q listening $d/maker.log && break; sleep 0.1; done; kill $p; wait $p || true
t0=$(date +%s.%N)
.venv/bin/python LoadTests/tools/fill_stream.py nats://127.0.0.1:$port ${1:-1000000} 100
t1=$(date +%s.%N)
echo "fill: $(echo "$t1 - $t0" | bc) s"
for run in fresh copy; do
  $B serve $common --node n1 --data-dir $d/n1 > $d/$run.log 2>&1 &
  p=$!; for i in $(seq 3000); do grep -q listening $d/$run.log && break; sleep 0.1; done
  grep 'log recovered' $d/$run.log | grep -o 'cluster.catch_up_seconds=[0-9.]*\|conversations=[0-9]*\|events=[0-9]*\|rebuild.seconds=[0-9.]*\|cluster.stream_seq=[0-9]*' | tr '\n' ' '; echo " ($run)"
  ps -o rss= -p $p | awk '{print "rss MiB", $1/1024}'
  kill $p; wait $p || true
done
kill $npid; wait $npid || true
du -sh $d/js $d/n1/cluster
rm -rf $d

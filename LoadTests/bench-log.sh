#!/usr/bin/env bash
# Log benchmarks: append throughput and append-to-durable latency (parley log bench, ROUNDS rounds,
# medians), then recovery time of a ~1 GiB log (open = verify every record + rebuild all state).
# Usage: LoadTests/bench-log.sh [rounds=5] [dir=/tmp/parley-log-bench]  (needs ~1.2 GB free there)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}; base=${2:-/tmp/parley-log-bench}
swift build -c release --product parley >/dev/null
P=.build/release/parley
out=LoadTests/results/log-$(date +%Y%m%d-%H%M%S); mkdir -p "$out"
run() { # name, args...
  local name=$1; shift
  for r in $(seq "$rounds"); do
    rm -rf "$base"
    $P log bench --dir "$base" "$@" > "$out/$name-r$r.txt"
  done
}
run w64-d1 --records 300000 --record-bytes 200 --writers 64 --inflight 1
run w64-d4 --records 300000 --record-bytes 200 --writers 64 --inflight 4
run w1-d1  --records 20000  --record-bytes 200 --writers 1  --inflight 1
rm -rf "$base"
$P log bench --dir "$base" --records 3950000 --record-bytes 200 --writers 64 --inflight 8 --keep > "$out/build-1gib.txt"
for r in 1 2 3; do /usr/bin/time -f "%e %M" -o "$out/recover-r$r.time" $P log verify "$base" > "$out/recover-r$r.txt"; done
python3 - "$out" <<'PY' | tee "$out/summary.md"
import glob, re, statistics, sys
out = sys.argv[1]
def med(name, pat):
    vals = [float(re.search(pat, open(f).read()).group(1)) for f in glob.glob(f"{out}/{name}-r*.txt")]
    return statistics.median(vals)
print("| writers x in flight | appends/s (median) | p50 ms | p99 ms | p99.9 ms |")
print("|---|---|---|---|---|")
for name, label in (("w64-d1", "64 x 1"), ("w64-d4", "64 x 4"), ("w1-d1", "1 x 1")):
    print(f"| {label} | {med(name, r'([0-9.]+) appends/s'):,.0f} | {med(name, r'p50 ([0-9.]+)'):.3f} | "
          f"{med(name, r'p99 ([0-9.]+)'):.3f} | {med(name, r'p99.9 ([0-9.]+)'):.3f} |")
times = [open(f).read().split() for f in glob.glob(f"{out}/recover-r*.time")]
size = re.search(r"(\d+) bytes", open(f"{out}/recover-r1.txt").read()).group(1)
recs = re.search(r"ok: (\d+) records", open(f"{out}/recover-r1.txt").read()).group(1)
print(f"\nrecovery of {int(size)/2**30:.2f} GiB ({recs} records): median {statistics.median(float(t[0]) for t in times):.2f} s, "
      f"peak RSS {statistics.median(int(t[1]) for t in times)/1024:.0f} MiB")
PY
rm -rf "$base"

#!/usr/bin/env bash
# ThreadSanitizer run (issue 16; not part of the test command: a TSan build and run take long):
#   1. the unit tests built and run with -sanitize=thread,
#   2. the Python integration suite against a TSan-built `parley` (PARLEY_BIN),
# then counts the distinct reports (by their first frame in Parley's code) and fails if any.
# Usage: scripts/tsan.sh [pytest arguments, default: Tests/integration]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=.build/tsan
reports="$build/reports"
rm -rf "$reports" && mkdir -p "$reports"
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 log_path=$PWD/$reports/tsan"

echo "== build (thread sanitizer)"
swift build --build-tests --sanitize=thread --build-path "$build" 2>&1 | grep -E "error|warning: data race|Compiling parley|Build complete" || true
swift build --build-tests --sanitize=thread --build-path "$build" >/dev/null

echo "== swift test (thread sanitizer)"
set +e
swift test --skip-build --sanitize=thread --build-path "$build" 2>&1 | grep -E "Executed [0-9]+ tests|Test run with|✘" | tail -3
unit=${PIPESTATUS[0]}

echo "== integration tests against a TSan-built server"
PARLEY_BIN="$PWD/$build/debug/parley" PARLEY_LOAD_BIN="$PWD/$build/debug/parley-load" \
  .venv/bin/pytest -q -p no:cacheprovider "${@:-Tests/integration}" 2>&1 | tail -5
integration=${PIPESTATUS[0]}
set -e

tsan=0
python3 - "$reports" <<'PY' || tsan=$?
import glob, re, sys
seen = {}
for path in glob.glob(sys.argv[1] + "/tsan*"):
    for block in open(path, errors="replace").read().split("==================")[1:]:
        m = re.search(r"WARNING: ThreadSanitizer: ([^\n(]+)", block)
        if not m:
            continue
        frame = next((l.strip() for l in block.splitlines() if re.search(r"#\d+ .*(Parley|parley)", l)), "?")
        seen.setdefault((m.group(1).strip(), re.sub(r"0x[0-9a-f]+", "", frame)), 0)
        seen[(m.group(1).strip(), re.sub(r"0x[0-9a-f]+", "", frame))] += 1
for (kind, frame), n in sorted(seen.items(), key=lambda kv: -kv[1]):
    print(f"{n:5d}  {kind}  {frame}")
print(f"thread sanitizer: {len(seen)} distinct reports")
sys.exit(1 if seen else 0)
PY
[ "$unit" = 0 ] && [ "$integration" = 0 ] && exit $tsan
echo "tests failed under TSan (unit rc=$unit, integration rc=$integration)"
exit 1

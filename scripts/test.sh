#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, then
#   1. swift test (XCTest and Swift Testing; unit tests, table-driven from Protocol/vectors), then
#      the XCTest suite again built with ThreadSanitizer (.build/tsan; any report fails the run),
#   2. the Python integration suite against the real binary, once per readiness mode,
#   3. the JavaScript SDK's tests under Node's built-in runner, against the real binary,
#   4. the browser tests (headless Chromium driving the console and the widget), once,
#   5. the libFuzzer harnesses for a bounded time (FUZZ_SECONDS, default 20 each),
# and prints passed / failed / skipped per suite (scripts/test-summary.py). It fails when any
# test fails and when a suite that should have run did not.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== build"
swift build --build-tests 2>&1 | grep -vE "^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write|Linking|Build|Merging|Applying)" || true
swift build --build-tests >/dev/null  # fail here if the build failed

results=.build/test-results
rm -rf "$results"
mkdir -p "$results"

echo "== swift test"
set +e
swift test --skip-build --xunit-output "$results/swift-xunit.xml" 2>&1 | tee "$results/swift-test.log"
echo "${PIPESTATUS[0]}" > "$results/swift.rc"
set -e

echo "== swift test (thread sanitizer)"
# The integration suite against a TSan-built server is scripts/tsan.sh (too slow for every run).
mkdir -p "$results/tsan"
set +e
swift build --build-tests --sanitize=thread --build-path .build/tsan > "$results/swift-tsan-build.log" 2>&1 \
  || grep -E "error:" "$results/swift-tsan-build.log"
TSAN_OPTIONS="halt_on_error=0 log_path=$PWD/$results/tsan/report" \
  swift test --skip-build --sanitize=thread --build-path .build/tsan --disable-swift-testing > "$results/swift-tsan.log" 2>&1
echo "$?" > "$results/swift-tsan.rc"
grep -E "Executed [0-9]+ tests" "$results/swift-tsan.log" | tail -1
set -e

for mode in epoll sources; do
  echo "== integration tests (readiness: $mode)"
  # The log and browser tests do not depend on the readiness mode: run them once.
  extra=(); [ "$mode" = sources ] && extra=(--ignore=Tests/integration/test_log.py --ignore=Tests/integration/test_browser.py)
  set +e
  PARLEY_READINESS=$mode PARLEY_TEST_MODES_FILE="$results/pytest-$mode-modes.json" \
    .venv/bin/pytest -q -rs -p no:cacheprovider --junitxml="$results/pytest-$mode.xml" Tests/integration "${extra[@]}" 2>&1 \
    | tee "$results/pytest-$mode.log"
  echo "${PIPESTATUS[0]}" > "$results/pytest-$mode.rc"
  set -e
done

echo "== sdk tests (node --test)"
set +e
# Bounded: a failed test that leaves a socket open must not hold the run (--test-force-exit would
# cut the JUnit file short, so a timeout instead; each test has its own 60 s limit too).
timeout 600 node --experimental-websocket --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$results/sdk-junit.xml" Tests/sdk/ 2>&1 | tee "$results/sdk.log"
echo "${PIPESTATUS[0]}" > "$results/sdk.rc"
set -e

echo "== fuzz"
set +e
FUZZ_RESULTS="$results/fuzz.txt" scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
echo "$?" > "$results/fuzz.rc"
set -e

echo
exec python3 scripts/test-summary.py "$results"

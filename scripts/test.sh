#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, then
#   1. swift test (unit tests, table-driven from Protocol/vectors),
#   2. the Python integration suite against the real binary, once per readiness mode,
#   3. the libFuzzer harnesses for a bounded time (FUZZ_SECONDS, default 20 each).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== build"
swift build --build-tests 2>&1 | grep -vE "^\[[0-9]+/[0-9]+\] (Compiling|Emitting|Write|Linking|Build|Merging|Applying)" || true
swift build --build-tests >/dev/null  # fail here if the build failed

echo "== swift test"
mkdir -p .build
set +e
swift test --skip-build 2>&1 | tee .build/swift-test.log
swift_rc=${PIPESTATUS[0]}
set -e
swift_total=$(grep -E "^\s*Executed [0-9]+ tests" .build/swift-test.log | tail -1 | sed -E 's/.*Executed ([0-9]+) tests, with ([0-9]+) failures.*/\1 \2/')
swift_n=${swift_total% *}; swift_f=${swift_total#* }
# Swift Testing (property tests) reports its own count.
st=$(grep -E "Test run with [0-9]+ tests?" .build/swift-test.log | tail -1 | sed -E 's/.*Test run with ([0-9]+) tests?.*/\1/')
if [ -n "$st" ]; then
  swift_n=$((swift_n + st))
  grep -qE "Test run with [0-9]+ tests?.* passed" .build/swift-test.log || swift_f=$((swift_f + 1))
fi

py_n=0; py_f=0; py_rc=0
for mode in epoll sources; do
  echo "== integration tests (readiness: $mode)"
  set +e
  # The log tests do not depend on the readiness mode: run them once.
  extra=""; [ "$mode" = sources ] && extra="--ignore=Tests/integration/test_log.py"
  PARLEY_READINESS=$mode .venv/bin/pytest -q -p no:cacheprovider Tests/integration $extra 2>&1 | tee .build/pytest-$mode.log
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || py_rc=$rc
  line=$(tail -1 .build/pytest-$mode.log)
  p=$(echo "$line" | grep -oE "[0-9]+ passed" | grep -oE "[0-9]+" || echo 0)
  f=0
  for k in $(echo "$line" | grep -oE "[0-9]+ (failed|errors?)" | grep -oE "[0-9]+" || true); do f=$((f + k)); done
  [ "$rc" -eq 0 ] || [ "$f" -gt 0 ] || f=1
  py_n=$((py_n + p)); py_f=$((py_f + f))
done

echo "== fuzz"
fuzz_rc=0
scripts/fuzz.sh "${FUZZ_SECONDS:-20}" || fuzz_rc=1

total=$((swift_n + py_n))
failed=$((swift_f + py_f + fuzz_rc))
echo
echo "swift: ${swift_n} tests, ${swift_f} failed; integration: ${py_n} passed, ${py_f} failed; fuzz: $([ $fuzz_rc -eq 0 ] && echo ok || echo FAILED)"
echo "${total} passed, ${failed} failed"
[ "$swift_rc" -eq 0 ] && [ "$py_rc" -eq 0 ] && [ "$fuzz_rc" -eq 0 ]

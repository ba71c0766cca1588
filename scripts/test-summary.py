#!/usr/bin/env python3
"""Reads what scripts/test.sh's suites left in .build/test-results/ and prints passed / failed /
skipped per suite. Exits 1 when any test failed, when a suite that should have run left no
result (or fewer tests than it should), or when an integration pass ran servers in another
readiness mode than its own.

  XCTest           the `swift test` console log ("Test Case '…' passed|failed|skipped"), once
                   plain and once under ThreadSanitizer (whose report files must be none)
  Swift Testing    the xUnit file `swift test --xunit-output` writes for it
  integration      pytest's JUnit XML per readiness pass, and the modes its servers said they ran in
  sdk              the JUnit XML of `node --test` over Tests/sdk (the JavaScript SDK)
  fuzz             one line per harness from scripts/fuzz.sh: executed units and its own check
"""
import json, re, sys
import xml.etree.ElementTree as ET
from pathlib import Path

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else ".build/test-results")
MODES = ["epoll", "sources"]
FUZZ_HARNESSES = ["frame-reader-fuzz", "http-parser-fuzz", "record-codec-fuzz", "nats-parser-fuzz", "json-parser-fuzz", "protocol-frames-fuzz", "inflate-fuzz"]

rows, problems = [], []


def row(name, passed, failed, skipped, note="", rc=None):
    rows.append((name, passed, failed, skipped, note))
    if failed:
        problems.append(f"{name}: {failed} failed")
    code = int((OUT / rc).read_text().strip() or 1) if rc and (OUT / rc).exists() else 0
    if code and not failed:
        problems.append(f"{name}: exited with status {code} though no test failed")


def xctest(label="swift XCTest", logname="swift-test.log", rc="swift.rc"):
    log = OUT / logname
    if not log.exists():
        problems.append(f"{label}: no log (swift test did not run)"); row(label, 0, 0, 0, "DID NOT RUN"); return
    text = log.read_text(errors="replace")
    outcomes = re.findall(r"^Test Case '([^']+)' (passed|failed|skipped) \(", text, re.M)
    counts = {k: sum(1 for _, o in outcomes if o == k) for k in ("passed", "failed", "skipped")}
    executed = re.findall(r"Executed (\d+) tests?, with (?:(\d+) tests? skipped and )?(\d+) failures?", text)
    if not executed:
        problems.append(f"{label}: no 'Executed N tests' line (the run did not finish)")
        row(label, counts["passed"], counts["failed"], counts["skipped"], "DID NOT FINISH"); return
    total = int(executed[-1][0])
    if total != len(outcomes) or total == 0:
        problems.append(f"{label}: {total} executed but {len(outcomes)} outcomes read")
    failed = sorted(n for n, o in outcomes if o == "failed")
    row(label, counts["passed"], counts["failed"], counts["skipped"], ", ".join(failed[:5]), rc=rc)


def tsan_reports():
    """ThreadSanitizer's report files from the TSan pass (log_path under the results)."""
    reports = sorted((OUT / "tsan").glob("report*")) if (OUT / "tsan").exists() else []
    kinds = []
    for f in reports:
        kinds += re.findall(r"WARNING: ThreadSanitizer: ([^\n(]+)", f.read_text(errors="replace"))
    if kinds:
        problems.append(f"thread sanitizer: {len(kinds)} report(s): " + "; ".join(sorted(set(k.strip() for k in kinds)))[:300])


def junit(path):
    """(passed, failed, skipped, names of failed and skipped) from a JUnit/xUnit XML file."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:  # cut short (the run was killed): a failure, said as one
        return 0, [f"{Path(path).name} unreadable ({e})"], []
    cases = list(root.iter("testcase"))
    failed, skipped = [], []
    for c in cases:
        name = f"{c.get('classname', '')}.{c.get('name', '')}".strip(".")
        if c.find("failure") is not None or c.find("error") is not None:
            failed.append(name)
        elif c.find("skipped") is not None:
            msg = c.find("skipped").get("message", "")
            skipped.append(f"{name.split('.')[-1]} ({msg})" if msg else name)
    return len(cases) - len(failed) - len(skipped), failed, skipped


def swift_testing():
    f = OUT / "swift-xunit-swift-testing.xml"
    if not f.exists():
        problems.append("swift Testing: no result file (the Swift Testing suite did not run)")
        row("swift Testing", 0, 0, 0, "DID NOT RUN"); return
    p, failed, skipped = junit(f)
    if p + len(failed) + len(skipped) == 0:
        problems.append("swift Testing: ran no tests")
    row("swift Testing", p, len(failed), len(skipped), ", ".join(failed + skipped))


def integration(mode):
    name = f"integration ({mode})"
    f = OUT / f"pytest-{mode}.xml"
    if not f.exists():
        problems.append(f"{name}: no result file (pytest did not run)"); row(name, 0, 0, 0, "DID NOT RUN"); return
    p, failed, skipped = junit(f)
    if p == 0:
        problems.append(f"{name}: no test passed")
    modes_file = OUT / f"pytest-{mode}-modes.json"
    started = json.loads(modes_file.read_text()) if modes_file.exists() else []
    other = sorted({m for m in started if m != mode})
    if not started:
        problems.append(f"{name}: no server said which readiness mode it ran in")
    elif other:
        problems.append(f"{name}: servers ran in {other}, not {mode}")
    note = f"{started.count(mode)} servers in {mode} mode"
    if failed:
        note += "; failed: " + ", ".join(failed[:5])
    if skipped:
        note += "; skipped: " + "; ".join(skipped)
    row(name, p, len(failed), len(skipped), note, rc=f"pytest-{mode}.rc")


def junit_suite(name, file, rc):
    f = OUT / file
    if not f.exists():
        problems.append(f"{name}: no result file (it did not run)"); row(name, 0, 0, 0, "DID NOT RUN"); return
    p, failed, skipped = junit(f)
    if p == 0:
        problems.append(f"{name}: no test passed")
    row(name, p, len(failed), len(skipped), ", ".join((failed + skipped)[:5]), rc=rc)


def fuzz():
    f = OUT / "fuzz.txt"
    if not f.exists():
        problems.append("fuzz: no result (scripts/fuzz.sh did not run)"); row("fuzz", 0, 0, 0, "DID NOT RUN"); return
    results = dict(re.findall(r"^(\S+) (ok|FAILED.*)$", f.read_text(), re.M))
    ok = [h for h in FUZZ_HARNESSES if results.get(h) == "ok"]
    missing = [h for h in FUZZ_HARNESSES if h not in results]
    failed = [f"{h}: {results[h]}" for h in FUZZ_HARNESSES if h in results and results[h] != "ok"]
    for h in missing:
        problems.append(f"fuzz: {h} did not run")
    row("fuzz (harnesses)", len(ok), len(failed) + len(missing), 0, "; ".join(failed + [f"{h}: did not run" for h in missing]), rc="fuzz.rc")


xctest()
xctest("swift XCTest (TSan)", "swift-tsan.log", "swift-tsan.rc")
tsan_reports()
swift_testing()
for m in MODES:
    integration(m)
junit_suite("sdk (node --test)", "sdk-junit.xml", "sdk.rc")
fuzz()

width = max(len(r[0]) for r in rows)
print(f"{'suite'.ljust(width)}  passed  failed  skipped")
for name, p, f, s, note in rows:
    print(f"{name.ljust(width)}  {p:6d}  {f:6d}  {s:7d}" + (f"  {note}" if note else ""))
tp, tf, ts = (sum(r[i] for r in rows) for i in (1, 2, 3))
print(f"{'total'.ljust(width)}  {tp:6d}  {tf:6d}  {ts:7d}")
for p in dict.fromkeys(problems):
    print("PROBLEM:", p)
print(f"{tp} passed, {tf} failed, {ts} skipped" + ("" if not problems else f"; {len(set(problems))} problem(s)"))
sys.exit(1 if problems else 0)

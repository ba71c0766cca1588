"""The log through the real binary: crash safety under kill -9, disk full, the CLI, and an
independent reading of the on-disk format (Python's own parser and crc32c)."""
import json, os, random, re, shutil, signal, struct, subprocess, tempfile, time
import crc32c
import pytest
from pathlib import Path
from conftest import BIN

HEADER = 32


def parley(*args, **kw):
    return subprocess.run([BIN, "log", *args], capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def parse_segment(path):
    """Yields (position, offset, conversation, sequence, key, payload) per frame, checking each CRC."""
    data = open(path, "rb").read()
    assert data[:8] == b"PRLYLOG1"
    assert crc32c.crc32c(data[16:32]) == struct.unpack_from("<I", data, 12)[0]
    pos = HEADER
    while pos < len(data):
        frame_len, crc = struct.unpack_from("<II", data, pos)
        frame = data[pos:pos + 4 + frame_len]
        assert crc32c.crc32c(frame[0:4] + frame[8:]) == crc, f"bad crc at {pos}"
        (version, rtype, flags, term, offset, ts) = struct.unpack_from("<BBHIQq", frame, 8)
        conv = frame[32:48].hex()
        (seq,) = struct.unpack_from("<Q", frame, 48)
        key_len = frame[56]
        (payload_len,) = struct.unpack_from("<I", frame, 60)
        assert version == 1 and 60 + key_len + payload_len == frame_len
        yield pos, offset, conv, seq, frame[64:64 + key_len], frame[64 + key_len:64 + key_len + payload_len]
        pos += (4 + frame_len + 7) & ~7


def segments(d):
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".seg"))


def test_bench_writes_a_log_an_independent_crc32c_accepts(tmp_path):
    d = str(tmp_path / "log")
    r = parley("bench", "--dir", d, "--records", "3000", "--record-bytes", "200", "--writers", "8", "--segment-mib", "1", "--keep")
    assert r.returncode == 0, r.stderr
    assert "appends/s" in r.stdout and "p99" in r.stdout and "batches" in r.stdout
    offsets = [f[1] for s in segments(d) for f in parse_segment(s)]
    assert offsets == list(range(1, 3001))
    v = parley("verify", d)
    assert v.returncode == 0 and "3000 records, last offset 3000" in v.stdout


def stress_until_killed(d, rng, acked, env=None):
    """One round of `parley log stress` on the log in `d`: killed -9 once it has printed a random
    number of acks (each printed only once its record is durable); those acks go into `acked`."""
    p = subprocess.Popen([BIN, "log", "stress", "--dir", d, "--writers", "4", "--segment-kib", "64", "--seconds", "60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    first = p.stdout.readline()
    assert first.startswith("open "), first + p.stderr.read()
    # Everything acknowledged so far must have survived the previous crash.
    assert int(first.split()[1]) >= len(acked)
    want, seen, lines = rng.randint(1, 80), 0, []
    while seen < want:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line)
        seen += line.startswith("ack ")
    p.send_signal(signal.SIGKILL)
    p.wait()
    lines += p.stdout.read().splitlines(True)  # acks already printed before the kill count too
    for line in lines:
        m = re.match(r"ack (\d+) (\S+) (\d+) (\S+)\n?$", line)
        if m:  # a line cut by the kill is not an ack
            acked[int(m.group(1))] = (m.group(2).replace("-", ""), int(m.group(3)), m.group(4))


def check_log_holds(d, acked):
    """The log verifies; offsets are dense; every acknowledged record is there, unchanged; each
    conversation's sequences are dense and in log order."""
    v = parley("verify", d)
    assert v.returncode == 0, v.stdout + v.stderr
    found = {}
    for s in segments(d):
        for _, offset, conv, seq, key, payload in parse_segment(s):
            assert offset not in found, "duplicate offset"
            found[offset] = (conv, seq, payload.decode())
    assert sorted(found) == list(range(1, max(found) + 1)), "offsets are dense: nothing reordered or missing"
    lost = [offset for offset, want in acked.items() if found.get(offset) != want]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged records lost or changed, first at offset {min(lost)}"
    by_conv = {}
    for offset in sorted(found):
        conv, seq, _ = found[offset]
        by_conv.setdefault(conv, []).append(seq)
    for conv, seqs in by_conv.items():
        assert seqs == list(range(1, len(seqs) + 1)), conv


def test_crash_test_kill9_at_random_moments_loses_no_acknowledged_record(tmp_path):
    d = str(tmp_path / "log")
    rng = random.Random(1123)
    acked = {}  # offset -> (conversation, seq, payload)
    for _ in range(24):
        stress_until_killed(d, rng, acked)
    assert len(acked) > 100
    check_log_holds(d, acked)


def test_power_cut_at_random_moments_loses_no_acknowledged_record(tmp_path, powercut):
    """As above, but each round starts again from what a power cut leaves (the powercut shim):
    only fsynced bytes, only names whose directory was fsynced. An ack before its fdatasync fails it."""
    rng = random.Random(2411)
    acked = {}
    data = tmp_path / "disk0"
    for n in range(12):
        shadow = tmp_path / f"cut{n}"
        stress_until_killed(str(data / "log"), rng, acked, env=powercut.env(data, shadow))
        data = Path(powercut.after(shadow))
    assert len(acked) > 100
    check_log_holds(str(data / "log"), acked)


def test_verify_names_file_and_offset_of_corruption_and_repair_keeps_the_rest(tmp_path):
    d = str(tmp_path / "log")
    assert parley("bench", "--dir", d, "--records", "50", "--writers", "1", "--keep").returncode == 0
    seg = segments(d)[0]
    frames = list(parse_segment(seg))
    pos = frames[10][0]
    data = bytearray(open(seg, "rb").read())
    data[pos + 70] ^= 0x40
    open(seg, "wb").write(bytes(data))
    v = parley("verify", d)
    assert v.returncode == 2
    assert seg in v.stderr and f"at byte {pos}" in v.stderr
    r = parley("verify", "--repair", d)
    assert r.returncode == 0, r.stderr
    assert "49 records" in r.stdout and "dropped" in r.stdout
    assert parley("verify", d).returncode == 0


def test_inspect_prints_json_lines_by_offset_and_by_conversation(tmp_path):
    d = str(tmp_path / "log")
    assert parley("bench", "--dir", d, "--records", "40", "--writers", "2", "--keep").returncode == 0
    r = parley("inspect", d, "--from", "5", "--limit", "3")
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    assert [x["offset"] for x in rows] == [5, 6, 7]
    conv = rows[0]["conversation"]
    c = parley("inspect", d, "--conversation", conv, "--from", "2", "--limit", "5")
    seqs = [json.loads(l)["sequence"] for l in c.stdout.splitlines()]
    assert seqs == [3, 4, 5, 6, 7]
    assert all(json.loads(l)["type"] == "message" for l in c.stdout.splitlines())


def test_disk_full_fails_appends_cleanly_and_recovers_when_space_returns(tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private tmpfs")
    script = f"""
set -e
m={tmp_path}/mnt
mkdir -p $m
mount -t tmpfs -o size=512k tmpfs $m
{BIN} log bench --dir $m/log --records 100000 --record-bytes 200 --writers 4 --segment-mib 64 --keep > $m/../bench1.txt 2>&1 || echo "bench1 rc=$?" >> $m/../bench1.txt
{BIN} log verify $m/log > $m/../verify1.txt 2>&1
rm -f $m/filler
# Free space: the same log takes appends again (a new bench run needs an empty dir, so use stress).
{BIN} log stress --dir $m/log --writers 1 --seconds 0.3 > $m/../stress.txt 2>&1 || true
{BIN} log verify $m/log > $m/../verify2.txt 2>&1
umount $m
"""
    # Make room afterwards by deleting a filler file written first, so "space returns" for real.
    script = script.replace("mount -t tmpfs -o size=512k tmpfs $m\n", "mount -t tmpfs -o size=512k tmpfs $m\ndd if=/dev/zero of=$m/filler bs=1k count=128 2>/dev/null\n")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    bench1 = open(f"{tmp_path}/bench1.txt").read()
    verify1 = open(f"{tmp_path}/verify1.txt").read()
    stress = open(f"{tmp_path}/stress.txt").read()
    verify2 = open(f"{tmp_path}/verify2.txt").read()
    assert "failures:" in bench1 and "bench1 rc=1" in bench1, bench1  # appends failed with a clear error
    m = re.search(r"ok: (\d+) records, last offset (\d+)", verify1)
    assert m, verify1  # no partial record: the log verifies
    before = int(m.group(1))
    assert before > 0 and m.group(1) == m.group(2)
    assert "ack" in stress, stress  # appends work again once space returned
    m2 = re.search(r"ok: (\d+) records", verify2)
    assert m2 and int(m2.group(1)) > before


def test_fsync_error_stops_the_process(tmp_path):
    if shutil.which("strace") is None:
        pytest.skip("strace not installed")
    d = str(tmp_path / "log")
    r = subprocess.run(["strace", "-f", "-qq", "-o", "/dev/null", "-e", "inject=fdatasync:error=EIO:when=5",
                        BIN, "log", "bench", "--dir", d, "--records", "100", "--writers", "1", "--keep"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 70, r.stdout + r.stderr
    assert "fdatasync" in r.stderr and "failed" in r.stderr

#!/usr/bin/env bash
# Builds the libFuzzer harnesses (swiftc -sanitize=fuzzer over the pure codec/parser sources)
# and runs each for a bounded time. Usage: scripts/fuzz.sh [seconds-per-harness, default 20] [harness]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
only="${2:-}"
out=.build/fuzz
mkdir -p "$out"
build() { # name, harness, sources...
  local name=$1; shift
  swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name "${name//-/_}" "$@" -o "$out/$name" \
    >"$out/$name.build.log" 2>&1 || { cat "$out/$name.build.log"; exit 1; }
}
# Harnesses whose sources span modules compile them as one, their cross-module imports removed.
flat() { # dir, sources... -> the flattened copies in dir
  local dir=$1; shift
  rm -rf "$dir" && mkdir -p "$dir"
  for f in "$@"; do
    sed -E 's/^import Parley[A-Za-z0-9]+$//' "$f" > "$dir/$(basename "$(dirname "$f")")-$(basename "$f")"
  done
}
flat "$out/ws-src" Sources/ParleyWebSocket/Codec/*.swift Sources/ParleyUTF8/*.swift
build frame-reader-fuzz LoadTests/Fuzz/FrameReaderFuzz.swift "$out/ws-src"/*.swift
build http-parser-fuzz LoadTests/Fuzz/HTTPParserFuzz.swift Sources/ParleyHTTP/Parser/HTTPRequestParser.swift
flat "$out/log-src" Sources/ParleyLog/CRC32C.swift Sources/ParleyLog/Record.swift Sources/ParleyUTF8/*.swift
build record-codec-fuzz LoadTests/Fuzz/RecordCodecFuzz.swift "$out/log-src"/*.swift
build nats-parser-fuzz LoadTests/Fuzz/NATSParserFuzz.swift Sources/ParleyNATS/Protocol/*.swift
flat "$out/json-src" Sources/ParleyJSON/*.swift Sources/ParleyUTF8/*.swift
build json-parser-fuzz LoadTests/Fuzz/JSONParserFuzz.swift "$out/json-src"/*.swift
# The protocol decoders: ParleyProtocol, ParleyChat's model, ParleyJSON and ParleyLog's ids.
flat "$out/protocol-src" $(ls Sources/ParleyProtocol/*.swift | grep -v ChatReplay) Sources/ParleyChat/Model.swift \
  Sources/ParleyJSON/*.swift Sources/ParleyUTF8/*.swift Sources/ParleyLog/Record.swift Sources/ParleyLog/CRC32C.swift
build protocol-frames-fuzz LoadTests/Fuzz/ProtocolFramesFuzz.swift "$out/protocol-src"/*.swift
build inflate-fuzz LoadTests/Fuzz/InflateFuzz.swift Sources/ParleyWebSocket/Compression/Zlib.swift Sources/ParleyWebSocket/Codec/DeflateNegotiation.swift \
  -I Sources/CZlib -lz

# Seed corpora from the shared vectors, so the fuzzer starts from real frames and requests.
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
mkdir -p "$seeds/ws" "$seeds/http" "$seeds/log" "$seeds/inflate" "$seeds/nats" "$seeds/json" "$seeds/proto"
python3 - "$seeds" <<'PY'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
for i, line in enumerate(open("Protocol/vectors/ws/frames.jsonl")):
    data = bytes.fromhex(json.loads(line)["input"])
    if len(data) < 4096:
        (d / "ws" / f"{i}").write_bytes(bytes([i % 7]) + data)
reqs = [b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", b"PUT /v1/users/u/orders/o HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"]
for i, r in enumerate(reqs):
    (d / "http" / f"{i}").write_bytes(bytes([i * 9]) + r)
import struct, zlib
def crc32c(data):  # Castagnoli, reflected (as ParleyLog's CRC32C.swift and Python's crc32c)
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
def frame(offset, key, payload):  # a valid record (Sources/ParleyLog/FORMAT.md), padded to 8 bytes
    body = struct.pack("<BBHIQq", 1, 16, 0, 1, offset, 1763900000000) + bytes(16) + struct.pack("<Q", offset) \
        + bytes([len(key), 0, 0, 0]) + struct.pack("<I", len(payload)) + key + payload
    length = struct.pack("<I", 4 + len(body))  # the length counts the CRC and the body
    rec = length + struct.pack("<I", crc32c(length + body)) + body
    return rec + bytes(-len(rec) % 8)
for i in range(3):
    (d / "log" / f"{i}").write_bytes(frame(i + 1, b"k%d" % i, b'{"text":"hi"}' * i))
# NATS: what a server sends (cut byte first), as in Tests/ParleyNATSTests.
nats = [b'INFO {"server_id":"N1","max_payload":1048576,"headers":true}\r\n+OK\r\nPING\r\n',
        b"MSG orders.created 7 _INBOX.x1 5\r\nhello\r\nPONG\r\n-ERR 'Stale Connection'\r\n",
        b"HMSG $JS.ACK.s 12 48 58\r\nNATS/1.0 503 No Responders\r\nNats-Msg-Id: m-1\r\n\r\n0123456789\r\n"]
for i, n in enumerate(nats):
    (d / "nats" / f"{i}").write_bytes(bytes([i * 17]) + n)
# JSON: client frames and a stored event, as the protocol writes them.
for i, doc in enumerate([b'{"type":"hello","token":"t","resume":{"0b6e3f9a-4a0c-4c8e-9f41-1a2b3c4d5e6f":12}}',
                         b'{"type":"message.send","ref":"r1","conversation":"c","clientMsgId":"m\\u00e9\\ud83d\\ude00","text":"hi \\"there\\"\\n"}',
                         b'[1,-2.5e3,true,false,null,{"a":[[]]}]']):
    (d / "json" / f"{i}").write_bytes(doc)
# Protocol: every canonical frame of both directions, and the request vectors (good and bad).
for i, line in enumerate(open("Protocol/vectors/chat/frames.jsonl")):
    (d / "proto" / f"f{i}").write_text(json.loads(line)["json"])
for i, line in enumerate(open("Protocol/vectors/chat/requests.jsonl")):
    v = json.loads(line)
    if isinstance(v.get("frame"), str):
        (d / "proto" / f"r{i}").write_text(v["frame"])
# Inflate: real compressed messages (even mode byte) and the negotiation vectors' offers (odd).
for i, msg in enumerate([b'{"type":"message","text":"where is my order?"}' * 20, bytes(range(256)) * 4, b"a" * 5000]):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    z = c.compress(msg) + c.flush(zlib.Z_SYNC_FLUSH)
    (d / "inflate" / f"z{i}").write_bytes(bytes([2 * (i + 10)]) + z[:-4])
for i, line in enumerate(open("Protocol/vectors/ws/deflate-negotiation.jsonl")):
    offers = json.loads(line)["offers"]
    (d / "inflate" / f"n{i}").write_bytes(bytes([1]) + "\n".join(offers).encode())
PY
# Each harness must run to its time limit without a crash and execute more inputs than its seeds;
# one line per harness goes to $FUZZ_RESULTS for scripts/test-summary.py.
results="${FUZZ_RESULTS:-$out/results.txt}"
: > "$results"
status=0
for h in frame-reader-fuzz:ws http-parser-fuzz:http record-codec-fuzz:log nats-parser-fuzz:nats json-parser-fuzz:json protocol-frames-fuzz:proto inflate-fuzz:inflate; do
  name=${h%%:*}; corpus=${h##*:}
  [ -n "$only" ] && [ "$name" != "$only" ] && continue
  echo "fuzz: $name for ${secs}s"
  if ! "$out/$name" -max_total_time="$secs" -max_len=8192 -print_final_stats=1 -artifact_prefix="$out/$name-" \
       "$seeds/$corpus" >"$out/$name.log" 2>&1; then
    tail -40 "$out/$name.log"; echo "fuzz: $name FAILED (crash input saved under $out)"
    echo "$name FAILED: crashed (input saved under $out)" >> "$results"; status=1; continue
  fi
  grep -E "^stat::(number_of_executed_units|new_units_added)" "$out/$name.log" | sed 's/^/  /'
  units=$(sed -nE 's/^stat::number_of_executed_units: ([0-9]+)/\1/p' "$out/$name.log")
  n_seeds=$(ls "$seeds/$corpus" | wc -l)
  if [ -z "$units" ] || [ "$units" -le "$n_seeds" ]; then
    echo "fuzz: $name FAILED: executed ${units:-no} units for $n_seeds seeds"
    echo "$name FAILED: executed ${units:-no} units" >> "$results"; status=1; continue
  fi
  if [ "$name" = record-codec-fuzz ] && ! grep -q "decoded a valid record" "$out/$name.log"; then
    echo "fuzz: $name FAILED: no input got past the CRC check"
    echo "$name FAILED: no input decoded (seeds' CRCs?)" >> "$results"; status=1; continue
  fi
  echo "$name ok" >> "$results"
done
[ $status -eq 0 ] && echo "fuzz: no crashes" || echo "fuzz: FAILED"
exit $status

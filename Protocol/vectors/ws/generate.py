#!/usr/bin/env python3
"""Generates frames.jsonl: client byte streams and what the server's frame reader must make of them.

Each line: {"name", "input" (hex of the client's bytes), "maxMessageBytes" (optional, default 65536),
"events": [...], "fail": close code or null}. An event is {"text": str}, {"binaryHex": hex},
{"pingHex": hex}, {"pongHex": hex} or {"close": code or null, "reason": str}.
Readers must give the same result whether the input arrives whole or split at any byte.
Run: python3 Protocol/vectors/ws/generate.py > Protocol/vectors/ws/frames.jsonl
"""
import json, struct, sys

KEY = bytes([0x37, 0xFA, 0x21, 0x3D])  # RFC 6455 §5.7's example key

def frame(op, payload=b"", fin=True, rsv=0, mask=True, key=KEY, length=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload) if length is None else length
    out = bytearray([b0])
    m = 0x80 if mask else 0
    if n < 126: out.append(m | n)
    elif n <= 0xFFFF: out += bytes([m | 126]) + struct.pack(">H", n)
    else: out += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        out += key
        out += bytes(c ^ key[i % 4] for i, c in enumerate(payload))
    else:
        out += payload
    return bytes(out)

def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason

cases = []
def case(name, data, events, fail=None, max_bytes=None):
    c = {"name": name, "input": data.hex(), "events": events, "fail": fail}
    if max_bytes: c["maxMessageBytes"] = max_bytes
    cases.append(c)

T, B = 0x1, 0x2
# RFC 6455 §5.7 examples (client side, so masked).
case("rfc 5.7 masked Hello", bytes.fromhex("818537fa213d7f9f4d5158"), [{"text": "Hello"}])
case("rfc 5.7 unmasked Hello is refused from a client", bytes.fromhex("810548656c6c6f"), [], 1002)
case("rfc 5.7 fragmented Hel + lo", frame(T, b"Hel", fin=False) + frame(0, b"lo"), [{"text": "Hello"}])
case("rfc 5.7 ping Hello", frame(0x9, b"Hello"), [{"pingHex": b"Hello".hex()}])
case("rfc 5.7 pong Hello", frame(0xA, b"Hello"), [{"pongHex": b"Hello".hex()}])
case("rfc 5.7 256 bytes binary, 16-bit length", frame(B, bytes(range(256))), [{"binaryHex": bytes(range(256)).hex()}])
big = bytes((i * 7) % 256 for i in range(65536))
case("rfc 5.7 64 KiB binary, 64-bit length", frame(B, big), [{"binaryHex": big.hex()}], max_bytes=65536)
case("empty text", frame(T, b""), [{"text": ""}])
case("empty binary", frame(B, b""), [{"binaryHex": ""}])
case("two messages back to back", frame(T, b"a") + frame(T, b"b"), [{"text": "a"}, {"text": "b"}])
case("125-byte text (7-bit length edge)", frame(T, b"x" * 125), [{"text": "x" * 125}])
case("126-byte text (16-bit length edge)", frame(T, b"y" * 126), [{"text": "y" * 126}])
case("65535-byte binary (16-bit max)", frame(B, b"z" * 65535), [{"binaryHex": (b"z" * 65535).hex()}])
case("65536-byte text with a 16-bit limit+1 gets 1009", frame(T, b"z" * 65536), [], 1009, max_bytes=65535)
case("declared length over the limit fails before the payload arrives", frame(T, b"", length=70000)[:14], [], 1009)
case("64-bit length with the top bit set", bytes([0x82, 0xFF]) + b"\x80" + b"\x00" * 7 + KEY, [], 1002)
case("fragments together over the limit", frame(T, b"a" * 120, fin=False) + frame(0, b"b" * 120), [], 1009, max_bytes=200)
case("fragments exactly at the limit", frame(T, b"a" * 100, fin=False) + frame(0, b"b" * 100), [{"text": "a" * 100 + "b" * 100}], max_bytes=200)
for rsv in (1, 2, 4):
    case(f"RSV bits {rsv:03b} without extension", frame(T, b"x", rsv=rsv), [], 1002)
for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF):
    case(f"reserved opcode {op:#x}", frame(op, b"x"), [], 1002)
case("ping payload 126 bytes", frame(0x9, b"p" * 126), [], 1002)
case("ping payload 125 bytes", frame(0x9, b"p" * 125), [{"pingHex": (b"p" * 125).hex()}])
case("fragmented ping", frame(0x9, b"a", fin=False), [], 1002)
case("fragmented close", frame(0x8, close_payload(1000), fin=False), [], 1002)
case("continuation without a start", frame(0, b"x"), [], 1002)
case("text inside a fragmented message", frame(T, b"a", fin=False) + frame(T, b"b"), [], 1002)
case("ping between fragments", frame(T, b"ab", fin=False) + frame(0x9, b"p") + frame(0, b"cd"), [{"pingHex": b"p".hex()}, {"text": "abcd"}])
case("many empty fragments", frame(T, b"", fin=False) + frame(0, b"", fin=False) * 10 + frame(0, b"x"), [{"text": "x"}])
case("fragmented binary", frame(B, b"\x00\x01", fin=False) + frame(0, b"\x02"), [{"binaryHex": "000102"}])
u = "κόσμε".encode()
case("utf-8 text", frame(T, u), [{"text": "κόσμε"}])
case("utf-8 code point split across fragments", frame(T, u[:1], fin=False) + frame(0, u[1:]), [{"text": "κόσμε"}])
case("invalid utf-8 in a single frame", frame(T, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"), [], 1007)
case("invalid utf-8 fails fast in the first fragment", frame(T, b"\xce\xba\xed\xa0\x80", fin=False) + frame(0, b"x", fin=False), [], 1007)
case("invalid utf-8 fails before the message is complete", frame(T, b"ok\xff", fin=False), [], 1007)
case("truncated utf-8 at end of message", frame(T, b"\xce"), [], 1007)
case("truncated utf-8 at end of fragmented message", frame(T, b"a", fin=False) + frame(0, b"\xe2\x82"), [], 1007)
case("overlong encoding", frame(T, b"\xc0\xaf"), [], 1007)
case("surrogate", frame(T, b"\xed\xbf\xbf"), [], 1007)
case("beyond U+10FFFF", frame(T, b"\xf4\x90\x80\x80"), [], 1007)
case("U+10FFFF is valid", frame(T, "\U0010FFFF".encode()), [{"text": "\U0010FFFF"}])
case("binary need not be UTF-8", frame(B, b"\xff\xfe"), [{"binaryHex": "fffe"}])
case("close, empty", frame(0x8), [{"close": None, "reason": ""}])
case("close 1000 with reason", frame(0x8, close_payload(1000, b"bye")), [{"close": 1000, "reason": "bye"}])
case("close with 1-byte payload", frame(0x8, b"\x03"), [], 1002)
for code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999):
    case(f"close with valid code {code}", frame(0x8, close_payload(code)), [{"close": code, "reason": ""}])
for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535):
    case(f"close with invalid code {code}", frame(0x8, close_payload(code)), [], 1002)
case("close reason invalid utf-8", frame(0x8, close_payload(1000, b"\xce\xba\xed\xa0\x80")), [], 1007)
case("close reason 123 bytes", frame(0x8, close_payload(1000, b"r" * 123)), [{"close": 1000, "reason": "r" * 123}])
case("nothing after close is read", frame(0x8, close_payload(1000)) + frame(T, b"late"), [{"close": 1000, "reason": ""}])
case("text then close", frame(T, b"hi") + frame(0x8, close_payload(1001)), [{"text": "hi"}, {"close": 1001, "reason": ""}])

for c in cases:
    sys.stdout.write(json.dumps(c, ensure_ascii=False) + "\n")

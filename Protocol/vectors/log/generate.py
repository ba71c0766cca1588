#!/usr/bin/env python3
"""CRC-32C vectors from an independent implementation (PyPI `crc32c`), for the Swift tests.
Run: .venv/bin/python Protocol/vectors/log/generate.py > Protocol/vectors/log/crc32c.jsonl"""
import json, random, crc32c
rng = random.Random(20261123)
cases = [b"", b"a", b"123456789", b"\x00" * 32, b"\xff" * 32, bytes(range(256))]
cases += [bytes(rng.getrandbits(8) for _ in range(n)) for n in (1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4096, 65537)]
for c in cases:
    print(json.dumps({"hex": c.hex(), "crc32c": crc32c.crc32c(c)}))

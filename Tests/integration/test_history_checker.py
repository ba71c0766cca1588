"""The history checker must be able to fail: fed a stream and client records with one fault each,
it says what is wrong."""
import json, struct
import crc32c
import pytest
from history import check, counted

CONV = "0123456789abcdef0123456789abcdef"
CONV_ID = "01234567-89ab-cdef-0123-456789abcdef"


def frame(seq, payload, key=b"", rtype=16):
    body = struct.pack("<BBHIQq", 1, rtype, 0, 1, 0, 1) + bytes.fromhex(CONV) + struct.pack("<Q", seq) + bytes([len(key), 0, 0, 0])
    body += struct.pack("<I", len(payload)) + key + payload
    length = len(body) + 4  # the crc field too
    head = struct.pack("<I", length)
    crc = crc32c.crc32c(head + body)
    f = head + struct.pack("<I", crc) + body
    return f + bytes(-len(f) % 8)  # padded to 8 bytes, as the log writes frames


def event(seq, text, cmid):
    return {"type": "message", "conversation": CONV_ID, "seq": seq, "ts": 1000 + seq,
            "from": {"id": "u", "role": "customer", "name": "u"}, "text": text, "clientMsgId": cmid}


def stream(*items):
    """items: (after, event) in stream order; sequence numbers 1, 2, ..."""
    out = []
    for i, (after, e) in enumerate(items):
        key = b"u\0" + e["clientMsgId"].encode()
        out.append((i + 1, {"Parley-After": str(after)}, frame(e["seq"], json.dumps(e).encode(), key)))
    return out


def ack(e):
    return {"type": "ack", "conversation": CONV_ID, "seq": e["seq"], "ts": e["ts"], "clientMsgId": e["clientMsgId"]}


E1, E2, E3 = event(1, "a", "u:0"), event(2, "b", "u:1"), event(3, "c", "u:2")
GOOD = stream((0, E1), (1, E2), (2, E3))


def test_a_clean_history_passes():
    assert check(GOOD, {"u:0": [ack(E1)], "u:1": [ack(E2), ack(E2)], "u:2": [ack(E3)]}, {"u": [[E1, E2], [E3]]}) == (3, 3)


def test_a_deposed_writers_record_does_not_count():
    late = event(2, "stale", "u:9")
    events = counted(stream((0, E1), (0, late), (1, E2)))
    assert [e["text"] for _, e in sorted(events.values(), key=lambda v: v[1]["seq"])] == ["a", "b"]


@pytest.mark.parametrize("acks,sessions,why", [
    ({"u:5": [ack(event(5, "x", "u:5"))]}, {}, "not in the stream"),
    ({"u:1": [ack(E2), {**ack(E2), "seq": 3}]}, {}, "acked differently"),
    ({"u:1": [{**ack(E2), "ts": 1}]}, {}, "vs stored"),
    ({}, {"u": [[E1, E3]]}, "in one session"),
    ({}, {"u": [[E1, E2, E2]]}, "in one session"),
    ({}, {"u": [[E1], [E3]]}, "missed"),
    ({}, {"u": [[{**E2, "text": "forged"}]]}, "the stream has"),
])
def test_each_fault_is_caught(acks, sessions, why):
    with pytest.raises(AssertionError, match=why):
        check(GOOD, acks, sessions)


def test_an_event_that_skips_a_seq_does_not_count():
    with pytest.raises(AssertionError, match="not in the stream"):
        # seq 3 after seq 1: the chain rule drops it, so the ack for it is missing.
        check(stream((0, E1), (1, E3)), {"u:2": [ack(E3)]}, {})


def batch(after, seq, *events):
    """One stream message holding several records (group commit)."""
    return (seq, {"Parley-After": str(after)}, b"".join(frame(e["seq"], json.dumps(e).encode(), b"u\0" + e["clientMsgId"].encode()) for e in events))


def test_a_stream_message_of_several_records_counts_them_all():
    events = counted([batch(0, 1, E1, E2), batch(1, 2, E3)])
    assert sorted(k[1] for k in events) == [1, 2, 3]


def test_one_misfit_record_voids_its_whole_stream_message():
    # seq 3 straight after seq 1 in one message: none of it counts, and the next message chains
    # after the last counted one (none).
    events = counted([batch(0, 1, E1, E3), batch(0, 2, E1)])
    assert [e["text"] for _, e in events.values()] == ["a"]
    with pytest.raises(AssertionError, match="not in the stream"):
        check([batch(0, 1, E1, E3)], {"u:0": [ack(E1)]}, {})

"""The hardest Autobahn|Testsuite (RFC 6455, groups 1-10) behaviours, reproduced over raw sockets
against `parley serve --echo --max-message-bytes 16777216` (the configuration Autobahn runs with)."""
import os, struct, time
import pytest
from conftest import ServerProcess
from wsraw import FrameReader, frame, upgrade

BIG = 16 * 1024 * 1024


@pytest.fixture(scope="module")
def big_server():
    s = ServerProcess("--echo", "--max-message-bytes", str(BIG))
    yield s
    s.stop()


def session(server):
    s = server.connect(timeout=60)
    upgrade(s)
    return s, FrameReader(s)


def send_chopped(s, data, chop):
    for i in range(0, len(data), chop):
        s.sendall(data[i:i + chop])


def test_16mib_text_message_is_echoed(big_server):  # cases 1.1.6, 9.1.6
    s, r = session(big_server)
    payload = b"*" * BIG
    s.sendall(frame(0x1, payload))
    fin, op, got = r.read()
    assert (fin, op, len(got)) == (True, 0x1, BIG) and got == payload


def test_16mib_plus_one_is_1009(big_server):
    s, r = session(big_server)
    s.sendall(frame(0x2, b"", mask=True)[:1] + bytes([0x80 | 127]) + struct.pack(">Q", BIG + 1) + os.urandom(4))
    assert r.read_close() == 1009


def test_4mib_in_65536_fragments_of_64_bytes(big_server):  # case 9.3.1
    s, r = session(big_server)
    chunk = b"abcdefgh" * 8
    n = 4 * 1024 * 1024 // 64
    data = b"".join(frame(0x1 if i == 0 else 0x0, chunk, fin=(i == n - 1)) for i in range(n))
    s.sendall(data)
    fin, op, got = r.read()
    assert (op, len(got)) == (0x1, 4 * 1024 * 1024)
    assert got == chunk * n


def test_binary_65536_sent_in_chops_of_997(big_server):  # case 1.2.8
    s, r = session(big_server)
    payload = bytes(range(256)) * 256
    send_chopped(s, frame(0x2, payload), 997)
    assert r.read()[1:] == (0x2, payload)


def test_ping_125_bytes_sent_octet_wise(big_server):  # case 2.6
    s, r = session(big_server)
    p = b"\xfe" * 125
    send_chopped(s, frame(0x9, p), 1)
    assert r.read()[1:] == (0xA, p)


def test_ten_pings_all_answered(big_server):  # case 2.10
    s, r = session(big_server)
    for i in range(10):
        s.sendall(frame(0x9, b"payload-%d" % i))
    for i in range(10):
        assert r.read()[1:] == (0xA, b"payload-%d" % i)


def test_fragments_with_pings_between_and_delays(big_server):  # case 5.19
    s, r = session(big_server)
    s.sendall(frame(0x1, b"fragment1", fin=False))
    s.sendall(frame(0x9, b"pongme 1!"))
    time.sleep(0.3)
    s.sendall(frame(0x0, b"fragment2", fin=False) + frame(0x0, b"fragment3", fin=False))
    s.sendall(frame(0x9, b"pongme 2!"))
    time.sleep(0.3)
    s.sendall(frame(0x0, b"fragment4", fin=False) + frame(0x0, b"fragment5"))
    assert r.read()[1:] == (0xA, b"pongme 1!")
    assert r.read()[1:] == (0xA, b"pongme 2!")
    assert r.read()[1:] == (0x1, b"fragment1fragment2fragment3fragment4fragment5")


def test_invalid_utf8_fails_fast_inside_a_fragmented_message(big_server):  # cases 6.4.1/6.4.2
    s, r = session(big_server)
    s.sendall(frame(0x1, "κόσμε".encode(), fin=False))
    time.sleep(0.2)
    s.sendall(frame(0x0, b"\xf4\x90\x80\x80", fin=False))  # > U+10FFFF
    # The third fragment is never sent: the server must fail now, not at the end of the message.
    assert r.read_close(timeout=3) == 1007


def test_invalid_utf8_fails_fast_inside_one_frame_sent_in_chops(big_server):  # cases 6.4.3/6.4.4
    s, r = session(big_server)
    good = "κόσμε".encode()
    payload = good + b"\xf4\x90\x80\x80" + b"edited"
    data = frame(0x1, payload)
    head = len(data) - len(payload)
    s.sendall(data[:head + len(good) + 1])  # header, valid part, first byte of the bad sequence
    time.sleep(0.2)
    s.sendall(data[head + len(good) + 1:head + len(good) + 2])  # the byte that makes it invalid
    assert r.read_close(timeout=3) == 1007


def test_every_valid_utf8_split_point_across_fragments(big_server):  # case 6.2.x
    s, r = session(big_server)
    text = "Hello-µ@ßöäüàá-UTF-8!!\U0001F600κόσμε".encode()
    for cut in range(1, len(text)):
        s.sendall(frame(0x1, text[:cut], fin=False) + frame(0x0, text[cut:]))
        assert r.read()[1:] == (0x1, text)


def test_message_then_close_then_ping_gets_echo_and_close_only(big_server):  # case 7.1.6
    s, r = session(big_server)
    payload = b"BAsd7&jh23" * 26214  # ~256 KiB
    s.sendall(frame(0x1, payload) + frame(0x8, struct.pack(">H", 1000)) + frame(0x9, b"late"))
    assert r.read()[1:] == (0x1, payload)
    fin, op, p = r.read()
    assert op == 0x8 and p[:2] == struct.pack(">H", 1000)
    assert r.expect_eof(), "no pong after close; server closes TCP"


def test_text_after_close_is_ignored(big_server):  # cases 7.1.2/7.1.3
    s, r = session(big_server)
    s.sendall(frame(0x8, struct.pack(">H", 1000)) + frame(0x1, b"after close"))
    fin, op, p = r.read()
    assert op == 0x8
    assert r.expect_eof()


def test_many_small_messages_in_one_burst(big_server):  # case 9.7.x shape
    s, r = session(big_server)
    s.sendall(b"".join(frame(0x1, b"m%04d" % i) for i in range(1000)))
    for i in range(1000):
        assert r.read()[1:] == (0x1, b"m%04d" % i)

"""A tiny raw WebSocket client for malformed-input tests (the `websockets` library refuses to send those)."""
import base64, os, socket, struct, time

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def upgrade(sock, path="/v1/echo", extra=""):
    req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n")
    sock.sendall(req.encode())
    head = read_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    return head


def read_head(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def read_http_response(sock, timeout=5):
    sock.settimeout(timeout)
    head = read_head(sock)
    status = int(head.split(b" ")[1]) if head else None
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers[k.decode().lower()] = v.decode().strip()
    n = int(headers.get("content-length", "0"))
    body = b""
    while len(body) < n:
        c = sock.recv(n - len(body))
        if not c:
            break
        body += c
    return status, headers, body


def frame(op, payload=b"", fin=True, rsv=0, mask=True):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        h = bytes([b0, m | n])
    elif n <= 0xFFFF:
        h = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return h + payload
    key = os.urandom(4)
    return h + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


class FrameReader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _need(self, n):
        while len(self.buf) < n:
            c = self.sock.recv(65536)
            if not c:
                raise EOFError
            self.buf += c

    def read(self):
        """Returns (fin, opcode, payload) of the next server frame; EOFError at end of stream."""
        self._need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80 == 0, "server frames must not be masked"
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4); n = struct.unpack(">H", self.buf[2:4])[0]; off = 4
        elif n == 127:
            self._need(10); n = struct.unpack(">Q", self.buf[2:10])[0]; off = 10
        self._need(off + n)
        payload = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def read_close(self, timeout=5):
        """Reads frames until a close; returns its code (or None for an empty close)."""
        self.sock.settimeout(timeout)
        while True:
            fin, op, payload = self.read()
            if op == 0x8:
                return struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None

    def expect_eof(self, timeout=5):
        self.sock.settimeout(timeout)
        end = time.time() + timeout
        while time.time() < end:
            c = self.sock.recv(65536)
            if not c:
                return True
        return False

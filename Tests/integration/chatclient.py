"""An independent protocol-v1 client for the tests: Python `websockets` and PyJWT, nothing of ours."""
import asyncio, json, time
from pathlib import Path
import jwt, websockets
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "Protocol" / "schemas"
_FILE = {"typing": "typing.event", "read": "read.event", "history": "history.reply", "csat": "csat.event"}
_validators = {}
# Every frame the server sends is checked against Protocol/schemas/server; failures collect here.
SCHEMA_ERRORS = []


def check_schema(side, m):
    name = _FILE.get(m.get("type"), m.get("type")) if side == "server" else m.get("type")
    if name not in _validators:
        f = SCHEMAS / side / f"{name}.json"
        _validators[name] = Draft202012Validator(json.loads(f.read_text())) if f.exists() else None
    v = _validators[name]
    if v is None:
        return [f"no schema for {side} frame type {name!r}"]
    return [f"{m}: {e.message}" for e in v.iter_errors(m)]

SEQUENCED = {"conversation.created", "message", "order.attached", "conversation.assigned",
             "conversation.transferred", "conversation.resolved", "csat"}


def token(secret, sub, role, name=None, ttl=3600, capacity=None, **extra):
    claims = {"sub": sub, "role": role, "exp": int(time.time()) + ttl}
    if name:
        claims["name"] = name
    if capacity:
        claims["capacity"] = capacity
    claims.update(extra)
    return jwt.encode(claims, secret, algorithm="HS256")


class Client:
    """Keeps every frame received; `wait` takes the first unconsumed one matching a predicate."""

    def __init__(self, ws):
        self.ws = ws
        self.inbox = []
        self.events = []  # every sequenced event, in arrival order (never consumed)
        self.closed = asyncio.Event()
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self._refs = 0

    @classmethod
    async def open(cls, server, sub, role="customer", name=None, resume=None, capacity=None, hello=True, secret=None):
        ws = await websockets.connect(server.url + "/v1/ws", subprotocols=["parley.v1"], max_size=2**22, open_timeout=10)
        c = cls(ws)
        if hello:
            frame = {"type": "hello", "token": token(secret or server.secrets["jwtSecret"], sub, role, name, capacity=capacity)}
            if resume is not None:
                frame["resume"] = resume
            await c.send(frame)
            c.welcome = await c.wait(lambda m: m["type"] in ("welcome", "error"))
        return c

    async def _read(self):
        try:
            async for raw in self.ws:
                m = json.loads(raw)
                SCHEMA_ERRORS.extend(check_schema("server", m))
                if m.get("type") in SEQUENCED:
                    self.events.append(m)
                self.inbox.append(m)
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._arrived.set()

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def wait(self, pred, timeout=5.0):
        """Takes (removes and returns) the first unconsumed frame matching `pred`, waiting for it."""
        taken = []
        def take():
            for i, m in enumerate(self.inbox):
                if pred(m):
                    taken.append(self.inbox.pop(i))
                    return True
            return False
        await self.until(take, timeout, "no matching frame")
        return taken[0]

    async def until(self, cond, timeout=10.0, what="condition"):
        """Waits until `cond()` holds, checking again as each frame arrives."""
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed.is_set():
                raise AssertionError(f"{what}: not within {timeout}s; inbox: {self.inbox[-10:]}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def caught_up(self, conversation, seq, timeout=10.0):
        """Waits until the event numbered `seq` of `conversation` has arrived (events of one
        conversation arrive in seq order, so everything before it has too)."""
        await self.until(lambda: seq in self.seqs(conversation), timeout, f"seq {seq} of {conversation}")

    async def request(self, frame, timeout=5.0):
        """Sends with a fresh ref and returns the direct reply carrying it."""
        self._refs += 1
        ref = frame.get("ref") or f"r{self._refs}"
        await self.send({**frame, "ref": ref})
        return await self.wait(lambda m: m.get("ref") == ref, timeout)

    def seqs(self, conversation):
        return [e["seq"] for e in self.events if e["conversation"] == conversation]

    async def close(self):
        await self.ws.close()
        self._reader.cancel()

    @property
    def close_code(self):
        return self.ws.close_code


async def eventually(cond, timeout=30.0, what="condition"):
    """Waits until `cond()` holds, for states no frame announces (a thread's progress, a file)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.01)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))

"""Who may touch what, as one table (issue 16's authorization review): every conversation request
by every kind of outsider, every REST route without or with a wrong API key, and tokens that are
not HS256 or whose claims have the wrong types. Each refusal must be the documented one, and
nothing refused may be stored."""
import base64, hashlib, hmac, json, time, urllib.request, urllib.error
import pytest
from conftest import ServerProcess
from chatclient import Client, run


@pytest.fixture(scope="module")
def server():
    s = ServerProcess()
    yield s
    s.stop()


# (who asks, the request; {conv}: a conversation of customer "cleo" assigned to agent "ann")
REQUESTS = [
    ("another customer", {"type": "message.send", "conversation": "{conv}", "clientMsgId": "x1", "text": "hi"}),
    ("another customer", {"type": "typing", "conversation": "{conv}", "active": True}),
    ("another customer", {"type": "read", "conversation": "{conv}", "seq": 1}),
    ("another customer", {"type": "history", "conversation": "{conv}"}),
    ("another customer", {"type": "csat", "conversation": "{conv}", "score": 5}),
    ("another customer", {"type": "conversation.resolve", "conversation": "{conv}"}),
    ("the customer", {"type": "agent.status", "status": "available"}),
    ("the customer", {"type": "conversation.claim", "conversation": "{conv}"}),
    ("the customer", {"type": "conversation.transfer", "conversation": "{conv}", "to": None}),
    ("the customer", {"type": "conversation.resolve", "conversation": "{conv}"}),
    ("another agent", {"type": "message.send", "conversation": "{conv}", "clientMsgId": "x2", "text": "hi"}),
    ("another agent", {"type": "typing", "conversation": "{conv}", "active": True}),
    ("another agent", {"type": "read", "conversation": "{conv}", "seq": 1}),
    ("another agent", {"type": "history", "conversation": "{conv}"}),
    ("another agent", {"type": "conversation.transfer", "conversation": "{conv}", "to": None}),
    ("another agent", {"type": "conversation.resolve", "conversation": "{conv}"}),
    ("another agent", {"type": "csat", "conversation": "{conv}", "score": 5}),
    ("an agent", {"type": "conversation.open"}),
]


def test_outsiders_get_forbidden_and_nothing_is_stored(server):
    async def go():
        ann = await Client.open(server, "ann", "agent", name="Ann")
        assert (await ann.request({"type": "agent.status", "status": "available"}))["type"] == "ack"
        cleo = await Client.open(server, "cleo", "customer", name="Cleo")
        conv = (await cleo.request({"type": "conversation.open", "order": None}))["conversation"]["id"]
        await ann.until(lambda: any(e["type"] == "conversation.assigned" for e in ann.events), what="assigned")
        before = len(ann.events)
        askers = {
            "another customer": await Client.open(server, "mallory", "customer"),
            "the customer": cleo,
            "another agent": await Client.open(server, "bob", "agent"),
            "an agent": ann,
        }
        for who, frame in REQUESTS:
            f = json.loads(json.dumps(frame).replace("{conv}", conv))
            reply = await askers[who].request(f)
            assert reply["type"] == "error" and reply["code"] == "forbidden", (who, frame["type"], reply)
        # The participants heard nothing of it, the log holds nothing of it.
        body = json.loads(rest(server, "GET", f"/v1/conversations/{conv}", key=server.secrets["apiKey"])[1])
        assert [e["type"] for e in body["events"]] == ["conversation.created", "conversation.assigned"]
        assert len(ann.events) == before
        assert not [m for m in cleo.inbox if m.get("type") == "typing"]
        for c in set(askers.values()):
            assert not c.closed.is_set()
            await c.close()
    run(go())


def rest(server, method, path, key=None, body=None):
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", method=method, headers=headers,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


ORDER = {"placedAt": "2026-11-20T09:00:00Z", "status": "shipped", "total": "1", "currency": "EUR", "items": []}
ROUTES = [
    ("POST", "/v1/tokens", {"sub": "u", "role": "agent"}),
    ("PUT", "/v1/users/u/orders/o", ORDER),
    ("GET", "/v1/users/u/orders/last", None),
    ("GET", "/v1/conversations/00000000-0000-4000-8000-000000000000", None),
]


@pytest.mark.parametrize("method,path,body", ROUTES, ids=[f"{m} {p.split('/')[2]}" for m, p, _ in ROUTES])
@pytest.mark.parametrize("key", ["none", "empty", "wrong", "prefix", "longer", "jwt secret"])
def test_rest_routes_need_the_api_key(server, method, path, body, key):
    real = server.secrets["apiKey"]
    given = {"none": None, "empty": "", "wrong": "x" * len(real), "prefix": real[:-1], "longer": real + "x",
             "jwt secret": server.secrets["jwtSecret"]}[key]
    status, text = rest(server, method, path, key=given, body=body)
    assert status == 401 and json.loads(text)["error"]["code"] == "unauthorized", (status, text)
    if method == "PUT":  # and nothing was stored
        assert rest(server, "GET", "/v1/users/u/orders/last", key=real)[0] == 404


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header, claims, secret, digest=hashlib.sha256):
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret.encode(), head.encode(), digest).digest()) if digest else ""
    return head + "." + sig


def good_claims(**over):
    c = {"sub": "u1", "role": "customer", "exp": int(time.time()) + 600}
    c.update(over)
    return {k: v for k, v in c.items() if v is not ...}


TOKENS = [
    ("alg none, no signature", lambda s: forge({"alg": "none", "typ": "JWT"}, good_claims(), s, digest=None)),
    ("alg none, with a signature", lambda s: forge({"alg": "none", "typ": "JWT"}, good_claims(), s)),
    ("HS384 with the secret", lambda s: forge({"alg": "HS384", "typ": "JWT"}, good_claims(), s, hashlib.sha384)),
    ("HS512 with the secret", lambda s: forge({"alg": "HS512", "typ": "JWT"}, good_claims(), s, hashlib.sha512)),
    ("RS256 header, HMAC signature", lambda s: forge({"alg": "RS256", "typ": "JWT"}, good_claims(), s)),
    ("HS256 header, signed with another key", lambda s: forge({"alg": "HS256", "typ": "JWT"}, good_claims(), "y" * 40)),
    ("sub is a number", lambda s: forge({"alg": "HS256"}, good_claims(sub=42), s)),
    ("sub is empty", lambda s: forge({"alg": "HS256"}, good_claims(sub=""), s)),
    ("sub is missing", lambda s: forge({"alg": "HS256"}, good_claims(sub=...), s)),
    ("role is admin", lambda s: forge({"alg": "HS256"}, good_claims(role="admin"), s)),
    ("role is missing", lambda s: forge({"alg": "HS256"}, good_claims(role=...), s)),
    ("exp is a string", lambda s: forge({"alg": "HS256"}, good_claims(exp="tomorrow"), s)),
    ("exp is missing", lambda s: forge({"alg": "HS256"}, good_claims(exp=...), s)),
    ("exp is past the leeway", lambda s: forge({"alg": "HS256"}, good_claims(exp=int(time.time()) - 60), s)),
    ("name is a number", lambda s: forge({"alg": "HS256"}, good_claims(name=7), s)),
    ("capacity is a string", lambda s: forge({"alg": "HS256"}, good_claims(role="agent", capacity="5"), s)),
    ("claims are an array", lambda s: forge({"alg": "HS256"}, [1, 2], s)),
]


@pytest.mark.parametrize("make", [t for _, t in TOKENS], ids=[n for n, _ in TOKENS])
def test_tokens_that_are_not_hs256_or_have_wrong_claims_are_refused(server, make):
    async def go():
        c = await Client.open(server, "u1", hello=False)
        await c.send({"type": "hello", "token": make(server.secrets["jwtSecret"])})
        err = await c.wait(lambda m: m["type"] == "error")
        assert err["code"] == "unauthorized"
        await c.closed.wait()
        assert c.close_code == 4001
    run(go())


def test_the_forger_itself_makes_tokens_the_server_takes(server):
    """The table above means something only if a correct token made the same way is accepted."""
    async def go():
        c = await Client.open(server, "u1", hello=False)
        await c.send({"type": "hello", "token": forge({"alg": "HS256", "typ": "JWT"}, good_claims(name="Una"), server.secrets["jwtSecret"])})
        w = await c.wait(lambda m: m["type"] in ("welcome", "error"))
        assert w["type"] == "welcome" and w["user"]["name"] == "Una", w
        await c.close()
    run(go())

"""The browser side over HTTP: the SDK, console, widget and demo files with their headers."""
import gzip, json, urllib.request, urllib.error
import pytest
from conftest import ServerProcess


@pytest.fixture(scope="module")
def demo():
    s = ServerProcess("--demo")
    yield s
    s.stop()


def get(server, path, headers=None, method="GET", data=None):
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}", headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.mark.parametrize("path,ctype", [
    ("/sdk/parley.js", "text/javascript; charset=utf-8"),
    ("/sdk/parley.d.ts", "application/typescript; charset=utf-8"),
    ("/sdk/parley-ui.js", "text/javascript; charset=utf-8"),
    ("/widget/parley-widget.js", "text/javascript; charset=utf-8"),
    ("/widget/widget.css", "text/css; charset=utf-8"),
    ("/console", "text/html; charset=utf-8"),
    ("/console/console.js", "text/javascript; charset=utf-8"),
    ("/console/icon.svg", "image/svg+xml"),
])
def test_assets_have_their_types_and_revalidate_by_etag(demo, path, ctype):
    status, h, body = get(demo, path)
    assert status == 200 and h["Content-Type"] == ctype and body
    assert h["Cache-Control"] == "no-cache" and h["X-Content-Type-Options"] == "nosniff"
    status2, h2, body2 = get(demo, path, {"If-None-Match": h["ETag"]})
    assert status2 == 304 and body2 == b"" and h2["ETag"] == h["ETag"]
    assert get(demo, path, {"If-None-Match": '"other"'})[0] == 200


def test_gzip_when_accepted_and_identical_when_inflated(demo):
    _, plain_h, plain = get(demo, "/sdk/parley.js")
    status, h, body = get(demo, "/sdk/parley.js", {"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and h["Content-Encoding"] == "gzip" and h["Vary"] == "Accept-Encoding"
    assert gzip.decompress(body) == plain and len(body) < len(plain) / 2
    assert "Content-Encoding" not in get(demo, "/sdk/parley.js", {"Accept-Encoding": "gzip;q=0"})[1]


def test_pages_forbid_inline_script_and_other_origins(demo):
    for path in ("/console", "/demo"):
        _, h, body = get(demo, path)
        csp = h["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp and "default-src 'none'" in csp
        assert h["X-Frame-Options"] == "DENY" and h["Referrer-Policy"] == "no-referrer"
        assert b"<script>" not in body and b"http" not in body.split(b"<body")[0].replace(b"http-equiv", b"")
    # The SDK and widget are loaded by other sites: CORS for module scripts; the console is not.
    assert get(demo, "/sdk/parley.js")[1]["Access-Control-Allow-Origin"] == "*"
    assert get(demo, "/widget/parley-widget.js")[1]["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Origin" not in get(demo, "/console")[1]


def test_unknown_files_and_methods(demo):
    assert get(demo, "/sdk/nope.js")[0] == 404
    assert get(demo, "/console/../secrets.json")[0] == 404
    assert get(demo, "/sdk/parley.js", method="POST", data=b"")[0] == 405
    assert get(demo, "/sdk/parley.js", method="HEAD")[0] == 200


def test_demo_backend_keeps_its_customer_by_cookie_and_gives_them_an_order(demo):
    status, h, body = get(demo, "/demo/token", method="POST", data=b"{}")
    assert status == 200, body
    first = json.loads(body)
    cookie = h["Set-Cookie"].split(";")[0]
    assert cookie == f"parley_demo={first['sub']}" and "HttpOnly" in h["Set-Cookie"]
    again = json.loads(get(demo, "/demo/token", {"Cookie": cookie}, method="POST", data=b"{}")[2])
    assert again["sub"] == first["sub"]
    key = demo.secrets["apiKey"]
    status, _, order = get(demo, f"/v1/users/{first['sub']}/orders/last", {"Authorization": f"Bearer {key}"})
    assert status == 200 and json.loads(order)["id"] == "A-1042"
    # A forged cookie is not a demo user: a new one is made.
    fresh = json.loads(get(demo, "/demo/token", {"Cookie": "parley_demo=ann"}, method="POST", data=b"{}")[2])
    assert fresh["sub"] != "ann" and fresh["sub"].startswith("demo-")


def test_without_demo_there_is_no_demo(fresh_server):
    s = fresh_server()
    assert get(s, "/demo")[0] == 404
    assert get(s, "/demo/token", method="POST", data=b"{}")[0] == 404
    assert get(s, "/console")[0] == 200
    assert json.loads(get(s, "/console/config.json")[2]) == {"tokenUrl": None}


def test_console_token_url_is_announced_and_allowed_by_the_csp(fresh_server):
    s = fresh_server("--console-token-url", "https://sso.example.com/parley/token")
    assert json.loads(get(s, "/console/config.json")[2]) == {"tokenUrl": "https://sso.example.com/parley/token"}
    assert "connect-src 'self' https://sso.example.com;" in get(s, "/console")[1]["Content-Security-Policy"]

"""Real browsers against the real server: headless Chromium (Debian's, driven by Selenium through
/usr/bin/chromedriver) runs the customer widget on the demo shop and the agent console.

Every wait is for something a user would see (an element, a text) that the protocol promises;
screenshots go to .build/screenshots/ (for people, never compared)."""
import asyncio, json, os, signal, time, urllib.request
from pathlib import Path
import pytest
from conftest import ServerProcess, ROOT
from chatclient import Client, token

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from selenium.common.exceptions import StaleElementReferenceException

CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = Path(os.environ.get("PARLEY_SCREENSHOTS", ROOT / ".build" / "screenshots"))
WAIT = 30  # seconds any one UI promise may take on a loaded CI machine

pytestmark = pytest.mark.skipif(not Path(CHROMEDRIVER).exists(), reason="chromium-driver is not installed (scripts/setup.sh installs it)")


@pytest.fixture
def browsers():
    made = []
    def make(width=1280, height=800, phone=False):
        o = webdriver.ChromeOptions()
        if phone:  # a phone's viewport (a headless window is at least 500 px wide)
            o.add_experimental_option("mobileEmulation", {"deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 2}})
        for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                  "--disable-background-timer-throttling", "--disable-renderer-backgrounding", "--no-first-run"]:
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
        made.append(d)
        return d
    yield make
    for d in made:
        errors = [l for l in d.get_log("browser") if l["level"] == "SEVERE" and "WebSocket" not in l["message"] and "ERR_CONNECTION_REFUSED" not in l["message"]]
        d.quit()
        assert not errors, f"errors in a page's console: {errors}"


def shot(driver, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def until(driver, check, what):
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: check(d))
    except Exception as e:
        shot(driver, "failed-" + what.replace(" ", "-")[:60])
        raise AssertionError(f"{what}: not seen within {WAIT}s") from e


# The messages of a thread as [class, text] pairs, read in one go (the page may redraw between reads).
READ_MESSAGES = "return [...arguments[0].querySelectorAll('.msg')].map(m => [m.className, m.querySelector('.text').textContent])"


class Widget:
    """The customer's side: the demo shop with the widget in its shadow root."""

    def __init__(self, driver, server):
        self.d = driver
        driver.get(f"http://127.0.0.1:{server.port}/demo")
        self.host = until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".parley-widget-host"), "the widget on the page")[0]

    def q(self, css):
        return self.host.shadow_root.find_elements(By.CSS_SELECTOR, css)

    def one(self, css):
        return until(self.d, lambda d: self.q(css), f"widget {css}")[0]

    def open(self):
        self.one(".launcher").click()

    def text(self, css):
        found = self.q(css)
        return found[0].text if found else ""

    def messages(self):
        return self.d.execute_script(READ_MESSAGES, self.host.shadow_root.find_element(By.CSS_SELECTOR, ".events"))

    def say(self, text):
        box = self.one("#parley-text")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)


class Console:
    """An agent's console, signed in through the #token= link."""

    def __init__(self, driver, server, sub, name, capacity=None):
        self.d = driver
        t = token(server.secrets["jwtSecret"], sub, "agent", name, ttl=3600, capacity=capacity)
        driver.get(f"http://127.0.0.1:{server.port}/console#token={t}")
        until(driver, lambda d: d.find_element(By.ID, "conn").text == "Online", f"{name}'s console online")
        assert "token=" not in driver.current_url, "the token stays out of the address bar"

    def q(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def mine(self):
        """My conversations as listed, top first: {conversation, text, unread, resolved}."""
        return self.d.execute_script(
            "return [...document.querySelectorAll('#mine .item')].map(i => ({conversation: i.dataset.conversation, "
            "text: i.innerText, unread: !!i.querySelector('.unread'), resolved: i.classList.contains('resolved')}))")

    def select(self, pick=lambda items: items[0] if items else None, what="a conversation in my list"):
        """Clicks a conversation of the list (found again at each try: the list redraws as events land)."""
        def click(d):
            item = pick(self.mine())
            if not item:
                return False
            d.find_element(By.CSS_SELECTOR, f'#mine .item[data-conversation="{item["conversation"]}"] button.open').click()
            return d.find_element(By.CSS_SELECTOR, f'#mine .item[data-conversation="{item["conversation"]}"]').get_attribute("class").find("selected") >= 0
        until(self.d, click, what)

    def select_first(self):
        self.select()

    def thread(self):
        return self.d.execute_script(READ_MESSAGES, self.d.find_element(By.ID, "events"))

    def say(self, text):
        box = self.d.find_element(By.ID, "text")
        box.send_keys(text)
        box.send_keys(Keys.ENTER)


def has_text(items, text):
    return any(t == text for _, t in items)


def test_the_whole_journey_in_two_browsers(fresh_server, browsers):
    server = fresh_server("--demo")
    ann = Console(browsers(), server, "ann", "Ann")
    shop = Widget(browsers(phone=True), server)
    shop.open()

    # The order card is in front of both before anyone has typed a word.
    until(shop.d, lambda d: "A-1042" in shop.text(".order-card"), "the order card in the widget")
    until(shop.d, lambda d: "Ann is helping you" in shop.text(".who"), "who is helping")
    ann.select_first()
    until(ann.d, lambda d: "A-1042" in d.find_element(By.ID, "order").text and "Espresso machine" in d.find_element(By.ID, "order").text,
          "the order card in the console")
    assert not ann.thread(), "no message yet"

    # Typing, then messages both ways.
    shop.one("#parley-text").send_keys("Where is")
    until(ann.d, lambda d: "is typing" in d.find_element(By.ID, "typing").text, "the customer typing, in the console")
    shop.one("#parley-text").send_keys(" my espresso machine?", Keys.ENTER)
    until(ann.d, lambda d: has_text(ann.thread(), "Where is my espresso machine?"), "the customer's message in the console")
    until(ann.d, lambda d: d.find_element(By.ID, "typing").text == "", "typing cleared by the message")
    ann.d.find_element(By.ID, "text").send_keys("Let me check")
    until(shop.d, lambda d: "Ann is typing" in shop.text(".typing"), "the agent typing, in the widget")
    ann.say(" — it left our warehouse yesterday.")
    until(shop.d, lambda d: has_text(shop.messages(), "Let me check — it left our warehouse yesterday."), "the agent's reply in the widget")

    # Read receipts: each side sees the other has read its message.
    until(ann.d, lambda d: any("seen" in c for c, t in ann.thread() if t.startswith("Let me check")), "Seen on the agent's message")
    until(shop.d, lambda d: any("seen" in c for c, t in shop.messages() if t.startswith("Where is")), "Seen on the customer's message")
    shot(shop.d, "widget")
    shot(ann.d, "console")

    # Transfer to Ben: Ann's list empties, Ben has the whole thread, the customer sees Ben.
    ben = Console(browsers(), server, "ben", "Ben")
    ann.d.find_element(By.ID, "transfer-to").send_keys("ben", Keys.ENTER)
    until(ann.d, lambda d: not [i for i in ann.mine() if not i["resolved"]], "the conversation gone from Ann's list")
    ben.select_first()
    until(ben.d, lambda d: has_text(ben.thread(), "Where is my espresso machine?") and "A-1042" in d.find_element(By.ID, "order").text,
          "Ben has the order and the thread")
    until(shop.d, lambda d: "Ben is helping you" in shop.text(".who"), "the widget names Ben")

    # Resolve; the customer rates; Ben sees the rating.
    ben.d.find_element(By.ID, "resolve").click()
    until(shop.d, lambda d: shop.q(".csat") and shop.q(".csat")[0].is_displayed(), "the CSAT prompt")
    shot(shop.d, "widget-csat")
    shop.q('.star[data-score="4"]')[0].click()
    shop.one("#csat-comment").send_keys("Quick, thanks")
    shop.one(".send-csat").click()
    until(ben.d, lambda d: "Rated 4/5" in d.find_element(By.ID, "events").text, "the rating in Ben's console")
    until(shop.d, lambda d: "Thanks for your feedback" in shop.text(".thanks"), "the thanks in the widget")
    assert "Quick, thanks" in ben.d.find_element(By.ID, "events").text


def test_both_pages_ride_out_a_server_restart_and_a_message_typed_while_it_is_down(fresh_server, browsers):
    server = fresh_server("--demo")
    data, port = server.data_dir, server.port
    ann = Console(browsers(), server, "ann", "Ann")
    shop = Widget(browsers(), server)
    shop.open()
    until(shop.d, lambda d: "Ann is helping you" in shop.text(".who"), "assigned")
    shop.say("Hello?")
    ann.select_first()
    until(ann.d, lambda d: has_text(ann.thread(), "Hello?"), "first message in the console")

    server.stop(signal.SIGKILL)
    until(shop.d, lambda d: shop.q(".banner") and shop.q(".banner")[0].is_displayed(), "the reconnecting banner")
    until(ann.d, lambda d: "Reconnecting" in d.find_element(By.ID, "conn").text, "the console says it is reconnecting")
    shop.say("Typed while you were away")
    until(shop.d, lambda d: any("pending" in c for c, t in shop.messages() if t == "Typed while you were away"), "the message waits in the outbox")
    shot(shop.d, "widget-offline")

    again = fresh_server("--demo", "--port", str(port), data_dir=data)
    assert again.port == port
    until(shop.d, lambda d: not shop.q(".banner")[0].is_displayed(), "the banner clears itself")
    until(ann.d, lambda d: d.find_element(By.ID, "conn").text == "Online", "the console back online")
    until(ann.d, lambda d: has_text(ann.thread(), "Typed while you were away"), "the offline message in the console")
    ann.say("Got it")
    until(shop.d, lambda d: has_text(shop.messages(), "Got it"), "a reply after the restart")

    # Nothing lost, nothing twice: in both pages and in the log.
    for texts in ([t for _, t in ann.thread()], [t for c, t in shop.messages() if "pending" not in c]):
        assert texts == ["Hello?", "Typed while you were away", "Got it"], texts
    conv = ann.d.execute_script("return [...window.parleyConsole.client.conversations.keys()][0]")
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/conversations/{conv}", headers={"Authorization": f"Bearer {again.secrets['apiKey']}"})
    events = json.loads(urllib.request.urlopen(req, timeout=5).read())["events"]
    assert [e["text"] for e in events if e["type"] == "message"] == ["Hello?", "Typed while you were away", "Got it"]


def test_the_console_with_fifty_conversations_and_a_long_thread(fresh_server, browsers):
    server = fresh_server()
    secret = server.secrets["jwtSecret"]

    async def customers():
        cs = []
        for i in range(50):
            c = await Client.open(server, f"cust{i:02d}", name=f"Customer {i:02d}")
            opened = await c.request({"type": "conversation.open", "order": None})
            cs.append((c, opened["conversation"]["id"]))
        return cs
    loop = asyncio.new_event_loop()
    cs = loop.run_until_complete(customers())
    ann = Console(browsers(), server, "ann", "Ann", capacity=50)
    until(ann.d, lambda d: len(ann.mine()) == 50, "50 conversations in the console")

    async def talk():
        # A long thread on the first one: its customer sends 1,000 messages from 5 sessions (200
        # each: within a session's burst allowance), then one message on each of the others.
        first, conv0 = cs[0]
        sessions = [await Client.open(server, "cust00", name="Customer 00") for _ in range(5)]
        async def burst(c, base):
            replies = await asyncio.gather(*[c.request({"type": "message.send", "conversation": conv0, "clientMsgId": f"m{base + k}",
                                                        "text": f"long {base + k}"}, timeout=30) for k in range(200)])
            assert all(r["type"] == "ack" for r in replies), [r for r in replies if r["type"] != "ack"][:1]
        for i, c in enumerate(sessions):
            await burst(c, i * 200)
            await c.close()
        for i, (c, conv) in enumerate(cs[1:], 1):
            r = await c.request({"type": "message.send", "conversation": conv, "clientMsgId": "hi", "text": f"hello from {i:02d}"})
            assert r["type"] == "ack", r
    loop.run_until_complete(talk())
    until(ann.d, lambda d: sum(1 for i in ann.mine() if i["unread"]) == 50, "an unread count on each")
    # Newest activity first.
    first = ann.mine()[0]
    assert "Customer 49" in first["text"] and "hello from 49" in first["text"], first
    shot(ann.d, "console-50")

    # The long thread: the latest messages drawn, older ones paged in on demand.
    ann.select(lambda items: next((i for i in items if "Customer 00" in i["text"]), None), "the long thread")
    until(ann.d, lambda d: has_text(ann.thread(), "long 999"), "the newest message of the long thread")
    drawn = len(ann.thread())
    assert drawn < 1000, "not everything is drawn at once"
    ann.d.find_element(By.ID, "earlier").click()
    until(ann.d, lambda d: len(ann.thread()) > drawn, "older messages paged in")
    until(ann.d, lambda d: not [i for i in ann.mine() if "Customer 00" in i["text"] and i["unread"]], "read once opened")
    for c, _ in cs:
        loop.run_until_complete(c.close())
    loop.close()


def test_two_tabs_of_one_agent_stay_consistent(fresh_server, browsers):
    server = fresh_server("--demo")
    d = browsers()
    first = Console(d, server, "ann", "Ann")
    tab_a = d.current_window_handle
    d.switch_to.new_window("tab")
    second = Console(d, server, "ann", "Ann")  # same profile: same localStorage, its own session
    tab_b = d.current_window_handle
    shop = Widget(browsers(), server)
    shop.open()
    until(shop.d, lambda _: "Ann is helping you" in shop.text(".who"), "assigned to Ann")
    shop.say("Two tabs?")

    # Both tabs list it and show the thread; a reply from one appears in the other.
    second.select_first()
    until(d, lambda _: has_text(second.thread(), "Two tabs?"), "the message in tab B")
    d.switch_to.window(tab_a)
    first.select_first()
    until(d, lambda _: has_text(first.thread(), "Two tabs?"), "the message in tab A")
    first.say("From tab A")
    d.switch_to.window(tab_b)
    until(d, lambda _: has_text(second.thread(), "From tab A"), "tab A's reply in tab B")
    until(shop.d, lambda _: has_text(shop.messages(), "From tab A"), "the reply in the widget")

    # Status: away in one tab is away in the other.
    from selenium.webdriver.support.ui import Select
    Select(d.find_element(By.ID, "status")).select_by_value("away")
    d.switch_to.window(tab_a)
    until(d, lambda _: d.find_element(By.ID, "status").get_attribute("value") == "away", "tab A follows to away")


def test_console_signs_in_through_the_deployments_token_url(fresh_server, browsers):
    """Production sign-in: the console fetches an agent token from a URL of the deployment (here a
    tiny sign-in service on another port, answering with CORS for the console's origin)."""
    import http.server, threading
    served = []

    class SignIn(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            served.append(self.path)
            body = json.dumps({"token": token(secret, "dora", "agent", "Dora")}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin", "*"))
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    sso = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SignIn)
    threading.Thread(target=sso.serve_forever, daemon=True).start()
    try:
        server = fresh_server("--console-token-url", f"http://127.0.0.1:{sso.server_port}/parley/token")
        secret = server.secrets["jwtSecret"]
        d = browsers()
        d.get(f"http://127.0.0.1:{server.port}/console")
        until(d, lambda _: d.find_element(By.ID, "conn").text == "Online" and d.find_element(By.ID, "me-name").text == "Dora",
              "signed in as Dora by the token URL")
        assert served == ["/parley/token"]
        assert not d.find_element(By.ID, "signin").is_displayed()
    finally:
        sso.shutdown()


def test_console_sign_in_form_refuses_a_bad_token_and_takes_a_good_one(fresh_server, browsers):
    server = fresh_server()
    d = browsers()
    d.get(f"http://127.0.0.1:{server.port}/console")
    until(d, lambda _: d.find_element(By.ID, "signin").is_displayed(), "the sign-in form")
    d.find_element(By.ID, "signin-token").send_keys("not-a-token")
    d.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    until(d, lambda _: "refused" in d.find_element(By.ID, "signin-why").text, "the refusal said")
    assert d.find_element(By.ID, "signin").is_displayed()
    d.find_element(By.ID, "signin-token").send_keys(token(server.secrets["jwtSecret"], "eve", "agent", "Eve"))
    d.find_element(By.CSS_SELECTOR, "#signin-form button").click()
    until(d, lambda _: d.find_element(By.ID, "conn").text == "Online" and d.find_element(By.ID, "me-name").text == "Eve", "signed in")
    d.find_element(By.ID, "sign-out").click()
    until(d, lambda _: d.find_element(By.ID, "signin").is_displayed(), "signed out")

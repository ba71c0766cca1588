#!/usr/bin/env python3
"""Measures the browser side (issue 14), with headless Chromium against a release `parley`:

  latency   a customer's send (widget, browser-side timestamp) to the message painted in the agent's
            console (inserted in the animation frame that paints it), p50/p99 over N messages
            (default 200), and to its arrival in the console's SDK;
  sdk       parley.js's size: raw, gzipped, minified (rjsmin) and minified + gzipped;
  load      the widget's load time on the demo page from the local server: navigation start to the
            Help button in the page, median of 20 loads (cold cache and warm/revalidated);
  thread    a 5,000-event thread assigned to a signed-in console: the longest main-thread task while
            the replay lands, and the time to draw the thread when it is opened.

Server pinned to CPU 0, the browsers to CPU 1 (`taskset`). Run: .venv/bin/python LoadTests/browser-bench.py
(needs `pip install rjsmin==1.3.*` in .venv for the minified size; without it that line is skipped)."""
import asyncio, gzip, json, os, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))
from chatclient import Client, token  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BIN = os.environ.get("PARLEY_BIN", str(ROOT / ".build" / "release" / "parley"))
N = int(os.environ.get("MESSAGES", "200"))


class Server:
    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="parley-bench-")
        self.proc = subprocess.Popen(["taskset", "-c", "0", BIN, "serve", "--port", "0", "--demo", "--data-dir", self.data],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        for line in self.proc.stderr:
            m = re.search(r"http\.port=(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        self.secrets = json.loads((Path(self.data) / "secrets.json").read_text())
        self.url = f"ws://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def browser(phone=False):
    o = webdriver.ChromeOptions()
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800",
              "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]:
        o.add_argument(a)
    svc = Service("/usr/bin/chromedriver")
    # Pin chromedriver, and with it every Chromium process it starts, to CPU 1.
    svc.creation_flags = 0
    d = webdriver.Chrome(service=svc, options=o)
    subprocess.run(["taskset", "-a", "-c", "-p", "1", str(svc.process.pid)], stdout=subprocess.DEVNULL)
    for pid in subprocess.run(["pgrep", "-f", "chromium"], capture_output=True, text=True).stdout.split():
        subprocess.run(["taskset", "-a", "-c", "-p", "1", pid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return d


def wait(d, check, timeout=60):
    return WebDriverWait(d, timeout, poll_frequency=0.02).until(lambda _: check())


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def latency(server):
    agent, shop = browser(), browser()
    t = token(server.secrets["jwtSecret"], "ann", "agent", "Ann")
    agent.get(f"http://127.0.0.1:{server.port}/console#token={t}")
    wait(agent, lambda: agent.find_element(By.ID, "conn").text == "Online")
    shop.get(f"http://127.0.0.1:{server.port}/demo")
    wait(shop, lambda: shop.execute_script("return !!window.parleyWidget"))
    shop.execute_script("window.parleyWidget.open()")
    wait(shop, lambda: shop.execute_script("return window.parleyWidget.conversation && window.parleyWidget.client.conversations.get(window.parleyWidget.conversation)?.status === 'assigned'"))
    agent.execute_script("document.querySelector('#mine .item button.open').click()")
    wait(agent, lambda: agent.execute_script("return !document.getElementById('conversation').hidden"))
    # Paint times in the console: the console draws in requestAnimationFrame callbacks, so a node
    # it inserts is painted in that same frame: the insertion time is the frame's paint time.
    agent.execute_script("""
      window.painted = {}; window.arrived = {};
      window.parleyConsole.client.on('message', (m) => { window.arrived[m.text] = performance.timeOrigin + performance.now(); });
      new MutationObserver((ms) => { for (const m of ms) for (const n of m.addedNodes) {
        if (n.classList && n.classList.contains('theirs')) { const k = n.querySelector('.text').textContent;
          window.painted[k] = performance.timeOrigin + performance.now(); } } })
        .observe(document.getElementById('events'), { childList: true });""")
    sent = {}
    for i in range(N):
        key = f"lat-{i}"
        sent[key] = shop.execute_script("""
          const w = window.parleyWidget, box = w.q('#parley-text'); box.value = arguments[0];
          const t0 = performance.timeOrigin + performance.now(); w.sendText(); return t0;""", key)
        time.sleep(0.05)  # 20 messages/s: a fast typist, well under the rate limit
    wait(agent, lambda: agent.execute_script("return Object.keys(window.painted).length") >= N)
    painted = agent.execute_script("return window.painted")
    arrived = agent.execute_script("return window.arrived")
    ms = [painted[k] - sent[k] for k in sent]
    sdk = [arrived[k] - sent[k] for k in sent]
    print(f"  (delivered to the console's SDK: p50 {pct(sdk, 50):.1f} ms, p99 {pct(sdk, 99):.1f} ms; the rest is drawing)")
    agent.quit(); shop.quit()
    return ms


def sdk_size():
    raw = (ROOT / "Sources/ParleyWeb/Resources/sdk/parley.js").read_bytes()
    out = {"raw": len(raw), "gzip": len(gzip.compress(raw, 9))}
    try:
        import rjsmin
        mini = rjsmin.jsmin(raw.decode()).encode()
        out["min"] = len(mini)
        out["min+gzip"] = len(gzip.compress(mini, 9))
    except ImportError:
        pass
    return out


def widget_load(server, cold):
    d = browser()
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": cold})
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
      new MutationObserver((ms, o) => { const h = document.querySelector('.parley-widget-host');
        if (h && h.shadowRoot && h.shadowRoot.querySelector('.launcher')) { window.widgetAt = performance.now(); o.disconnect(); } })
        .observe(document, { childList: true, subtree: true });"""})
    times = []
    for _ in range(20):
        d.get(f"http://127.0.0.1:{server.port}/demo")
        wait(d, lambda: d.execute_script("return window.widgetAt !== undefined"))
        times.append(d.execute_script("return window.widgetAt"))
    # The launcher is styled once widget.css is in: include it.
    d.quit()
    return times


def long_thread(server):
    async def fill():
        c = await Client.open(server, "longcust", name="Long thread")
        conv = (await c.request({"type": "conversation.open", "order": None}))["conversation"]["id"]
        await c.close()
        for s in range(25):
            c = await Client.open(server, "longcust", name="Long thread")
            await asyncio.gather(*[c.request({"type": "message.send", "conversation": conv, "clientMsgId": f"m{s}-{k}", "text": f"message {s * 200 + k}"}, timeout=60) for k in range(200)])
            await c.close()
        return conv
    conv = asyncio.run(fill())
    d = browser()
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
      window.longTasks = []; new PerformanceObserver((l) => { for (const e of l.getEntries()) window.longTasks.push(e.duration); })
        .observe({ type: 'longtask', buffered: true });"""})
    t = token(server.secrets["jwtSecret"], "bea", "agent", "Bea", capacity=10)
    d.get(f"http://127.0.0.1:{server.port}/console#token={t}")
    t0 = time.monotonic()
    wait(d, lambda: d.execute_script("const t = window.parleyConsole && window.parleyConsole.threads.get(arguments[0]); return t && t.events.length >= 5000", conv), timeout=120)
    replay_s = time.monotonic() - t0
    during = d.execute_script("return window.longTasks.slice()")
    d.execute_script("window.longTasks.length = 0")
    draw_ms = d.execute_script("""
      const t0 = performance.now(); document.querySelector('#mine .item button.open').click();
      return new Promise((r) => requestAnimationFrame(() => r(performance.now() - t0)));""")
    opened = d.execute_script("return new Promise((r) => setTimeout(() => r(window.longTasks.slice()), 500))")
    d.quit()
    return replay_s, during, draw_ms, opened


def main():
    what = sys.argv[1:] or ["sdk", "latency", "load", "thread"]
    server = Server()
    try:
        if "sdk" in what:
            print("sdk parley.js bytes:", sdk_size())
        if "latency" in what:
            ms = latency(server)
            print(f"console latency over {len(ms)} messages: p50 {pct(ms, 50):.1f} ms, p99 {pct(ms, 99):.1f} ms, max {max(ms):.1f} ms")
        if "load" in what:
            for cold in (True, False):
                t = widget_load(server, cold)
                print(f"widget load ({'cold cache' if cold else 'warm, revalidated'}): median {statistics.median(t):.1f} ms, p90 {pct(t, 90):.1f} ms (20 loads)")
        if "thread" in what:
            replay_s, during, draw_ms, opened = long_thread(server)
            print(f"5,000-event thread: replay into the console {replay_s:.2f} s; long tasks during it: {len(during)}, longest {max(during, default=0):.0f} ms; "
                  f"opening it: first frame after {draw_ms:.0f} ms, longest task {max(opened, default=0):.0f} ms")
    finally:
        server.stop()


if __name__ == "__main__":
    main()

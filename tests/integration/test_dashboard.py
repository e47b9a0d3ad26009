"""The operator dashboard (GET / on the admin listener) in a real browser.

Debian's Chromium loads the page headless from the real binary in front of two spillway-testd
backends; the test reads the DOM the page's script built: both backends up, then one killed and
the page shows it down with the health check's reason while the other stays up. It also checks the
page fetches nothing from elsewhere, that an unreachable Spillway gives a banner while the last data
stays on screen, and takes a screenshot while one backend is down and traffic flows
(SPILLWAY_UPDATE_SCREENSHOT=1 writes it to docs/dashboard.png for the README).

Chromium runs with virtual time: --virtual-time-budget lets the page's 1 s poll timer fire that many
virtual milliseconds' worth of times without waiting for real time to pass.
"""

import http.client
import http.server
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
from html.parser import HTMLParser

from harness import REPO, Spillway, free_port, wait_until
from testd import Testd

CHROMIUM = shutil.which("chromium")
CHROMIUM_TIMEOUT = 40  # seconds; past that Chromium is killed (by its process group) and the test fails
DASHBOARD_SOURCE = os.path.join(REPO, "src", "admin", "dashboard.html")
SCREENSHOT_DOCS = os.path.join(REPO, "docs", "dashboard.png")


def run_chromium(url, *args, timeout=CHROMIUM_TIMEOUT):
    """Runs headless Chromium on `url` with `args` and returns its standard output.

    Chromium and its helpers run in a session of their own, with a profile directory of their own,
    so that a hung browser is stopped whole by its process group id, and nothing else.
    """
    profile = tempfile.mkdtemp(prefix="spillway-chromium-")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           "--disable-background-networking", "--disable-component-update", "--mute-audio",
           "--user-data-dir=" + profile, *args, url]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("chromium did not finish within %ss: %s" % (timeout, " ".join(cmd)))
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0:
        raise AssertionError("chromium exited %s: %s" % (proc.returncode, err.decode(errors="replace")[-2000:]))
    return out.decode(errors="replace")


def dump_dom(url, budget_ms=4000):
    return run_chromium(url, "--virtual-time-budget=%d" % budget_ms, "--dump-dom")


class DashboardDom(HTMLParser):
    """Backend rows (tr[data-backend]) with their attributes and the text of their .reason, and
    whether the unreachable banner (#banner) is shown, with its text."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.rows = {}  # address -> {"upstream", "state", "reason"}
        self.rate_limits = {}  # policy name -> limited count as the page shows it
        self.banner_shown = False
        self.banner_text = ""
        self._row = None
        self._reason_depth = 0
        self._banner_depth = 0
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if self._reason_depth:
            self._reason_depth += 1
        if self._banner_depth:
            self._banner_depth += 1
        if "data-rate-limit" in a:
            self.rate_limits[a["data-rate-limit"]] = a.get("data-limited")
        if tag == "tr" and "data-backend" in a:
            self._row = {"upstream": a.get("data-upstream"), "state": a.get("data-state"), "reason": ""}
            self.rows[a["data-backend"]] = self._row
        elif "reason" in classes and self._row is not None:
            self._reason_depth = 1
        elif a.get("id") == "banner":
            self.banner_shown = "hidden" not in a
            self._banner_depth = 1

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if self._reason_depth:
            self._reason_depth -= 1
        if self._banner_depth:
            self._banner_depth -= 1

    def handle_data(self, data):
        if self._reason_depth and self._row is not None:
            self._row["reason"] += data
        if self._banner_depth:
            self.banner_text += data


class Traffic:
    """Background clients sending GET / through Spillway on keep-alive connections, about `rate`
    requests per second in all, until stopped."""

    def __init__(self, port, clients=2, rate=300):
        self.port = port
        self.delay = clients / float(rate)
        self.stopping = threading.Event()
        self.sent = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self):
        conn = None
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/")
                conn.getresponse().read()
                self.sent += 1
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            self.stopping.wait(self.delay)
        if conn is not None:
            conn.close()

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(10)


@unittest.skipIf(CHROMIUM is None, "chromium is not installed (apt-get install chromium)")
class DashboardTest(unittest.TestCase):
    def setUp(self):
        self.a = Testd(name="a", latency="2ms")
        self.addCleanup(self.a.stop)
        self.b = Testd(name="b", latency="2ms")
        self.addCleanup(self.b.stop)
        self.sw = Spillway("""
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: public
    listen: 127.0.0.1:{port}
    routes:
      - { match: { path_prefix: /limited }, upstream: app, rate_limit: per-client }
      - { upstream: app }
rate_limits: [ { name: per-client, rate: 1/m, burst: 1 } ]
upstreams:
  - name: app
    backends: [ { address: %s }, { address: %s } ]
    health_check: { http: { path: /healthz }, interval: 500ms, timeout: 300ms, unhealthy_threshold: 2 }
""" % (self.a.address, self.b.address))
        self.addCleanup(self.sw.stop)
        self.url = "http://127.0.0.1:%d/" % self.sw.admin_port
        self.assertTrue(wait_until(lambda: self.healthy(self.a) and self.healthy(self.b), 10),
                        "both backends healthy in /status")

    def healthy(self, backend):
        return self.sw.backend_status("app", backend.address)["healthy"]

    def rows(self, budget_ms=4000):
        dom = DashboardDom(dump_dom(self.url, budget_ms))
        return dom.rows

    def test_page_is_self_contained_and_served_from_the_source(self):
        code, body = self.sw.admin("GET", "/")
        self.assertEqual(code, 200)
        with open(DASHBOARD_SOURCE, "rb") as f:
            self.assertEqual(body, f.read(), "GET / is src/admin/dashboard.html (rebuild spillway after editing it)")
        html = body.decode()
        # No absolute URLs at all (an inline SVG needs no namespace URL in HTML), and every URL the page
        # loads or links to is on its own origin.
        self.assertEqual(re.findall(r"(?i)\b(?:https?|wss?|ftp):", html), [])
        for attr, value in re.findall(r"""(?i)\b(src|href|action|srcset)\s*=\s*["']([^"']*)["']""", html):
            self.assertTrue(value.startswith(("/", "#", "data:")) and not value.startswith("//"),
                            "%s=%r leaves the page's origin" % (attr, value))
        fetched = re.findall(r"""\bfetch(?:Text)?\(\s*["'`]([^"'`]*)""", html)
        self.assertIn("/status", fetched)
        for url in fetched:
            self.assertTrue(url.startswith("/") and not url.startswith("//"), "fetch(%r) leaves the origin" % url)
        self.assertNotRegex(html, r"(?i)@import|<link[^>]+stylesheet|<script[^>]+src=|<iframe|XMLHttpRequest|"
                                  r"WebSocket\(|EventSource\(|importScripts|new Image\(")
        # Links an operator needs during an incident.
        self.assertIn('href="/degradation?format=text"', html)
        self.assertIn('href="/metrics"', html)

    def test_rate_limit_policies_are_shown_with_what_they_limited(self):
        self.assertEqual(self.sw.request("GET", "/limited")[0], 200)
        self.assertEqual(self.sw.request("GET", "/limited")[0], 429)
        dom = DashboardDom(dump_dom(self.url, 2000))
        self.assertEqual(dom.rate_limits, {"per-client": "1"})

    def test_a_killed_backend_shows_down_with_its_reason(self):
        rows = self.rows()
        self.assertEqual(set(rows), {self.a.address, self.b.address}, rows)
        for address, row in rows.items():
            self.assertEqual(row["upstream"], "app")
            self.assertEqual(row["state"], "up", "%s: %s" % (address, row))

        self.b.kill()
        self.assertTrue(wait_until(lambda: not self.healthy(self.b), 5), "/status reports the killed backend unhealthy")
        traffic = Traffic(self.sw.port)
        try:
            self.assertTrue(wait_until(lambda: traffic.sent >= 50, 10), "traffic flows")
            rows = self.rows()
            self.assertEqual(rows[self.a.address]["state"], "up", rows)
            down = rows[self.b.address]
            self.assertEqual(down["state"], "down", rows)
            self.assertEqual(down["upstream"], "app")
            self.assertIn("unhealthy", down["reason"])
            self.assertIn("connect", down["reason"].lower())

            # A picture of the page in that state: a minute of virtual time fills the 60 s sparklines.
            update = os.environ.get("SPILLWAY_UPDATE_SCREENSHOT") == "1"
            out_dir = tempfile.mkdtemp(prefix="spillway-screenshot-")
            self.addCleanup(shutil.rmtree, out_dir, True)
            path = SCREENSHOT_DOCS if update else os.path.join(out_dir, "dashboard.png")
            if update:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            run_chromium(self.url, "--virtual-time-budget=60000", "--hide-scrollbars", "--window-size=1280,900",
                         "--screenshot=" + path)
        finally:
            traffic.stop()
        with open(path, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n", path)
        self.assertGreater(len(png), 10 * 1024, path)

    def test_unreachable_spillway_shows_a_banner_and_keeps_the_last_data(self):
        # The real page, served by a stand-in whose /status answers once (from the real Spillway)
        # and then fails: the page must keep the rows it drew and say Spillway is not reachable.
        code, page = self.sw.admin("GET", "/")
        self.assertEqual(code, 200)
        code, status = self.sw.admin("GET", "/status")
        self.assertEqual(code, 200)
        calls = {"status": 0}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/":
                    body, ctype, code = page, "text/html; charset=utf-8", 200
                elif self.path == "/status":
                    calls["status"] += 1
                    if calls["status"] == 1:
                        body, ctype, code = status, "application/json", 200
                    else:
                        body, ctype, code = b"gone\n", "text/plain", 502
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("content-type", ctype)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            html = dump_dom("http://127.0.0.1:%d/" % server.server_address[1])
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
        self.assertGreaterEqual(calls["status"], 2, "the page polled /status again")
        dom = DashboardDom(html)
        self.assertTrue(dom.banner_shown, "banner shown")
        self.assertIn("Spillway not reachable", dom.banner_text)
        self.assertEqual({a: r["state"] for a, r in dom.rows.items()}, {self.a.address: "up", self.b.address: "up"},
                         "the last data stays on the page")


if __name__ == "__main__":
    unittest.main()

"""Admin API safety (SPEC section 5) through the real binary: DNS rebinding (Host), cross-site form
posts (Origin, form content types), the bearer token from admin.token_file, GET /ready through a
drain, and the limits on admin connections (head size, body size, header timeout, connection cap).

Requests are sent as raw bytes where a browser's exact headers matter, so that nothing a client
library adds (or leaves out) changes what is tested.
"""

import functools
import http.client
import http.server
import os
import signal
import socket
import tempfile
import threading
import time
import unittest

from harness import Spillway, wait_until
from test_dashboard import CHROMIUM, run_chromium
from testd import Testd

CONFIG = """
workers: 1
drain_timeout: 5s
admin: { listen: 127.0.0.1:{admin_port}%s }
listeners:
  - listen: 127.0.0.1:{port}
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    backends: [ { address: %s } ]
"""


def admin_raw(lb, data, timeout=5.0):
    """Sends raw bytes to the admin port; returns (status, headers dict, body) of the first answer,
    read until the server closes or `timeout`."""
    with socket.create_connection(("127.0.0.1", lb.admin_port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else None
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def generation(lb):
    return lb.status()["config"]["generation"]


class AdminSafetyTest(unittest.TestCase):
    def setUp(self):
        self.backend = Testd(name="a")
        self.lb = Spillway(CONFIG % ("", self.backend.address))
        self.host = "127.0.0.1:%d" % self.lb.admin_port

    def tearDown(self):
        self.lb.stop()
        self.backend.stop()

    def test_cross_site_form_post_is_refused_and_nothing_reloads(self):
        """What Chromium sends for <form method=post action=http://127.0.0.1:PORT/reload> on
        http://evil.example: Origin, a form content type, a form body. 403, and no reload."""
        before = generation(self.lb)
        reloads = self.lb.metric('spillway_config_reloads_total{result="success"}')
        body = b"x=1"
        request = (b"POST /reload HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\n"
                   b"Origin: http://evil.example\r\n"
                   b"Content-Type: application/x-www-form-urlencoded\r\n"
                   b"Referer: http://evil.example/attack.html\r\n"
                   b"Sec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: navigate\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        status, _, text = admin_raw(self.lb, request)
        self.assertEqual(status, 403, text)
        # The same without Origin (old browsers, or a referrer policy that drops it): the form's
        # content type alone is refused, whatever its case and parameters.
        for ctype in (b"application/x-www-form-urlencoded", b"Multipart/Form-Data; boundary=x",
                      b"TEXT/PLAIN;charset=UTF-8", b" text/plain "):
            request = (b"POST /reload HTTP/1.1\r\nHost: " + self.host.encode() + b"\r\n"
                       b"Content-Type: " + ctype + b"\r\nContent-Length: 3\r\n\r\nx=1")
            status, _, text = admin_raw(self.lb, request)
            self.assertEqual(status, 403, (ctype, text))
        # /degradation/reset too.
        status, _, _ = admin_raw(self.lb, b"POST /degradation/reset HTTP/1.1\r\nHost: " + self.host.encode() +
                                 b"\r\nOrigin: null\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(status, 403)
        self.assertEqual(generation(self.lb), before)
        self.assertEqual(self.lb.metric('spillway_config_reloads_total{result="success"}'), reloads)
        self.assertGreaterEqual(self.lb.metric('spillway_admin_requests_rejected_total{reason="origin"}'), 2)
        self.assertGreaterEqual(self.lb.metric('spillway_admin_requests_rejected_total{reason="content_type"}'), 4)
        # A script's POST (curl, the harness: no Origin, no form type) still reloads.
        status, _, text = admin_raw(self.lb, b"POST /reload HTTP/1.1\r\nHost: " + self.host.encode() +
                                    b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        self.assertEqual(status, 200, text)
        self.assertEqual(generation(self.lb), before + 1)

    def test_dns_rebinding_host_is_refused(self):
        """A page on evil.example whose name was re-pointed at 127.0.0.1 sends Host: evil.example:PORT."""
        before = generation(self.lb)
        for host in ("evil.example:%d" % self.lb.admin_port, "evil.example", "localhost.evil.example",
                     "127.0.0.1.nip.io:%d" % self.lb.admin_port, "[::1", "127.0.0.1:99999", "127.1"):
            status, _, text = admin_raw(self.lb, b"GET /status HTTP/1.1\r\nHost: " + host.encode() +
                                        b"\r\nAccept: */*\r\n\r\n")
            self.assertEqual(status, 403, (host, text))
            self.assertNotIn(b"upstreams", text)
        status, _, _ = admin_raw(self.lb, b"POST /reload HTTP/1.1\r\nHost: evil.example:%d\r\n"
                                 b"Content-Length: 0\r\n\r\n" % self.lb.admin_port)
        self.assertEqual(status, 403)
        self.assertEqual(generation(self.lb), before)
        self.assertGreaterEqual(self.lb.metric('spillway_admin_requests_rejected_total{reason="host"}'), 8)
        for host in (self.host, "localhost", "LOCALHOST:%d" % self.lb.admin_port, "127.0.0.1", "[::1]:8080",
                     "10.1.2.3:1"):
            status, _, text = admin_raw(self.lb, b"GET /status HTTP/1.1\r\nHost: " + host.encode() +
                                        b"\r\nConnection: close\r\n\r\n")
            self.assertEqual(status, 200, (host, text))
        # No Host on HTTP/1.1 is malformed; two are too. HTTP/1.0 may leave it out.
        status, _, _ = admin_raw(self.lb, b"GET /status HTTP/1.1\r\n\r\n")
        self.assertEqual(status, 400)
        status, _, _ = admin_raw(self.lb, b"GET /status HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n")
        self.assertEqual(status, 400)
        status, _, _ = admin_raw(self.lb, b"GET /status HTTP/1.0\r\n\r\n")
        self.assertEqual(status, 200)

    def test_methods_other_than_get_head_post_get_405(self):
        for method in (b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE"):
            status, _, _ = admin_raw(self.lb, method + b" /reload HTTP/1.1\r\nHost: localhost\r\n"
                                     b"Content-Length: 0\r\n\r\n")
            self.assertEqual(status, 405, method)
        # HEAD answers the length of GET's body without the body.
        status, headers, body = admin_raw(self.lb, b"HEAD /status HTTP/1.1\r\nHost: localhost\r\n"
                                          b"Connection: close\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertGreater(int(headers["content-length"]), 0)
        self.assertEqual(body, b"")

    def test_limits_head_body_and_connections(self):
        big = b"GET /status HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * (40 * 1024) + b"\r\n\r\n"
        status, _, _ = admin_raw(self.lb, big)
        self.assertEqual(status, 431)
        status, _, _ = admin_raw(self.lb, b"POST /reload HTTP/1.1\r\nHost: localhost\r\n"
                                 b"Content-Length: 10000000\r\n\r\n")
        self.assertEqual(status, 413)
        chunk = b"%x\r\n%s\r\n" % (16 * 1024, b"z" * 16 * 1024)
        status, _, _ = admin_raw(self.lb, b"POST /reload HTTP/1.1\r\nHost: localhost\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 6 + b"0\r\n\r\n")
        self.assertEqual(status, 413)
        self.assertGreaterEqual(self.lb.metric('spillway_admin_requests_rejected_total{reason="too_large"}'), 3)
        # 64 idle connections are the cap: the next one is closed at once, and counted.
        idle = [socket.create_connection(("127.0.0.1", self.lb.admin_port), timeout=5) for _ in range(64)]
        try:
            def refused():
                with socket.create_connection(("127.0.0.1", self.lb.admin_port), timeout=5) as extra:
                    try:
                        extra.sendall(b"GET /ready HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        return extra.recv(100) == b""  # closed without an answer
                    except (ConnectionResetError, BrokenPipeError):
                        return True
            self.assertTrue(wait_until(refused, 5))
        finally:
            for s in idle:
                s.close()
        # Closed idle connections make room again.
        def counted():
            try:
                return self.lb.metric("spillway_admin_connections_rejected_total", 0) >= 1
            except OSError:
                return False  # the server has not seen every close yet
        self.assertTrue(wait_until(counted, 5))

    def test_slow_head_is_cut_off_at_the_header_timeout(self):
        """A client that sends half a head and stalls is closed after the header timeout (10 s)."""
        with socket.create_connection(("127.0.0.1", self.lb.admin_port), timeout=20) as s:
            s.sendall(b"GET /status HTTP/1.1\r\nHost: local")
            start = time.monotonic()
            data = s.recv(100)
            took = time.monotonic() - start
        self.assertEqual(data, b"")
        self.assertLess(took, 15)
        self.assertGreaterEqual(self.lb.metric('spillway_admin_requests_rejected_total{reason="timeout"}'), 1)

    def test_ready_is_503_while_draining(self):
        self.assertEqual(self.lb.admin("GET", "/ready"), (200, b"ready\n"))
        # A request in flight keeps the drain going long enough to look.
        self.backend.set(latency="3s")
        c = self.lb.conn(timeout=10)
        c.request("GET", "/")
        time.sleep(0.2)
        self.lb.signal(signal.SIGTERM)
        self.assertTrue(wait_until(lambda: self.lb.admin("GET", "/ready")[0] == 503, 5))
        self.assertEqual(c.getresponse().status, 200)
        c.close()
        self.assertEqual(self.lb.proc.wait(10), 0)


class AdminTokenTest(unittest.TestCase):
    def setUp(self):
        self.backend = Testd(name="a")
        self.dir = tempfile.mkdtemp(prefix="spillway-token-")
        self.token_path = os.path.join(self.dir, "token")
        with open(self.token_path, "w") as f:
            f.write("s3cret-token-1\n")

    def tearDown(self):
        self.backend.stop()

    def get(self, lb, path, authorization=None, method="GET"):
        c = http.client.HTTPConnection("127.0.0.1", lb.admin_port, timeout=5)
        try:
            c.request(method, path, headers={"Authorization": authorization} if authorization else {})
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def test_token_required_and_rotated_by_reload(self):
        lb = Spillway(CONFIG % (", token_file: " + self.token_path, self.backend.address))
        try:
            status, headers, _ = self.get(lb, "/status")
            self.assertEqual(status, 401)
            self.assertTrue(headers["www-authenticate"].startswith("Bearer"))
            for wrong in ("Bearer s3cret-token-", "Bearer s3cret-token-12", "Basic czNjcmV0LXRva2VuLTE=",
                          "s3cret-token-1", "Bearer"):
                self.assertEqual(self.get(lb, "/status", wrong)[0], 401, wrong)
            self.assertEqual(self.get(lb, "/status", "Bearer s3cret-token-1")[0], 200)
            self.assertEqual(self.get(lb, "/ready", "bearer  s3cret-token-1")[0], 200)
            self.assertEqual(self.get(lb, "/reload", "Bearer s3cret-token-1", "POST")[0], 200)
            # A new token takes effect with a reload; the old one stops working.
            with open(self.token_path, "w") as f:
                f.write("s3cret-token-2")
            self.assertEqual(self.get(lb, "/reload", "Bearer s3cret-token-1", "POST")[0], 200)
            self.assertEqual(self.get(lb, "/status", "Bearer s3cret-token-1")[0], 401)
            self.assertEqual(self.get(lb, "/status", "Bearer s3cret-token-2")[0], 200)
            # An empty token file is a config error: the reload is refused, the token kept.
            with open(self.token_path, "w") as f:
                f.write("\n")
            status, _, text = self.get(lb, "/reload", "Bearer s3cret-token-2", "POST")
            self.assertEqual(status, 400)
            self.assertIn(b"token_file", text)
            self.assertEqual(self.get(lb, "/status", "Bearer s3cret-token-2")[0], 200)
            status, _, text = self.get(lb, "/metrics", "Bearer s3cret-token-2")
            self.assertIn(b'spillway_admin_requests_rejected_total{reason="token"} 7', text)
        finally:
            lb.stop()

    def test_probes_answer_without_the_token_only_with_open_probes(self):
        # SPEC: with a token, every request needs it; /ready and /live included by default.
        lb = Spillway(CONFIG % (", token_file: " + self.token_path, self.backend.address))
        try:
            for path in ("/ready", "/live"):
                self.assertEqual(self.get(lb, path)[0], 401, path)
        finally:
            lb.stop()
        # What kubelet sends for an httpGet probe: the pod's address as Host, no Authorization.
        lb = Spillway(CONFIG % (", token_file: " + self.token_path + ", open_probes: true", self.backend.address))
        try:
            host = b"Host: 127.0.0.1:%d\r\n" % lb.admin_port
            for path in (b"/ready", b"/live"):
                status, _, body = admin_raw(lb, b"GET " + path + b" HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n")
                self.assertEqual(status, 200, path)
                self.assertIn(body, (b"ready\n", b"alive\n"))
                status, _, _ = admin_raw(lb, b"HEAD " + path + b" HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n")
                self.assertEqual(status, 200, path)
            # Nothing else is waived: other paths and methods still need the token, and a foreign
            # Host is still refused.
            for request in (b"GET /status HTTP/1.1\r\n", b"GET /readyz HTTP/1.1\r\n", b"POST /ready HTTP/1.1\r\n"):
                status, headers, _ = admin_raw(lb, request + host + b"Connection: close\r\n\r\n")
                self.assertEqual(status, 401, request)
            status, _, _ = admin_raw(lb, b"GET /ready HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            self.assertEqual(status, 403)
            self.assertEqual(self.get(lb, "/live", "Bearer s3cret-token-1")[0], 200)
            # Through a drain: /ready turns 503, /live stays 200 (a drain is no reason to restart).
            self.backend.set(latency="2s")
            c = lb.conn(timeout=10)
            c.request("GET", "/")
            time.sleep(0.2)
            lb.signal(signal.SIGTERM)
            self.assertTrue(wait_until(lambda: self.get(lb, "/ready")[0] == 503, 5))
            self.assertEqual(self.get(lb, "/live")[:3:2], (200, b"alive\n"))
            self.assertEqual(c.getresponse().status, 200)
            c.close()
            self.assertEqual(lb.proc.wait(10), 0)
        finally:
            lb.stop()

    def test_non_loopback_admin_needs_a_token(self):
        with open(os.path.join(self.dir, "c.yaml"), "w") as f:
            f.write(CONFIG.replace("127.0.0.1:{admin_port}", "0.0.0.0:19901").replace("{port}", "19900") %
                    ("", self.backend.address))
        import subprocess
        from harness import SPILLWAY_BIN
        r = subprocess.run([SPILLWAY_BIN, "validate", "-c", os.path.join(self.dir, "c.yaml")],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("c.yaml:4:", r.stdout + r.stderr)
        self.assertIn("token_file", r.stdout + r.stderr)


@unittest.skipUnless(CHROMIUM, "needs Debian's chromium")
class AdminInBrowserTest(unittest.TestCase):
    """Real headless Chromium: a page on http://evil.example (mapped to 127.0.0.1 by Chromium's
    resolver rules, the way a rebinding attacker's DNS would) posts a form to the admin API, and the
    browser loads the admin API under that name. Both are refused; nothing reloads."""

    def test_cross_site_form_post_and_rebinding_from_a_browser(self):
        backend = Testd(name="a")
        lb = Spillway(CONFIG % ("", backend.address))
        page_dir = tempfile.mkdtemp(prefix="spillway-evil-")
        with open(os.path.join(page_dir, "attack.html"), "w") as f:
            f.write('<html><body><form id="f" method="post" action="http://127.0.0.1:%d/reload">'
                    '<input name="x" value="1"></form><script>document.getElementById("f").submit()</script>'
                    '</body></html>' % lb.admin_port)
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        handler = functools.partial(Quiet, directory=page_dir)
        evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            before = generation(lb)
            rules = "--host-resolver-rules=MAP evil.example 127.0.0.1"
            out = run_chromium("http://evil.example:%d/attack.html" % evil.server_address[1], rules,
                               "--virtual-time-budget=3000", "--dump-dom")
            self.assertIn("forbidden", out)  # the form's answer is what the browser shows
            self.assertEqual(generation(lb), before)
            self.assertGreaterEqual(lb.metric('spillway_admin_requests_rejected_total{reason="origin"}'), 1)
            out = run_chromium("http://evil.example:%d/status" % lb.admin_port, rules, "--dump-dom")
            self.assertIn("forbidden: Host", out)
            self.assertNotIn("upstreams", out)
            # The same page under the admin address itself is the dashboard's case: served.
            out = run_chromium("http://127.0.0.1:%d/status" % lb.admin_port, "--dump-dom")
            self.assertIn("upstreams", out)
        finally:
            evil.shutdown()
            evil.server_close()
            lb.stop()
            backend.stop()


if __name__ == "__main__":
    unittest.main()

"""HTTP/2 from clients, through the real binary, to HTTP/1 backends.

Cleartext with prior knowledge (curl --http2-prior-knowledge, h2load, and a python3-h2 client that
can also misbehave on purpose); TLS with ALPN h2 is in test_tls. Each stream is a request of its
own: routed, balanced per request over one connection, retried, answered by Spillway itself when it
must be (gRPC-shaped for gRPC), counted and logged. The abuse cases check that the connection is
ended and counted, and that other clients are served meanwhile.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from h2client import H2Client
from harness import Spillway, free_port, parse_response, wait_for_port, wait_until
from testd import Testd

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = """workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
access_log: { path: %(log)s }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    max_request_headers: 8192
    routes:
      - { match: { path_prefix: /down/ }, upstream: down }
      - { match: { path_prefix: /slow/ }, upstream: slow }
      - { match: { path_prefix: / , host: test }, upstream: app }
      - { match: { path_prefix: / , host: "127.0.0.1" }, upstream: app }
  - name: h1only
    listen: 127.0.0.1:%(h1_port)d
    http2: false
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    outlier_detection: false
    backends: [ { address: %(a)s }, { address: %(b)s } ]
  - name: down
    health_check: false
    backends: [ { address: 127.0.0.1:%(closed)d } ]
  - name: slow
    health_check: false
    timeouts: { request: 500ms }
    retries: { attempts: 1 }
    backends: [ { address: %(a)s } ]
"""


def curl_h2(url, *args):
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-D", "-", *args, url], capture_output=True,
                         timeout=30)
    return out.returncode, out.stdout, out.stderr.decode(errors="replace")


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


class Http2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Testd(name="a")
        cls.addClassCleanup(cls.a.stop)
        cls.b = Testd(name="b")
        cls.addClassCleanup(cls.b.stop)
        cls.h1_port = free_port()
        cls.log_path = "/tmp/spillway-h2-access-%d.log" % os.getpid()
        cls.addClassCleanup(lambda: os.path.exists(cls.log_path) and os.unlink(cls.log_path))
        cls.lb = Spillway(CONFIG % dict(a=cls.a.address, b=cls.b.address, h1_port=cls.h1_port, closed=free_port(),
                                        log=cls.log_path))
        cls.addClassCleanup(cls.lb.stop)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.lb.port, path)

    def client(self, **kw):
        c = H2Client(self.lb.port, **kw)
        self.addCleanup(c.close)
        return c

    def refusals(self, reason):
        return self.lb.metric('spillway_listener_h2_refusals_total{listener="main",reason="%s"}' % reason, 0)

    # --- plain requests ---

    def test_curl_prior_knowledge(self):
        """curl speaks HTTP/2 with prior knowledge; the HTTP/1 backend sees an HTTP/1.1 request with
        Host from :authority and the forwarding headers; the answer comes back as HTTP/2."""
        rc, out, err = curl_h2(self.url("/echo?x=1"), "-H", "x-custom: v")
        self.assertEqual(rc, 0, err)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/2 200"), head)
        echo = json.loads(body)
        self.assertEqual(echo["version"], "1.1")
        self.assertEqual(echo["path"], "/echo?x=1")
        headers = {k.lower(): v for k, v in echo["headers"]}
        self.assertEqual(headers["host"], "127.0.0.1:%d" % self.lb.port)
        self.assertEqual(headers["x-custom"], "v")
        self.assertEqual(headers["x-forwarded-proto"], "http")
        self.assertIn("x-request-id", headers)
        self.assertNotIn(b"connection:", head.lower())

    def test_uploads_and_downloads_arrive_whole(self):
        """Request bodies with a length and without (sent chunked to the HTTP/1 backend), and
        responses with a length and chunked, several MiB each, arrive byte for byte, over flow
        control windows far smaller than the bodies."""
        body = os.urandom(3 * 1024 * 1024 + 17)
        c = self.client()
        with_length = c.request("POST", "/echo", headers=[("content-length", str(len(body)))], body=body)
        without = c.request("POST", "/echo", body=body)
        for sid, framing in ((with_length, "content-length"), (without, "transfer-encoding")):
            s = c.response(sid, timeout=30)
            self.assertEqual(s.status, 200)
            echo = json.loads(bytes(s.body))
            self.assertEqual(echo["body_bytes"], len(body))
            self.assertEqual(echo["body_fnv1a"], fnv1a64(body))
            self.assertIn(framing, [k.lower() for k, _ in echo["headers"]])
        for query in ("size=5m", "size=5m&chunked=1"):
            s = c.get("/x?" + query, timeout=30)
            self.assertEqual(s.status, 200, query)
            self.assertEqual(bytes(s.body), b"x" * (5 * 1024 * 1024), query)
            self.assertIsNone(s.header("transfer-encoding"))

    def test_head_and_bodiless_answers(self):
        c = self.client()
        s = c.response(c.request("HEAD", "/x?size=1000"))
        self.assertEqual((s.status, s.header("content-length"), bytes(s.body)), (200, "1000", b""))
        s = c.get("/x?status=204")
        self.assertEqual((s.status, bytes(s.body)), (204, b""))

    def test_one_connection_is_balanced_per_request(self):
        """h2load: one connection, 20 streams at a time; least_request spreads the streams over both
        backends (an L4 balancer would pin the connection to one)."""
        self.a.reset_stats()
        self.b.reset_stats()
        out = subprocess.run(["h2load", "-c", "1", "-m", "20", "-n", "2000", self.url("/x?latency=1ms")],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertIn("2000 succeeded", out.stdout)
        a, b = self.a.stats()["requests"], self.b.stats()["requests"]
        self.assertEqual(a + b, 2000)
        self.assertGreater(min(a, b), 600, (a, b))

    def test_many_streams_at_once(self):
        """100 streams in flight on one connection (the advertised limit) all get their answers."""
        c = self.client()
        sids = [c.request("GET", "/x?latency=200ms") for _ in range(100)]
        for sid in sids:
            self.assertEqual(c.response(sid).status, 200)

    # --- Spillway's own answers ---

    def test_local_replies(self):
        c = self.client()
        s = c.get("/nothing", authority="unknown.example")
        self.assertEqual((s.status, s.header("x-spillway-reason")), (404, "no_route"))
        s = c.get("/down/x")
        self.assertEqual(s.status, 503)
        self.assertEqual(s.header("x-spillway-reason"), "upstream_connect_failure")
        self.assertIsNotNone(s.header("retry-after"))
        s = c.get("/slow/x?latency=3s")
        self.assertEqual((s.status, s.header("x-spillway-reason")), (504, "upstream_timeout"))
        # the connection carries on after each
        self.assertEqual(c.get("/x").status, 200)

    def test_grpc_requests_get_grpc_shaped_answers(self):
        """A gRPC request Spillway answers itself gets HTTP 200 with grpc-status: UNAVAILABLE (14) for
        no backend, DEADLINE_EXCEEDED (4) for a timeout (the upstream's, or the client's own
        grpc-timeout), UNIMPLEMENTED (12) for no route."""
        c = self.client()
        grpc = [("content-type", "application/grpc"), ("te", "trailers")]
        for path, authority, code, reason in (("/down/svc/M", "test", "14", "upstream_connect_failure"),
                                              ("/slow/svc/M?latency=3s", "test", "4", "upstream_timeout"),
                                              ("/svc/M", "nowhere", "12", "no_route")):
            s = c.response(c.request("POST", path, authority=authority, headers=grpc, body=b"\0\0\0\0\0"))
            self.assertEqual(s.status, 200, path)
            self.assertEqual(s.header("grpc-status"), code, path)
            self.assertEqual(s.header("x-spillway-reason"), reason, path)
            self.assertEqual(bytes(s.body), b"", path)
        # the client's grpc-timeout is the request's deadline when it is the sooner one
        start = time.monotonic()
        s = c.response(c.request("POST", "/svc/M?latency=5s", headers=grpc + [("grpc-timeout", "300m")],
                                 body=b"\0\0\0\0\0"))
        self.assertLess(time.monotonic() - start, 3)
        self.assertEqual((s.status, s.header("grpc-status")), (200, "4"))

    def test_headers_too_large(self):
        """A header list over max_request_headers gets 431 on its stream, counted; the connection
        serves on."""
        before = self.refusals("headers_too_large")
        c = self.client()
        s = c.get("/x", headers=[("x-big-%d" % i, "v" * 1000) for i in range(12)])
        self.assertEqual(s.status, 431)
        self.assertEqual(self.refusals("headers_too_large"), before + 1)
        self.assertEqual(c.get("/x").status, 200)

    def test_malformed_requests_never_reach_a_backend(self):
        """Requests HTTP/2 calls malformed (RFC 9113 section 8.1.1) are reset with PROTOCOL_ERROR
        (or answered 400), never forwarded; the connection serves on."""
        base = [(":method", "GET"), (":scheme", "http"), (":authority", "test"), (":path", "/x")]
        cases = {
            "upper-case name": base + [("X-Upper", "1")],
            "connection-specific field": base + [("connection", "keep-alive")],
            "transfer-encoding": base + [("transfer-encoding", "chunked")],
            "te other than trailers": base + [("te", "gzip")],
            "pseudo-header after a field": base[:3] + [("x-a", "1"), (":path", "/x")],
            "no :path": base[:3],
            "two :path": base + [(":path", "/y")],
            "unknown pseudo-header": base + [(":protocol", "x")],
            "response pseudo-header": base + [(":status", "200")],
            "empty :path": base[:3] + [(":path", "")],
            "newline in a value": base + [("x-a", "a\nb")],
            "control character in a value": base + [("x-a", "a\x01b")],
            "DEL in a value": base + [("x-a", "a\x7fb")],
            "space at the end of a value": base + [("x-a", "ab ")],
            "tab at the start of a value": base + [("x-a", "\tab")],
            "space in :path": base[:3] + [(":path", "/a b")],
            "control character in :path": base[:3] + [(":path", "/a\x01")],
            "host disagrees with :authority": base + [("host", "other.example")],
        }
        self.a.reset_stats()
        self.b.reset_stats()
        c = self.client(validate=False)
        for name, headers in cases.items():
            with self.subTest(name):
                s = c.response(c.request("GET", "/x", raw_headers=headers))
                self.assertTrue(s.reset == 1 or s.status == 400, (name, s.reset, s.status))
        # a body that does not match its content-length
        sid = c.request("POST", "/echo", headers=[("content-length", "10")], body=b"abc")
        s = c.response(sid)
        self.assertEqual(s.reset, 1)
        self.assertFalse(c.closed)
        self.assertEqual(self.a.stats()["requests"] + self.b.stats()["requests"], 0)
        self.assertEqual(c.get("/x").status, 200)

    def test_http2_false_refuses_the_preface(self):
        """With `http2: false` the preface is not HTTP/1 and gets 400."""
        with socket.create_connection(("127.0.0.1", self.h1_port), timeout=5) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            data = s.recv(4096)
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data)
        rc, out, err = curl_h2("http://127.0.0.1:%d/x" % self.h1_port)
        self.assertNotEqual(rc, 0)

    def test_http1_still_served_on_the_same_listener(self):
        status, _, body = self.lb.request("GET", "/x", headers={"Host": "test"})
        self.assertEqual(status, 200)

    def test_access_log_and_metrics(self):
        before = self.lb.metric('spillway_listener_h2_streams_total{listener="main"}', 0)
        c = self.client()
        s = c.get("/x?marker=h2log", headers=[("x-request-id", "h2-req-1")])
        self.assertEqual(s.status, 200)
        self.assertGreaterEqual(self.lb.metric('spillway_listener_h2_streams_total{listener="main"}', 0), before + 1)
        def logged():
            if not os.path.exists(self.log_path):
                return []
            with open(self.log_path, "rb") as f:
                return [line for line in f.read().splitlines() if b"h2-req-1" in line]
        self.assertTrue(wait_until(logged, 5))
        line = logged()[0]
        rec = json.loads(line)
        self.assertEqual((rec["method"], rec["path"], rec["status"], rec["upstream"]), ("GET", "/x?marker=h2log", 200, "app"))

    # --- abuse ---

    def test_rapid_reset_ends_the_connection(self):
        """CVE-2023-44487: a client opening streams and resetting them at once gets GOAWAY
        ENHANCE_YOUR_CALM after a bounded number, counted; the backends see few of those requests;
        another client is served meanwhile."""
        before = self.refusals("rapid_reset")
        self.a.reset_stats()
        self.b.reset_stats()
        c = self.client()
        for _ in range(400):
            if c.closed or c.goaway:
                break
            sid = c.conn.get_next_available_stream_id()
            c.streams[sid] = None
            c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "test"),
                                      (":path", "/x?latency=50ms")])
            c.conn.reset_stream(sid)
            try:
                c.flush()
            except OSError:
                break
        c.streams = {}
        c.pump(lambda: c.goaway is not None, timeout=10)
        self.assertIsNotNone(c.goaway)
        self.assertEqual(c.goaway[0], 11)  # ENHANCE_YOUR_CALM
        self.assertEqual(self.refusals("rapid_reset"), before + 1)
        other = self.client()
        self.assertEqual(other.get("/x").status, 200)
        time.sleep(0.2)
        # Each stream is reset in the same read as its HEADERS: it ends before it starts (the one
        # request is the other client's; a read that splits a pair may let one more through).
        self.assertLess(self.a.stats()["requests"] + self.b.stats()["requests"], 5)

    def test_ping_flood_ends_the_connection(self):
        before = self.refusals("flood")
        c = self.client()
        for i in range(1000):
            c.conn.ping(b"%08d" % i)
        try:
            c.flush()
        except OSError:
            pass
        c.pump(lambda: c.goaway is not None, timeout=10)
        self.assertIsNotNone(c.goaway)
        self.assertEqual(c.goaway[0], 11)
        self.assertGreaterEqual(self.refusals("flood"), before + 1)

    def test_bad_preface_and_garbage(self):
        """A wrong preface or frames that break the protocol end the connection with a GOAWAY,
        counted; the listener serves on."""
        before = self.refusals("protocol_error")
        with socket.create_connection(("127.0.0.1", self.lb.port), timeout=5) as s:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x04\x09\x00\x00\x00\x00\x01abcd")  # CONTINUATION first
            data = b""
            while True:
                try:
                    chunk = s.recv(4096)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
        self.assertIn(b"\x07", data[:64] + data)  # a GOAWAY frame (type 7) came back
        self.assertGreaterEqual(self.refusals("protocol_error"), before + 1)
        self.assertEqual(self.client().get("/x").status, 200)

    # --- lifetimes ---

    SALVAGED = 'spillway_upstream_connections_salvaged_total{upstream="app"}'

    def backend_connections(self):
        return self.a.stats()["connections_active"] + self.b.stats()["connections_active"]

    def reset_once_at_the_backend(self, path):
        """Sends GET `path`, resets the stream once the backend has the request; returns the
        client, the salvage count before, and the backend connections open at the reset."""
        before = self.lb.metric(self.SALVAGED, 0)
        c = self.client()
        requests = lambda: self.a.stats()["requests"] + self.b.stats()["requests"]
        requests_before = requests()
        sid = c.request("GET", path)
        self.assertTrue(wait_until(lambda: requests() > requests_before, 5))
        open_before = self.backend_connections()
        c.conn.reset_stream(sid)
        c.flush()
        return c, before, open_before

    def test_client_reset_keeps_a_promptly_answered_backend_connection(self):
        """A stream the client resets once its whole request went to the backend: the answer, when
        it comes soon, is still read (and dropped), and the backend connection goes back to the
        pool instead of being closed (a client that cancels costs no new connection)."""
        c, before, open_before = self.reset_once_at_the_backend("/x?latency=400ms")
        self.assertTrue(wait_until(lambda: self.lb.metric(self.SALVAGED, 0) == before + 1, 5))
        self.assertEqual(self.backend_connections(), open_before)  # kept open, in the pool
        self.assertEqual(c.get("/x").status, 200)
        self.assertEqual(self.lb.metric(self.SALVAGED, 0), before + 1)

    def test_client_reset_closes_the_backend_connection_of_a_long_answer(self):
        """Keeping the connection is not worth reading a long answer nobody wants: past 256 KiB
        the backend connection is closed."""
        c, before, open_before = self.reset_once_at_the_backend("/download?size=8m&latency=300ms")
        self.assertTrue(wait_until(lambda: self.backend_connections() < open_before, 5))
        self.assertEqual(self.lb.metric(self.SALVAGED, 0), before)
        self.assertEqual(c.get("/x").status, 200)

    def test_client_reset_cancels_the_backend_exchange(self):
        """A stream the client resets while the backend is still answering frees its backend
        connection once the answer has not come within a second (it is read and dropped, to keep
        the connection, only when it comes soon); the connection's other streams go on."""
        c = self.client()
        slow = c.request("GET", "/x?hang=1")
        fast = c.request("GET", "/x")
        self.assertEqual(c.response(fast).status, 200)
        time.sleep(0.1)
        active_before = self.a.stats()["connections_active"] + self.b.stats()["connections_active"]
        c.conn.reset_stream(slow)
        c.flush()
        self.assertTrue(wait_until(
            lambda: self.a.stats()["connections_active"] + self.b.stats()["connections_active"] < active_before, 5))
        self.assertEqual(c.get("/x").status, 200)


class Http2BackendTest(unittest.TestCase):
    """`protocol: http2` in front of two nghttpd (nghttp2-server) backends: HTTP/2 both ways."""

    def test_nghttpd_backends(self):
        root = tempfile.mkdtemp(prefix="spillway-nghttpd-")
        self.addCleanup(shutil.rmtree, root, True)
        with open(os.path.join(root, "index.html"), "wb") as f:
            f.write(b"hello from nghttpd\n")
        big = os.urandom(2 * 1024 * 1024)
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(big)
        ports = [free_port(), free_port()]
        for port in ports:
            p = subprocess.Popen(["nghttpd", "--no-tls", "-d", root, str(port)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            self.addCleanup(p.wait, 10)
            self.addCleanup(p.kill)
            wait_for_port(port, proc=p)
        lb = Spillway("""workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - listen: 127.0.0.1:{port}
    routes: [ { upstream: h2 } ]
upstreams:
  - name: h2
    protocol: http2
    health_check: { http: { path: /index.html }, interval: 1s }
    backends: [ { address: 127.0.0.1:%d }, { address: 127.0.0.1:%d } ]
  - name: h2bad
    protocol: http2
    health_check: { http: { path: /nope }, interval: 1s }
    backends: [ { address: 127.0.0.1:%d } ]
""" % (ports[0], ports[1], ports[0]))
        self.addCleanup(lb.stop)
        # http health checks of an http2 upstream speak HTTP/2 (nghttpd speaks nothing else)
        for port in ports:
            st = lb.backend_status("h2", "127.0.0.1:%d" % port)
            self.assertEqual((st["healthy"], st["health_detail"]), (True, ""))
        st = lb.backend_status("h2bad", "127.0.0.1:%d" % ports[0])
        self.assertEqual((st["healthy"], st["health_detail"]), (False, "status 404"))
        rc, out, err = curl_h2("http://127.0.0.1:%d/index.html" % lb.port)
        self.assertEqual(rc, 0, err)
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/2 200"), head)
        self.assertIn(b"server: nghttpd", head)
        self.assertEqual(body, b"hello from nghttpd\n")
        rc, out, err = curl_h2("http://127.0.0.1:%d/big.bin" % lb.port)
        self.assertEqual(out.partition(b"\r\n\r\n")[2], big)
        out = subprocess.run(["h2load", "-c", "2", "-m", "20", "-n", "4000", "http://127.0.0.1:%d/index.html" % lb.port],
                             capture_output=True, text=True, timeout=60)
        self.assertIn("4000 succeeded", out.stdout, out.stdout + out.stderr)
        # HTTP/1 clients reach the HTTP/2 backends too: 1.1 with keep-alive, 1.0, HEAD, big bodies
        c = lb.conn()
        for _ in range(3):
            c.request("GET", "/index.html")
            r = c.getresponse()
            self.assertEqual((r.status, r.read(), r.getheader("server", "")[:7]), (200, b"hello from nghttpd\n", "nghttpd"))
        c.close()
        status, headers, body = lb.request("GET", "/big.bin")
        self.assertEqual((status, body == big), (200, True))
        status, headers, body = parse_response(lb.raw(b"GET /big.bin HTTP/1.0\r\n\r\n", timeout=20))
        self.assertEqual((status, body == big), (200, True))
        status, headers, body = lb.request("HEAD", "/big.bin")
        self.assertEqual((status, headers["content-length"], body), (200, str(len(big)), b""))
        status, headers, body = lb.request("GET", "/missing")
        self.assertEqual(status, 404)
        out = subprocess.run(["h2load", "--h1", "-c", "4", "-n", "2000", "http://127.0.0.1:%d/index.html" % lb.port],
                             capture_output=True, text=True, timeout=60)
        self.assertIn("2000 succeeded", out.stdout, out.stdout + out.stderr)
        for port in ports:
            self.assertGreater(lb.metric('spillway_backend_requests_total{upstream="h2",backend="127.0.0.1:%d"}' % port, 0),
                               600)


class H2EchoBackend:
    """h2_backend.py: an HTTP/2 backend that answers with what it received (head, trailers, body size)."""

    def __init__(self, name, host="127.0.0.1", port=0):
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "h2_backend.py"), "--port", str(port),
                                      "--host", host, "--name", name], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening"):
            raise RuntimeError("h2 backend did not start: %r" % line)
        self.port = int(line.split()[1])

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)
        self.proc.stdout.close()


class BridgeTest(unittest.TestCase):
    """Heads and trailers across the protocol boundary, both ways."""

    @classmethod
    def setUpClass(cls):
        cls.h2 = H2EchoBackend("echo")
        cls.addClassCleanup(cls.h2.stop)
        cls.h1 = Testd(name="h1")
        cls.addClassCleanup(cls.h1.stop)
        cls.lb = Spillway("""workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - listen: 127.0.0.1:{port}
    routes:
      - { match: { path_prefix: /h1/ }, upstream: h1 }
      - { match: { path_prefix: /echo }, upstream: h1 }
      - { upstream: h2 }
upstreams:
  - name: h2
    protocol: http2
    health_check: false
    backends: [ { address: 127.0.0.1:%d } ]
  - name: h1
    backends: [ { address: %s } ]
""" % (cls.h2.port, cls.h1.address))
        cls.addClassCleanup(cls.lb.stop)

    def test_http1_request_to_http2_backend(self):
        """An HTTP/1.1 request with a chunked body and trailers reaches an HTTP/2 backend as a stream:
        pseudo-header fields from the request line and Host, names in lower case, connection-specific
        fields gone (TE only as trailers), the body without its chunk framing, the trailers as HTTP/2
        trailers; the answer's trailers come back in the last chunk."""
        body = os.urandom(5000)
        chunks = b"".join(b"%x\r\n" % len(body[i:i + 1000]) + body[i:i + 1000] + b"\r\n" for i in range(0, 5000, 1000))
        raw = (b"POST /api/x?q=1 HTTP/1.1\r\nHost: svc.test\r\nX-Mixed-Case: V\r\nConnection: close, X-Hop\r\n"
               b"X-Hop: gone\r\nKeep-Alive: 5\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks +
               b"0\r\nx-req-sum: 42\r\n\r\n")
        status, headers, rest = parse_response(self.lb.raw(raw, timeout=10))
        self.assertEqual((status, headers.get("transfer-encoding")), (200, "chunked"))
        data, _, trailer_part = rest.partition(b"\r\n0\r\n")
        size_line, _, data = data.partition(b"\r\n")
        echo = json.loads(data)
        self.assertEqual(trailer_part, b"x-echo-trailer: echo\r\n\r\n")
        fields = echo["headers"]
        self.assertEqual(fields[:4], [[":method", "POST"], [":scheme", "http"], [":authority", "svc.test"],
                                      [":path", "/api/x?q=1"]])
        names = [n for n, _ in fields]
        self.assertIn(["x-mixed-case", "V"], fields)
        self.assertIn(["te", "trailers"], fields)
        for gone in ("host", "connection", "x-hop", "keep-alive", "transfer-encoding"):
            self.assertNotIn(gone, names)
        self.assertIn(["x-forwarded-for", "127.0.0.1"], fields)
        self.assertIn("x-request-id", names)
        self.assertEqual(echo["body_bytes"], 5000)
        self.assertEqual(echo["trailers"], [["x-req-sum", "42"]])
        # without TE: trailers the client gets no trailer fields (nor does the backend get TE)
        status, headers, rest = parse_response(self.lb.raw(
            b"GET /y HTTP/1.1\r\nHost: svc.test\r\nConnection: close\r\n\r\n", timeout=10))
        self.assertEqual(status, 200)
        self.assertTrue(rest.endswith(b"\r\n0\r\n\r\n"), rest[-40:])
        self.assertNotIn(["te", "trailers"], json.loads(rest.partition(b"\r\n")[2].rpartition(b"\r\n0\r\n")[0])["headers"])

    def test_http2_client_trailers_reach_both_kinds_of_backend(self):
        """An HTTP/2 request's trailers go on: as HTTP/2 trailers to an HTTP/2 backend, and in the
        last chunk of a chunked body to an HTTP/1 one (testd's echo counts the body; the trailer
        section must have been well-formed for it to answer)."""
        c = H2Client(self.lb.port)
        self.addCleanup(c.close)
        body = os.urandom(70000)  # over one flow-control window
        sid = c.request("POST", "/t", body=body, end=False)
        c.conn.send_headers(sid, [("x-req-sum", "42"), ("grpc-status", "0")], end_stream=True)
        c.flush()
        s = c.response(sid)
        echo = json.loads(bytes(s.body))
        self.assertEqual((s.status, echo["body_bytes"]), (200, 70000))
        self.assertEqual(echo["trailers"], [["x-req-sum", "42"], ["grpc-status", "0"]])
        sid = c.request("POST", "/echo", body=b"hello", end=False)
        c.conn.send_headers(sid, [("x-req-sum", "42")], end_stream=True)
        c.flush()
        s = c.response(sid)
        echo = json.loads(bytes(s.body))
        self.assertEqual((s.status, echo["body_bytes"]), (200, 5))
        # a trailer that frames or routes is refused, as in HTTP/1 chunked trailers
        sid = c.request("POST", "/t", body=b"hi", end=False)
        c.conn.send_headers(sid, [("content-length", "2")], end_stream=True)
        c.flush()
        s = c.response(sid)
        self.assertIsNotNone(s.reset)

    def test_http2_client_to_both_kinds_of_backend(self):
        """Trailers reach an HTTP/2 client from an HTTP/2 backend and from a chunked HTTP/1 answer."""
        c = H2Client(self.lb.port)
        self.addCleanup(c.close)
        s = c.get("/z")
        self.assertEqual((s.status, s.trailer("x-echo-trailer")), (200, "echo"))
        for query in ("chunked=1&trailer=x-sum:abc", "chunked=1&size=0&trailer=x-sum:abc",
                      "chunked=1&size=100k&trailer=grpc-status:0"):
            s = c.get("/h1/x?" + query)
            self.assertEqual(s.status, 200, query)
            name, _, value = query.rpartition("trailer=")[2].partition(":")
            self.assertEqual(s.trailers, [(name, value)], query)
        s = c.get("/h1/x?chunked=1")
        self.assertEqual((s.status, s.trailers), (200, []))


class ColdStartTest(unittest.TestCase):
    """A burst of requests to an HTTP/2 backend with no connection yet: the first request connects,
    the others wait for its connection instead of each opening one (up to 100 streams, nghttp2's
    limit before the backend's SETTINGS arrive)."""

    def start(self, backends):
        lb = Spillway("""workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - listen: 127.0.0.1:{port}
    routes: [ { upstream: h2 } ]
upstreams:
  - name: h2
    protocol: http2
    health_check: false
    retries: { attempts: 3 }
    backends: [ %s ]
""" % ", ".join("{ address: 127.0.0.1:%d }" % p for p in backends))
        self.addCleanup(lb.stop)
        return lb

    def connects(self, lb):
        return lb.metric('spillway_upstream_connect_duration_seconds_count{upstream="h2"}', 0)

    def test_a_burst_shares_the_connection_being_made(self):
        backend = H2EchoBackend("cold")
        self.addCleanup(backend.stop)
        lb = self.start([backend.port])
        out = subprocess.run(["h2load", "-c", "1", "-m", "60", "-n", "60", "http://127.0.0.1:%d/x" % lb.port],
                             capture_output=True, text=True, timeout=60)
        self.assertIn("60 succeeded", out.stdout, out.stdout + out.stderr)
        self.assertEqual(self.connects(lb), 1)
        self.assertEqual(lb.metric('spillway_backend_connections{upstream="h2",backend="127.0.0.1:%d"}' % backend.port),
                         1)
        # HTTP/1 clients at once, on a fresh Spillway: the same
        lb = self.start([backend.port])
        out = subprocess.run(["h2load", "--h1", "-c", "20", "-n", "20", "http://127.0.0.1:%d/x" % lb.port],
                             capture_output=True, text=True, timeout=60)
        self.assertIn("20 succeeded", out.stdout, out.stdout + out.stderr)
        self.assertEqual(self.connects(lb), 1)

    def test_waiters_on_a_failed_connect_go_elsewhere(self):
        """The connection being made fails (refused): the requests waiting for it count that try as
        failed and go to the other backend, like the one that connected."""
        backend = H2EchoBackend("alive")
        self.addCleanup(backend.stop)
        dead = free_port()
        lb = self.start([dead, backend.port])
        out = subprocess.run(["h2load", "-c", "1", "-m", "40", "-n", "40", "http://127.0.0.1:%d/x" % lb.port],
                             capture_output=True, text=True, timeout=60)
        self.assertIn("40 succeeded", out.stdout, out.stdout + out.stderr)
        self.assertEqual(lb.metric('spillway_backend_connect_failures_total{upstream="h2",backend="127.0.0.1:%d"}' %
                                   dead), 1)


class DrainTest(unittest.TestCase):
    def test_sigterm_sends_goaway_and_finishes_streams(self):
        """On SIGTERM an HTTP/2 connection gets GOAWAY; the stream in flight gets its whole answer."""
        a = Testd(name="a")
        self.addCleanup(a.stop)
        lb = Spillway("""workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
drain_timeout: 10s
listeners:
  - listen: 127.0.0.1:{port}
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    backends: [ { address: %s } ]
""" % a.address)
        self.addCleanup(lb.stop, expect_clean=False)
        # nghttp (nghttp2-client) keeps reading its streams after a GOAWAY, as real clients do.
        client = subprocess.Popen(["nghttp", "-nv", "http://127.0.0.1:%d/x?latency=700ms&size=100k" % lb.port],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertTrue(wait_until(lambda: lb.metric('spillway_listener_h2_streams_total{listener="listener_0"}', 0)
                                   >= 1, 5))
        lb.signal(signal.SIGTERM)
        out, _ = client.communicate(timeout=15)
        self.assertEqual(client.returncode, 0, out)
        self.assertRegex(out, r"recv GOAWAY frame .*\n.*last_stream_id=13, error_code=NO_ERROR")
        self.assertIn(":status: 200", out)
        self.assertRegex(out, r"recv DATA frame <length=\d+, flags=0x01, stream_id=13>")
        self.assertEqual(lb.proc.wait(timeout=10), 0)


if __name__ == "__main__":
    unittest.main()

"""Every answer Spillway makes itself, and strict parsing: status, x-spillway-reason, closed connection."""

import socket
import time
import unittest

from harness import Spillway, parse_response
from testd import Testd

CONFIG = """
workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    max_request_body: 1k
    max_request_headers: 8k
    routes:
      - match: { path_prefix: /app/ }
        upstream: app
      - match: { path_prefix: /dead/ }
        upstream: dead
upstreams:
  - name: app
    health_check: false
    retries: { attempts: 1, on: [connect_failure, reset, 502, 503, 504] }
    timeouts: { connect: 500ms, request: 1s, header: 1s, idle: 5s }
    degradation: { retry_after: 7s }
    backends:
      - address: {backend}
  - name: dead
    health_check: false
    degradation: { retry_after: 3s }
    backends:
      - address: 127.0.0.1:{dead_port}
"""


def closed_after(sock, timeout=3.0):
    """True when the peer closes the connection (EOF) within `timeout` once its answer was read."""
    sock.settimeout(timeout)
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                return True
    except (socket.timeout, ConnectionResetError):
        return False


class LocalRepliesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = Testd(name="app")
        # a port with nothing listening: connect is refused
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead_port = s.getsockname()[1]
        cls.lb = Spillway(CONFIG.replace("{backend}", cls.backend.address).replace("{dead_port}", str(dead_port)))

    @classmethod
    def tearDownClass(cls):
        cls.lb.stop()
        cls.backend.stop()

    def exchange(self, data, wait_close=True):
        with socket.create_connection(("127.0.0.1", self.lb.port), timeout=5) as s:
            s.sendall(data)
            buf = b""
            while b"\r\n\r\n" not in buf:
                b = s.recv(65536)
                if not b:
                    break
                buf += b
            status, headers, body = parse_response(buf)
            closed = closed_after(s) if wait_close else None
            return status, headers, closed

    def assert_local(self, data, status, reason, closed=True):
        before = self.backend.stats()["requests"]
        got_status, headers, got_closed = self.exchange(data, wait_close=closed)
        self.assertEqual(got_status, status, data)
        self.assertEqual(headers.get("x-spillway-reason"), reason, headers)
        if closed:
            self.assertTrue(got_closed, "connection left open after %d" % status)
        if status in (400, 404, 405, 413, 431):
            # nothing was forwarded (testd does not count its /_testd/ requests)
            self.assertEqual(self.backend.stats()["requests"], before)
        return headers

    def test_ok_baseline(self):
        status, headers, body = self.lb.request("GET", "/app/")
        self.assertEqual(status, 200)

    def test_400_malformed(self):
        self.assert_local(b"GARBAGE\r\n\r\n", 400, "malformed_request")

    def test_400_ambiguous_framing(self):
        cases = [
            b"POST /app/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"POST /app/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
            b"POST /app/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
            b"GET /app/ HTTP/1.1\r\nHost: x\r\nX-A: a\r\n folded\r\n\r\n",
            b"GET /app/ HTTP/1.1\nHost: x\n\n",
            b"GET /app/ HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
            b"GET /app/ HTTP/1.1\r\nHost: x\r\nX: a\x07b\r\n\r\n",
            b"GET /app/ HTTP/1.1\r\n\r\n",  # missing Host
            b"GET /app/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST /app/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, identity\r\n\r\n",
            b"GET /app/ HTTP/1.1\r\nHost : x\r\n\r\n",
        ]
        for data in cases:
            with self.subTest(data=data):
                self.assert_local(data, 400, "malformed_request")

    def test_400_bad_chunk_size_mid_body(self):
        # the head is fine, so the request starts upstream; the bad chunk is never forwarded
        data = (b"POST /app/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\nzz\r\n")
        status, headers, closed = self.exchange(data)
        self.assertEqual(status, 400)
        self.assertEqual(headers.get("x-spillway-reason"), "malformed_request")
        self.assertTrue(closed)

    def test_404_no_route_keeps_connection(self):
        with socket.create_connection(("127.0.0.1", self.lb.port), timeout=5) as s:
            s.sendall(b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
            buf = s.recv(65536)
            status, headers, body = parse_response(buf)
            self.assertEqual(status, 404)
            self.assertEqual(headers["x-spillway-reason"], "no_route")
            s.sendall(b"GET /app/ HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = parse_response(s.recv(65536))
            self.assertEqual(status, 200)

    def test_local_replies_honour_connection_close(self):
        """A client that says `Connection: close` (or speaks HTTP/1.0 without keep-alive) is closed
        after an answer Spillway made itself too, not left waiting for the idle timeout."""
        for request in (b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        b"GET /nowhere HTTP/1.0\r\n\r\n"):
            start = time.monotonic()
            status, headers, closed = self.exchange(request)
            self.assertEqual((status, closed), (404, True), request)
            self.assertLess(time.monotonic() - start, 3)

    def test_408_header_timeout(self):
        with socket.create_connection(("127.0.0.1", self.lb.port), timeout=5) as s:
            s.sendall(b"GET /app/ HTTP/1.1\r\n")
            start = time.monotonic()
            # drip header bytes slower than the deadline allows
            for _ in range(3):
                time.sleep(0.4)
                try:
                    s.sendall(b"X-Drip: 1\r\n")
                except OSError:
                    break
            buf = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                buf += b
            elapsed = time.monotonic() - start
        status, headers, body = parse_response(buf)
        self.assertEqual(status, 408)
        self.assertEqual(headers["x-spillway-reason"], "header_timeout")
        self.assertLess(elapsed, 3.0)

    def test_413_body_too_large(self):
        self.assert_local(b"POST /app/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413, "body_too_large")

    def test_413_chunked_body_too_large(self):
        body = b"".join(b"400\r\n" + b"q" * 1024 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n"
        status, headers, closed = self.exchange(
            b"POST /app/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        self.assertEqual(status, 413)
        self.assertTrue(closed)

    def test_431_headers_too_large(self):
        data = b"GET /app/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n"
        self.assert_local(data, 431, "headers_too_large")

    def test_405_connect(self):
        self.assert_local(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, "method_not_allowed")

    def test_502_backend_reset(self):
        # the request was read whole, so the client's connection stays usable
        self.assert_local(b"POST /app/?reset=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 502,
                          "upstream_reset", closed=False)

    def test_503_everything_down_is_fast(self):
        start = time.monotonic()
        headers = self.assert_local(b"GET /dead/ HTTP/1.1\r\nHost: x\r\n\r\n", 503, "upstream_connect_failure",
                                    closed=False)
        self.assertLess(time.monotonic() - start, 0.5)
        self.assertEqual(headers["retry-after"], "3")

    def test_504_backend_timeout(self):
        start = time.monotonic()
        self.assert_local(b"GET /app/?hang=1 HTTP/1.1\r\nHost: x\r\n\r\n", 504, "upstream_timeout", closed=False)
        self.assertLess(time.monotonic() - start, 3.0)


if __name__ == "__main__":
    unittest.main()

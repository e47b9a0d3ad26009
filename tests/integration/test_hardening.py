"""Hostile input from clients and backends (issue #12): the reproductions of what was found, each a
test, and every bound with its counter. The conformance corpus (tests/conformance) covers framing
and target classes case by case; this file covers what needs a real backend, timing of CPU, or
several connections."""

import json
import os
import socket
import threading
import time
import unittest

from harness import Spillway, parse_response, wait_until
from testd import Testd

CONFIG = """
workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    max_connections: 3
    max_request_headers: 1m
    max_request_header_fields: 10000
    routes:
      - match: { path_prefix: /raw/ }
        upstream: raw
      - upstream: app
  - name: strict
    listen: 127.0.0.1:{strict_port}
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    backends: [ { address: {backend} } ]
  - name: raw
    health_check: false
    max_response_headers: 16k
    retries: { attempts: 0 }
    backends: [ { address: 127.0.0.1:{raw_port} } ]
"""


def cpu_seconds(pid):
    """User + system CPU time of a process so far (clock ticks of /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_response(sock, timeout=5.0):
    """Reads one response (head and a Content-Length body) from `sock`."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return parse_response(head + b"\r\n\r\n" + rest)


class RawBackend:
    """A backend that answers every connection with fixed bytes, then closes."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(2)
                try:
                    c.recv(65536)
                    c.sendall(self.answer)
                except OSError:
                    pass

    def stop(self):
        self.stopped = True
        self.sock.close()


class HardeningTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = Testd(name="app")
        huge_head = b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * (64 * 1024) + b"\r\nContent-Length: 2\r\n\r\nok"
        cls.raw = RawBackend(huge_head)
        cls.strict_port = None
        text = CONFIG.replace("{backend}", cls.backend.address).replace("{raw_port}", str(cls.raw.port))
        import harness

        cls.strict_port = harness.free_port()
        text = text.replace("{strict_port}", str(cls.strict_port))
        cls.lb = Spillway(text)
        harness.wait_for_port(cls.strict_port)

    @classmethod
    def tearDownClass(cls):
        cls.lb.stop()
        cls.backend.stop()
        cls.raw.stop()

    def local_replies(self, listener, reason):
        return self.lb.metric(
            'spillway_listener_local_replies_total{listener="%s",reason="%s"}' % (listener, reason), default=0.0
        )

    def test_trailer_use_after_free_reproduction(self):
        # A chunked POST with an 8 KiB trailer, then one with a 300 KiB trailer on the same
        # connection: the ASan build aborted here when trailers were appended to the head's storage.
        # Trailers are now bounded by max_request_headers (8 KiB fits, 300 KiB does not: 431).
        before = self.local_replies("strict", "headers_too_large")

        def post(trailer_size):
            return (
                b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: "
                + b"t" * trailer_size
                + b"\r\n\r\n"
            )

        with socket.create_connection(("127.0.0.1", self.strict_port)) as s:
            s.sendall(post(8 * 1024))
            status, headers, _ = read_response(s)
            self.assertEqual(status, 200)
            s.sendall(post(300 * 1024))
            status, headers, _ = read_response(s)
            self.assertEqual(status, 431)
            self.assertEqual(headers.get("x-spillway-reason"), "headers_too_large")
            self.assertEqual(headers.get("connection"), "close")
        self.assertEqual(self.lb.wait_metric(
            'spillway_listener_local_replies_total{listener="strict",reason="headers_too_large"}', before + 1), before + 1)

    def test_many_header_fields_get_431(self):
        head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Empty:\r\n" * 150 + b"\r\n"
        status, headers, _ = parse_response(self.lb_raw(self.strict_port, head))
        self.assertEqual(status, 431)
        self.assertEqual(headers.get("x-spillway-reason"), "headers_too_large")

    def lb_raw(self, port, data):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(data)
            chunks = []
            while True:
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)

    def test_connection_tokens_cost_no_quadratic_cpu(self):
        # 9,000 Connection tokens and 5,000 empty fields (57 KB): each field used to be looked up
        # in the whole token list, about 270 ms of worker CPU per request, some 50 times what the
        # same head costs with the tokens in an ordinary header. The lookup is now O(n log n), so
        # the two cost about the same. CPU time on a shared machine is noisy (a CI run once
        # charged 1 s to five requests that take 30 ms here), so the test compares the two heads
        # against each other, interleaved, and keeps the cheapest of three rounds of each: a
        # quadratic lookup fails every round, a noisy moment fails one.
        tokens = b", ".join(b"x-t%d" % i for i in range(9000))
        fields = b"X-E:\r\n" * 5000

        def head(list_header):
            return b"GET /cpu HTTP/1.1\r\nHost: x\r\n" + list_header + b": " + tokens + b"\r\n" + fields + b"\r\n"

        listed, control = head(b"Connection"), head(b"Keep-Alive")
        self.assertGreater(len(listed), 50000)

        def cost(request):
            before = cpu_seconds(self.lb.proc.pid)
            with socket.create_connection(("127.0.0.1", self.lb.port)) as s:
                for _ in range(5):
                    s.sendall(request)
                    status, _, _ = read_response(s, timeout=10)
                    self.assertEqual(status, 200)
            return cpu_seconds(self.lb.proc.pid) - before

        rounds = [(cost(listed), cost(control)) for _ in range(3)]
        listed_cpu = min(r[0] for r in rounds)
        control_cpu = min(r[1] for r in rounds)
        print("\nCONNECTION TOKENS: 5 requests of 57 KB cost %.0f ms of CPU (%.0f ms with them in Keep-Alive)"
              % (listed_cpu * 1000, control_cpu * 1000))
        # Sorting and looking up 9,000 tokens is not free (about 4x the control under ASan), and
        # clock ticks are 10 ms, so a cheap control may read 0: allow 8 times it, plus 250 ms.
        # The quadratic lookup cost 970 ms here in Release.
        self.assertLess(listed_cpu, 8 * control_cpu + 0.25)

    def test_listener_max_connections(self):
        metric = 'spillway_listener_connections_rejected_total{listener="main"}'
        active = 'spillway_listener_connections_active{listener="main"}'
        rejected_before = self.lb.metric(metric, default=0.0)
        self.assertTrue(wait_until(lambda: self.lb.metric(active, default=0.0) == 0, 5))
        held = [socket.create_connection(("127.0.0.1", self.lb.port)) for _ in range(3)]
        try:
            self.assertTrue(wait_until(lambda: self.lb.metric(active, default=0.0) == 3, 5))
            # The fourth is accepted by the kernel and closed at once by Spillway.
            with socket.create_connection(("127.0.0.1", self.lb.port), timeout=5) as extra:
                extra.settimeout(5)
                try:
                    self.assertEqual(extra.recv(1), b"")
                except ConnectionResetError:
                    pass
            self.assertEqual(self.lb.wait_metric(metric, rejected_before + 1), rejected_before + 1)
            # Held connections still work.
            held[0].sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(read_response(held[0])[0], 200)
        finally:
            for s in held:
                s.close()
        # Room again once they are closed.
        self.assertTrue(wait_until(lambda: self.lb.metric(active, default=0.0) == 0, 5))
        self.assertEqual(self.lb.request("GET", "/")[0], 200)

    def test_response_head_over_the_limit_is_a_502(self):
        metric = 'spillway_upstream_response_headers_too_large_total{upstream="raw"}'
        before = self.lb.metric(metric, default=0.0)
        status, headers, _ = self.lb.request("GET", "/raw/x")
        self.assertEqual(status, 502)
        self.assertEqual(headers.get("x-spillway-reason"), "upstream_protocol_error")
        self.assertEqual(self.lb.wait_metric(metric, before + 1), before + 1)

    def test_absolute_form_goes_on_in_origin_form_with_its_authority(self):
        data = self.lb_raw(
            self.strict_port,
            b"GET http://Other.example:8080/x/../echo?y=1 HTTP/1.1\r\nHost: wrong.example\r\nConnection: close\r\n\r\n",
        )
        status, headers, body = parse_response(data)
        self.assertEqual(status, 200)
        seen = json.loads(body)
        self.assertEqual(seen["path"], "/echo?y=1")
        hosts = [v for k, v in seen["headers"] if k.lower() == "host"]
        self.assertEqual(hosts, ["Other.example:8080"])

    def test_h2c_upgrade_is_not_passed_on(self):
        data = self.lb_raw(
            self.strict_port,
            b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: close\r\n\r\n",
        )
        status, headers, body = parse_response(data)
        self.assertEqual(status, 200)
        names = [k.lower() for k, v in json.loads(body)["headers"]]
        self.assertNotIn("upgrade", names)
        self.assertNotIn("http2-settings", names)

if __name__ == "__main__":
    unittest.main()

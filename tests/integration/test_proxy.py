"""The L7 core through the real binary: spread, keep-alive, streaming, pipelining, forwarding."""

import json
import os
import socket
import subprocess
import threading
import time
import unittest

from harness import UNDER_TSAN, Spillway, parse_response, free_port
from testd import Testd


def config_for(backends, balance="least_request", workers=1, extra_upstream="", extra_listener=""):
    lines = ["workers: %d" % workers,
             "admin: { listen: 127.0.0.1:{admin_port} }",
             "listeners:",
             "  - name: main",
             "    listen: 127.0.0.1:{port}",
             extra_listener,
             "    routes: [ { upstream: app } ]",
             "upstreams:",
             "  - name: app",
             "    balance: %s" % balance,
             "    health_check: false",
             extra_upstream,
             "    backends:"]
    for b in backends:
        lines.append("      - address: %s" % b.address)
    return "\n".join(l for l in lines if l) + "\n"


class ProxyTest(unittest.TestCase):
    def setUp(self):
        self.backends = [Testd(name="b%d" % i) for i in range(3)]
        self.lb = Spillway(config_for(self.backends))

    def tearDown(self):
        self.lb.stop()
        for b in self.backends:
            b.stop()

    def test_spread_over_backends(self):
        seen = {}
        for _ in range(60):
            status, headers, body = self.lb.request("GET", "/")
            self.assertEqual(status, 200)
            seen[headers["x-backend"]] = seen.get(headers["x-backend"], 0) + 1
        # sequential requests: every backend is idle each time, ties rotate evenly
        self.assertEqual(sorted(seen.values()), [20, 20, 20], seen)

    def test_burst_of_new_connections_all_answered(self):
        # 300 connections opened at once, each with its request already sent: the worker takes
        # them off the backlog in batches (up to 64 per wake-up), and every one is served.
        socks = []
        try:
            for _ in range(300):
                s = socket.create_connection(("127.0.0.1", self.lb.port), timeout=10)
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                socks.append(s)
            for s in socks:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "closed without an answer")
                    data += chunk
                self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:80])
        finally:
            for s in socks:
                s.close()

    def test_keep_alive_both_sides(self):
        c = self.lb.conn()
        for _ in range(30):
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        c.close()
        accepted = sum(b.stats()["connections_accepted"] for b in self.backends)
        # one worker: at most one pooled connection per backend, reused for every request
        # (the stats requests themselves open one connection each)
        self.assertLessEqual(accepted - len(self.backends), 3, accepted)

    def test_pipelined_requests_answered_in_order(self):
        reqs = b"".join(b"GET /echo?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(5))
        reqs += b"GET /echo?n=last HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        data = self.lb.raw(reqs)
        paths = [json.loads(part.split(b"\r\n\r\n", 1)[1].split(b"\n")[0])["path"]
                 for part in data.split(b"HTTP/1.1 200")[1:]]
        self.assertEqual(paths, ["/echo?n=%d" % i for i in range(5)] + ["/echo?n=last"])

    def test_http10_client(self):
        data = self.lb.raw(b"GET / HTTP/1.0\r\n\r\n")
        status, headers, body = parse_response(data)
        self.assertEqual(status, 200)
        self.assertIn(body.strip(), [b"b0", b"b1", b"b2"])
        # keep-alive on request
        with socket.create_connection(("127.0.0.1", self.lb.port), timeout=5) as s:
            for _ in range(2):
                s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += s.recv(4096)
                st, h, body = parse_response(buf)
                self.assertEqual(st, 200)
                self.assertEqual(h.get("connection"), "keep-alive")
                n = int(h["content-length"]) - len(body)
                while n > 0:
                    n -= len(s.recv(n))

    def test_forwarding_headers(self):
        status, headers, body = self.lb.request(
            "GET", "/echo", headers={"X-Forwarded-For": "10.1.1.1", "X-Forwarded-Proto": "https",
                                     "Connection": "x-secret", "X-Secret": "1", "Keep-Alive": "timeout=5",
                                     "X-Request-Id": "abc-123"})
        self.assertEqual(status, 200)
        got = {k.lower(): v for k, v in json.loads(body)["headers"]}
        self.assertEqual(got["x-forwarded-for"], "10.1.1.1, 127.0.0.1")
        self.assertEqual(got["x-forwarded-proto"], "http")
        self.assertEqual(got["x-request-id"], "abc-123")
        self.assertNotIn("x-secret", got)
        self.assertNotIn("keep-alive", got)
        self.assertNotIn("connection", got)
        status, headers, body = self.lb.request("GET", "/echo")
        got = {k.lower(): v for k, v in json.loads(body)["headers"]}
        self.assertRegex(got["x-request-id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

    def test_response_hop_by_hop_removed(self):
        status, headers, body = self.lb.request("GET", "/?close=1")
        self.assertEqual(status, 200)
        # the backend said Connection: close; that is about its connection, not the client's
        self.assertNotEqual(headers.get("connection"), "close")

    def test_expect_100_continue(self):
        out = subprocess.run(["curl", "-sS", "-v", "-H", "Expect: 100-continue", "--data-binary", "@-",
                              "http://127.0.0.1:%d/echo" % self.lb.port],
                             input=b"x" * 5000, capture_output=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"HTTP/1.1 100 Continue", out.stderr)
        self.assertEqual(json.loads(out.stdout)["body_bytes"], 5000)

    def test_chunked_request_and_response(self):
        def gen():
            for i in range(100):
                yield b"y" * 1000
        c = self.lb.conn()
        c.request("POST", "/echo", body=gen(), encode_chunked=True)
        r = c.getresponse()
        self.assertEqual(json.loads(r.read())["body_bytes"], 100000)
        c.request("GET", "/download?size=300000&chunked=1")
        r = c.getresponse()
        self.assertEqual(r.getheader("transfer-encoding"), "chunked")
        self.assertEqual(len(r.read()), 300000)
        c.close()

    def test_head_request(self):
        status, headers, body = self.lb.request("HEAD", "/download?size=1000")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        status, headers, body = self.lb.request("GET", "/")
        self.assertEqual(status, 200)

    def test_status_shape(self):
        self.lb.request("GET", "/")
        s = self.lb.status()
        self.assertEqual(s["config"]["generation"], 1)
        self.assertIn("loaded_at", s["config"])
        (up,) = s["upstreams"]
        self.assertEqual(up["name"], "app")
        self.assertEqual(len(up["backends"]), 3)
        for b in up["backends"]:
            for key in ("address", "healthy", "ejected", "breaker", "active_requests", "requests_total",
                        "failures_total"):
                self.assertIn(key, b)
            self.assertEqual(b["breaker"], "closed")
        self.assertEqual(sum(b["requests_total"] for b in up["backends"]), 1)

    def test_killed_backend_costs_nothing_while_another_is_up(self):
        self.backends[0].kill()
        self.backends[1].kill()
        for _ in range(30):
            status, headers, body = self.lb.request("GET", "/")
            self.assertEqual(status, 200)
            self.assertEqual(headers["x-backend"], "b2")


class StreamingTest(unittest.TestCase):
    """100 MB each way through the proxy; its memory must not grow with the body."""

    SIZE = 100 * 1024 * 1024

    def setUp(self):
        self.backend = Testd(name="s")
        self.lb = Spillway(config_for([self.backend]))

    def tearDown(self):
        self.lb.stop()
        self.backend.stop()

    def test_upload_and_download_100mb(self):
        rss_before = self.lb.rss_kib()
        peak = [rss_before]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], self.lb.rss_kib())
                time.sleep(0.05)
        t = threading.Thread(target=sample)
        t.start()
        try:
            chunk = b"z" * 65536

            def gen():
                for _ in range(self.SIZE // len(chunk)):
                    yield chunk
            c = self.lb.conn(timeout=60)
            c.request("POST", "/upload", body=gen(), headers={"Content-Length": str(self.SIZE)})
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertEqual(json.loads(r.read())["body_bytes"], self.SIZE)
            c.request("GET", "/download?size=%d" % self.SIZE)
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            got = 0
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                got += len(b)
            self.assertEqual(got, self.SIZE)
            c.close()
        finally:
            stop.set()
            t.join()
        # flat: the proxy streams through fixed buffers (allow slack for allocator noise)
        self.assertLess(peak[0] - rss_before, 16 * 1024, (rss_before, peak[0]))


class BalanceUnderLoadTest(unittest.TestCase):
    def run_wrk(self, port, seconds=4, conns=16):
        out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "http://127.0.0.1:%d/" % port],
                             capture_output=True, text=True, timeout=seconds + 30)
        self.assertEqual(out.returncode, 0, out.stderr)
        return out.stdout

    def share_of_slow(self, balance):
        fast = Testd(name="fast", latency="2ms")
        slow = Testd(name="slow", latency="20ms")
        lb = Spillway(config_for([fast, slow], balance=balance))
        try:
            self.run_wrk(lb.port)
            f = fast.stats()["requests"]
            s = slow.stats()["requests"]
            return s / float(f + s)
        finally:
            lb.stop()
            fast.stop()
            slow.stop()

    def test_slow_backend_gets_less_with_least_request(self):
        share = self.share_of_slow("least_request")
        print("\nBALANCE: least_request gives the 10x slower backend %.1f%% of requests" % (share * 100))
        if UNDER_TSAN:
            # The load still ran (for TSan to watch), but the share measures the balancer against
            # backend latency, and under TSan the proxy's own time per request (not the backends')
            # decides how many requests each backend has in flight: 20-27% was seen.
            self.skipTest("share %.1f%% not judged under TSan" % (share * 100))
        self.assertLess(share, 0.20, share)

    def test_round_robin_splits_evenly(self):
        share = self.share_of_slow("round_robin")
        print("\nBALANCE: round_robin gives the 10x slower backend %.1f%% of requests" % (share * 100))
        self.assertGreater(share, 0.40, share)
        self.assertLess(share, 0.60, share)

    def test_wrk_no_errors_both_backends_serve(self):
        a = Testd(name="a")
        b = Testd(name="b")
        lb = Spillway(config_for([a, b], workers=2))
        try:
            out = self.run_wrk(lb.port, seconds=5, conns=64)
            self.assertNotIn("Socket errors", out, out)
            self.assertNotIn("Non-2xx", out, out)
            self.assertGreater(a.stats()["requests"], 1000)
            self.assertGreater(b.stats()["requests"], 1000)
        finally:
            lb.stop()
            a.stop()
            b.stop()


if __name__ == "__main__":
    unittest.main()

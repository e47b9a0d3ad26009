"""Thousands of idle keep-alive clients through the real binary: held, cheap, and served while traffic flows.

An edge proxy holds far more idle keep-alive connections than busy ones. This opens 15,000 of them
(the machine's open-file cap is 20,000 per process), one request each, runs wrk through the same
listener meanwhile, and then sends every idle connection a second request.
"""

import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
import unittest

from harness import Spillway  # noqa: E402
from testd import Testd  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from idle_memory import read_response, rss_kib  # noqa: E402

IDLE = 15000
BATCH = 200  # connections opened (requests in flight) at once


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class IdleConnectionsTest(unittest.TestCase):
    def setUp(self):
        if raise_fd_limit() < IDLE + 1000:
            self.skipTest("open-file limit below %d" % (IDLE + 1000))
        if shutil.which("wrk") is None:
            self.skipTest("wrk not installed")
        self.a, self.b = Testd(name="a"), Testd(name="b")
        self.lb = Spillway("""
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    max_connections: 19000
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    timeouts: { idle: 300s }   # the first connections idle while the others open (slow on sanitized builds)
    backends: [ { address: %s }, { address: %s } ]
""" % (self.a.address, self.b.address))
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.lb.stop()
        self.a.stop()
        self.b.stop()

    def request(self):
        return b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n"

    def send_and_read(self, socks):
        """One request on each of `socks`, BATCH at a time; returns how many answered 200."""
        ok = 0
        for start in range(0, len(socks), BATCH):
            group = socks[start:start + BATCH]
            for s in group:
                s.sendall(self.request())
            for s in group:
                try:
                    status, _ = read_response(s)
                    ok += status == 200
                except (OSError, ConnectionError, ValueError):
                    pass
        return ok

    def test_fifteen_thousand_idle_connections_are_held_and_served_while_traffic_flows(self):
        before = rss_kib(self.lb.proc.pid)
        opened_at = time.monotonic()
        for _ in range(0, IDLE, BATCH):
            for _ in range(BATCH):
                s = socket.create_connection(("127.0.0.1", self.lb.port), timeout=60)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.socks.append(s)
        first_ok = self.send_and_read(self.socks)
        print("\nIDLE: %d connections opened and answered in %.1f s" % (len(self.socks), time.monotonic() - opened_at))
        self.assertEqual(first_ok, IDLE)
        time.sleep(3)  # idle long enough to be parked (Spillway parks after 1 s, swept every second)
        grown = rss_kib(self.lb.proc.pid) - before
        print("IDLE: RSS grew by %d KiB, %.2f KiB per idle connection" % (grown, grown / IDLE))

        # Traffic through the same listener while all of them sit idle.
        out = subprocess.run(["wrk", "-t1", "-c32", "-d3s", "http://127.0.0.1:%d/" % self.lb.port],
                             capture_output=True, text=True, timeout=60).stdout
        done = re.search(r"(\d+) requests in", out)
        self.assertIsNotNone(done, out)
        self.assertGreater(int(done.group(1)), 100, out)
        self.assertNotIn("Socket errors", out)
        self.assertNotIn("Non-2xx", out)

        # Every idle connection was held: each answers its second request.
        self.assertEqual(self.send_and_read(self.socks), IDLE)
        status = self.lb.status()
        listener = [l for l in status["listeners"] if l["name"] == "main"][0]
        self.assertGreaterEqual(listener["connections_active"], IDLE, listener)

        if not os.environ.get("SPILLWAY_SANITIZER"):
            # Not a timing: a memory bound, far above the ~1.3 KiB measured and far below the 28 KiB
            # an idle connection cost when it owned its buffers.
            self.assertLess(grown / IDLE, 6.0)


if __name__ == "__main__":
    unittest.main()

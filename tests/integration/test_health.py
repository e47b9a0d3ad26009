"""Active health checks, outlier detection and retries as seen through /status, /metrics and clients."""

import socket
import time
import unittest

from harness import Spillway, wait_until
from testd import Testd

CONFIG = """
workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check:
      http: { path: /healthz, expect_status: [200] }
      interval: 300ms
      timeout: 200ms
      healthy_threshold: 2
      unhealthy_threshold: 2
    outlier_detection: { consecutive_failures: 3, ejection_time: 1s, max_ejection_percent: 50% }
    backends:
{backends}
"""


def dead_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "127.0.0.1:%d" % s.getsockname()[1]




class HealthTest(unittest.TestCase):
    def setUp(self):
        self.a = Testd(name="a")
        self.b = Testd(name="b")

    def tearDown(self):
        self.a.stop()
        self.b.stop()

    def make(self, *addresses, extra=""):
        cfg = CONFIG.replace("    backends:\n", extra + "    backends:\n")
        return Spillway(cfg.replace("{backends}", "\n".join("      - address: " + a for a in addresses)))

    def test_first_request_never_goes_to_a_dead_backend(self):
        dead = dead_address()
        lb = self.make(dead, self.a.address)
        try:
            # the listener serves only after the first round of checks: the dead one is known down
            status, headers, _ = lb.request("GET", "/")
            self.assertEqual(status, 200)
            st = lb.backend_status("app", dead)
            self.assertFalse(st["healthy"])
            self.assertEqual(st["out_reason"], "unhealthy")
            self.assertIn("connect", st["health_detail"])
            self.assertEqual(st["requests_total"], 0)
        finally:
            lb.stop()

    def test_health_flip_down_and_up(self):
        lb = self.make(self.a.address, self.b.address)
        try:
            self.a.set(healthy=0)
            self.assertTrue(wait_until(lambda: not lb.backend_status("app", self.a.address)["healthy"], 3))
            st = lb.backend_status("app", self.a.address)
            self.assertEqual(st["health_detail"], "status 503")
            before = self.a.stats()["requests"]
            for _ in range(20):
                self.assertEqual(lb.request("GET", "/")[1]["x-backend"], "b")
            self.assertEqual(self.a.stats()["requests"], before)
            self.a.set(healthy=1)
            self.assertTrue(wait_until(lambda: lb.backend_status("app", self.a.address)["available"], 3))
            code, metrics = lb.admin("GET", "/metrics")
            text = metrics.decode()
            # unknown -> up at the first check, up -> down, down -> up
            self.assertIn('spillway_health_transitions_total{upstream="app",backend="%s"} 3' % self.a.address, text)
            self.assertIn('spillway_backend_up{upstream="app",backend="%s"} 1' % self.a.address, text)
            logs = lb.logs()
            self.assertEqual(logs.count("health: app %s is down" % self.a.address), 1, logs)
            self.assertEqual(logs.count("health: app %s is up" % self.a.address), 2, logs)  # first check + return
        finally:
            lb.stop()

    def test_outlier_ejection_and_return(self):
        lb = self.make(self.a.address, self.b.address)
        try:
            self.a.set(status=502)  # /healthz stays 200: only live traffic sees the failures
            # retries hide the failures from clients while the ejection happens
            for _ in range(20):
                self.assertEqual(lb.request("GET", "/")[0], 200)
            st = lb.backend_status("app", self.a.address)
            self.assertTrue(st["ejected"])
            self.assertTrue(st["healthy"])
            self.assertEqual(st["out_reason"], "ejected")
            self.assertEqual(st["ejections_total"], 1)
            self.a.set(status=200)
            self.assertTrue(wait_until(lambda: lb.backend_status("app", self.a.address)["available"], 3))
            code, metrics = lb.admin("GET", "/metrics")
            self.assertIn('spillway_ejections_total{upstream="app",backend="%s"} 1' % self.a.address,
                          metrics.decode())
            self.assertIn('spillway_retries_total{upstream="app",result="success"}', metrics.decode())
            logs = lb.logs()
            self.assertEqual(logs.count("outlier: app %s ejected" % self.a.address), 1, logs)
            self.assertEqual(logs.count("outlier: app %s returns" % self.a.address), 1, logs)
        finally:
            lb.stop()

    def test_max_ejection_percent_keeps_a_lone_backend(self):
        # (the breaker would take it out instead: this test is about outlier detection alone)
        lb = self.make(self.a.address, extra="    circuit_breaker: false\n")
        try:
            self.a.set(status=503)
            for _ in range(10):
                status, headers, _ = lb.request("GET", "/")
                self.assertEqual(status, 503)  # the backend's own answer, passed on
                self.assertNotIn("x-spillway-reason", headers)
            self.assertFalse(lb.backend_status("app", self.a.address)["ejected"])
        finally:
            lb.stop()

    def test_all_unhealthy_gives_fast_503_no_healthy_upstream(self):
        lb = self.make(self.a.address, self.b.address)
        try:
            self.a.set(healthy=0)
            self.b.set(healthy=0)
            self.a.stop()
            self.b.stop()
            self.assertTrue(wait_until(lambda: not any(
                b["healthy"] for b in lb.status()["upstreams"][0]["backends"]), 3))
            # Fast means answered at once, not after a connect timeout (1s) or a retry: the best of
            # 9 tries is well under 50 ms; the best rather than each, since a shared (or sanitized)
            # machine can stall any single request.
            times = []
            for _ in range(9):
                start = time.monotonic()
                status, headers, _ = lb.request("GET", "/")
                times.append(time.monotonic() - start)
                self.assertEqual(status, 503)
                self.assertEqual(headers["x-spillway-reason"], "no_healthy_upstream")
                self.assertEqual(headers["retry-after"], "5")
            self.assertLess(min(times), 0.05, times)
            self.assertLess(sorted(times)[4], 0.5, times)  # and no answer waited for a timeout
        finally:
            lb.stop()


if __name__ == "__main__":
    unittest.main()

"""Circuit breakers and per-upstream limits through the real binary."""

import json
import threading
import time
import unittest

from harness import UNDER_TSAN, Spillway, wait_until
from testd import Testd

BREAKER = """
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    outlier_detection: false
    circuit_breaker:
      failure_rate: 50%
      slow_call_duration: 100ms
      slow_call_rate: 50%
      window: 2s
      minimum_requests: 20
      open_duration: 1s
      half_open_requests: 3
    retries: { attempts: 2, on: [connect_failure, reset, 500, 502, 503, 504] }
    backends:
{backends}
"""

LIMITS = """
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    circuit_breaker: false
    limits: { max_requests: 10, max_connections: 100, max_pending: 10 }
    backends:
{backends}
"""


def backends_yaml(backends):
    return "\n".join("      - address: " + b.address for b in backends)


class Clients:
    """N threads sending GETs back to back until stopped; records (time, status)."""

    def __init__(self, lb, n=6, path="/"):
        self.lb, self.path = lb, path
        self.results, self.lock, self.stop_event = [], threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def run(self):
        c = self.lb.conn(timeout=5)
        deadline = time.monotonic() + 60
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            t = time.monotonic()
            try:
                c.request("GET", self.path)
                r = c.getresponse()
                r.read()
                status = r.status
            except Exception:  # noqa: BLE001
                status = None
                c.close()
                c = self.lb.conn(timeout=5)
            with self.lock:
                self.results.append((t, status))
        c.close()

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(10)

    def error_rate(self, since, until=None):
        with self.lock:
            rs = [s for t, s in self.results if t >= since and (until is None or t < until)]
        return (sum(1 for s in rs if s != 200) / len(rs)) if rs else 0.0, len(rs)


class BreakerTest(unittest.TestCase):
    def setUp(self):
        self.backends = [Testd(name="b%d" % i) for i in range(3)]
        self.lb = Spillway(BREAKER.replace("{backends}", backends_yaml(self.backends)))

    def tearDown(self):
        self.lb.stop()
        for b in self.backends:
            b.stop()

    def state(self):
        return self.lb.backend_status("app", self.backends[0].address)

    def test_failing_backend_opens_then_closes_when_healed(self):
        clients = Clients(self.lb)
        try:
            time.sleep(0.5)
            start = time.monotonic()
            self.backends[0].set(error_rate=60, error_status=500)
            opened = wait_until(lambda: self.state()["breaker"] == "open", 10)
            self.assertIsNotNone(opened, "breaker never opened: %s\n%s" % (self.state(), self.lb.logs()[-3000:]))
            st = self.state()
            self.assertGreaterEqual(st["breaker_window"]["failure_rate"], 50)
            # The degradation report dates the incident from the first failure, although successes
            # were mixed in, and counts every failure since (retried on the other backends).
            # The worker that opened it records the incident just after the state /status shows.
            def incidents_of_b0():
                body = self.lb.admin("GET", "/degradation")[1]
                return [i for i in json.loads(body)["incidents"] if i["backend"] == self.backends[0].address]
            wait_until(incidents_of_b0, 5)
            incidents = incidents_of_b0()
            self.assertEqual(len(incidents), 1, incidents)
            self.assertEqual(incidents[0]["reason"], "breaker_open")
            self.assertGreater(incidents[0]["detection_seconds"], 0, incidents[0])
            self.assertGreaterEqual(incidents[0]["failed_before_out"], 10, incidents[0])
            self.assertGreater(incidents[0]["retried_before_out"], 0, incidents[0])
            self.assertIn("half_open_in_ms", st["breaker_window"])
            served = self.backends[0].stats()["requests"]
            time.sleep(0.5)  # open: no traffic to it
            self.assertEqual(self.backends[0].stats()["requests"], served)
            self.backends[0].set(error_rate=0)
            healed = time.monotonic()
            closed = wait_until(lambda: self.state()["breaker"] == "closed", 10)
            self.assertIsNotNone(closed, "breaker never closed")
            rate, n = clients.error_rate(start)
        finally:
            clients.stop()
        print("\nBREAKER failure: opened after %.3fs, closed %.3fs after healing; client error rate %.4f over %d "
              "requests" % (opened, closed, rate, n))
        # retries on other backends hide the failures from clients
        self.assertLess(rate, 0.01)
        # open_duration (1s, +-10% jitter) then 3 good trials
        self.assertLess(closed, 1.1 + 1.0)
        # Logged just after the state /status shows.
        wait_until(lambda: "half_open -> closed" in self.lb.logs(), 5)
        logs = self.lb.logs()
        self.assertIn("closed -> open", logs)
        self.assertIn("half_open -> closed", logs)
        code, metrics = self.lb.admin("GET", "/metrics")
        self.assertIn('spillway_breaker_transitions_total{upstream="app",backend="%s",from="closed",to="open"}'
                      % self.backends[0].address, metrics.decode())
        del healed

    def test_slow_backend_opens_on_slow_call_rate(self):
        # round_robin keeps sending the slow backend its share (least_request would starve it of
        # calls, and so of evidence)
        self.lb.stop()
        self.lb = Spillway(BREAKER.replace("{backends}", backends_yaml(self.backends)).replace(
            "    health_check: false", "    balance: round_robin\n    health_check: false"))
        clients = Clients(self.lb)
        try:
            time.sleep(0.3)
            self.backends[0].set(latency="300ms")  # 3x slow_call_duration
            opened = wait_until(lambda: self.state()["breaker"] == "open", 10)
        finally:
            clients.stop()
        self.assertIsNotNone(opened, "breaker never opened on slow calls")
        wait_until(lambda: "slow-call rate" in self.lb.logs(), 5)  # logged just after the state flips
        self.assertIn("slow-call rate", self.lb.logs())


class LimitsTest(unittest.TestCase):
    def test_flood_beyond_max_requests_gets_fast_503(self):
        backend = Testd(name="slow", latency="300ms")
        lb = Spillway(LIMITS.replace("{backends}", backends_yaml([backend])))
        results = []
        lock = threading.Lock()
        barrier = threading.Barrier(30)

        def one():
            c = lb.conn(timeout=10)
            c.connect()
            barrier.wait()
            t = time.monotonic()
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            with lock:
                results.append((r.status, r.getheader("x-spillway-reason"), r.getheader("retry-after"),
                                time.monotonic() - t))
            c.close()
        try:
            threads = [threading.Thread(target=one) for _ in range(30)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
            ok = [r for r in results if r[0] == 200]
            shed = [r for r in results if r[0] == 503]
            code, metrics = lb.admin("GET", "/metrics")
        finally:
            lb.stop()
            backend.stop()
        print("\nLIMITS: %d admitted (p100 %.0f ms), %d shed (max %.1f ms)" % (
            len(ok), max(r[3] for r in ok) * 1000, len(shed), max(r[3] for r in shed) * 1000))
        self.assertEqual(len(results), 30)
        # admitted requests never exceed max_requests, even with 2 workers counting at once
        self.assertLessEqual(len(ok), 10)
        self.assertGreaterEqual(len(ok), 5)
        self.assertEqual(len(ok) + len(shed), 30)
        # At once, not queued behind the admitted ones (the backend takes 0.3 s). Judged against the
        # admitted requests of the same run, not against a fixed time: a stall of the whole proxy
        # (a busy machine, ASan: in one CI run every 503 took ~0.15 s, against 8-15 ms alone) delays
        # both alike, while a 503 that waited for a slow request would end after it.
        admitted_first = min(r[3] for r in ok)
        for status, reason, retry_after, latency in shed:
            self.assertEqual(reason, "upstream_overloaded")
            self.assertIsNotNone(retry_after)
            if not UNDER_TSAN:
                # Under TSan on a busy machine a single 503 was seen to take 0.26-0.28 s; the median
                # below still catches queueing there.
                self.assertLess(latency, admitted_first)
        median_shed = sorted(r[3] for r in shed)[len(shed) // 2]
        median_ok = sorted(r[3] for r in ok)[len(ok) // 2]
        self.assertLess(median_shed, median_ok - 0.2)
        for status, reason, retry_after, latency in ok:
            self.assertLess(latency, 0.3 + 0.25)  # no growth of latency within the limit
        self.assertIn('spillway_upstream_overflow_total{upstream="app",limit="max_requests"} %d' % len(shed),
                      metrics.decode())


if __name__ == "__main__":
    unittest.main()

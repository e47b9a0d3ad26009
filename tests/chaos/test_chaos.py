"""Chaos: backends killed, frozen, failing, all gone, under live load through the real binary.

Each scenario drives GETs with the closed-loop client in loadgen.py against 3 spillway-testd
backends on loopback, breaks something, and checks what the clients saw. Every scenario is bounded
in time and stops by itself. A one-line summary per scenario is printed (and appended to
$SPILLWAY_CHAOS_REPORT when set) for tests/chaos/README.md.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import UNDER_TSAN, Spillway, wait_until  # noqa: E402
from loadgen import Load  # noqa: E402
from testd import Testd  # noqa: E402

INTERVAL_MS = 500
UNHEALTHY_THRESHOLD = 2

CONFIG = """
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check:
      http: { path: /healthz }
      interval: %dms
      timeout: 300ms
      healthy_threshold: 2
      unhealthy_threshold: %d
    outlier_detection: { consecutive_failures: 5, ejection_time: 2s, max_ejection_percent: 50%% }
    retries:
      attempts: 2
      on: [connect_failure, reset, timeout, 502, 503, 504]
      per_try_timeout: 300ms
    timeouts: { connect: 200ms, request: 5s }
    backends:
{backends}
""" % (INTERVAL_MS, UNHEALTHY_THRESHOLD)


def report(row):
    line = json.dumps(row)
    print("\nCHAOS " + line, file=sys.stderr)
    path = os.environ.get("SPILLWAY_CHAOS_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")




class ChaosTest(unittest.TestCase):
    def setUp(self):
        self.backends = [Testd(name="b%d" % i) for i in range(3)]
        self.lb = None
        self.load = None

    def tearDown(self):
        if self.load is not None:
            self.load.stop()
        if self.lb is not None:
            self.lb.stop()
        for b in self.backends:
            b.stop()

    def start(self, backend_lines, threads=8):
        self.lb = Spillway(CONFIG.replace("{backends}", "\n".join("      - " + line for line in backend_lines)))
        self.load = Load(self.lb.port, threads=threads, max_seconds=60).start()
        time.sleep(1.0)  # steady state first

    def backend(self, i):
        return self.lb.backend_status("app", self.backends[i].address)

    def test_1_sigkill_and_restart_costs_nothing(self):
        self.start(["address: " + b.address for b in self.backends])
        killed_at = time.monotonic()
        self.backends[0].kill()
        detect = wait_until(lambda: not self.backend(0)["healthy"], 10)
        time.sleep(1.0)
        self.backends[0].restart()
        restarted_at = time.monotonic()
        recover = wait_until(lambda: self.backend(0)["available"], 10)
        back_in = wait_until(lambda: self.backends[0].stats()["requests"] > 0, 10)
        traffic_back = time.monotonic() - restarted_at if back_in is not None else None
        time.sleep(0.5)
        self.load.stop()
        failures = self.load.failures(since=killed_at)
        report({"scenario": "1 SIGKILL one of 3, restart", "requests": self.load.count(), "failures": len(failures),
                "detect_s": round(detect, 3) if detect is not None else None,
                "recover_s": round(recover, 3) if recover is not None else None,
                "traffic_back_s": round(traffic_back, 3) if traffic_back is not None else None})
        self.assertEqual(failures, [], failures[:5])
        self.assertIsNotNone(detect, "never marked down")
        # unhealthy_threshold x interval, plus jitter (10%), the check timeout and polling slack
        self.assertLess(detect, UNHEALTHY_THRESHOLD * INTERVAL_MS / 1000 * 1.1 + 0.3 + 0.5)
        self.assertIsNotNone(recover, "never back")
        self.assertIsNotNone(back_in, "no traffic after restart")

    def test_2_sigstop_bounded_by_in_flight(self):
        self.start(["address: " + b.address for b in self.backends])
        tries_before = self.backend(0)["failures_total"]
        stopped_at = time.monotonic()
        self.backends[0].pause()
        detect = wait_until(lambda: not self.backend(0)["available"], 10)
        time.sleep(1.0)
        self.backends[0].resume()
        resumed_at = time.monotonic()
        recover = wait_until(lambda: self.backend(0)["available"], 10)
        time.sleep(0.5)
        self.load.stop()
        failures = self.load.failures(since=stopped_at)
        report({"scenario": "2 SIGSTOP one of 3, SIGCONT", "requests": self.load.count(), "failures": len(failures),
                "tries_timed_out_on_it": self.backend(0)["failures_total"] - tries_before,
                "detect_s": round(detect, 3) if detect is not None else None,
                "recover_s": round(recover, 3) if recover is not None else None})
        # Requests caught on the frozen backend time out per try and are retried elsewhere; at most
        # the requests that were in flight on it may fail (the client has 8 in flight in all).
        self.assertLessEqual(len(failures), 8, failures[:5])
        self.assertIsNotNone(detect)
        self.assertIsNotNone(recover)
        self.assertLess(recover, 5)
        del resumed_at

    def test_3_backend_answering_503_is_ejected(self):
        self.start(["address: " + b.address for b in self.backends])
        broke_at = time.monotonic()
        self.backends[0].set(status=503)
        detect = wait_until(lambda: self.backend(0)["ejected"], 10)
        self.assertIsNotNone(detect, "never ejected")
        ejected_at = time.monotonic()
        # The workers hear of the ejection a moment after /status shows it, and a request balanced
        # to it just before may still be on its way: count from 0.1 s on (as `late` below does).
        time.sleep(0.1)
        served_before = self.backends[0].stats()["requests"]
        time.sleep(1.0)
        served_while_ejected = self.backends[0].stats()["requests"] - served_before
        self.backends[0].set(status=200)
        recover = wait_until(lambda: self.backend(0)["available"], 15)
        time.sleep(0.3)
        self.load.stop()
        failures = self.load.failures(since=broke_at)
        late = self.load.failures(since=ejected_at + 0.1)
        report({"scenario": "3 one of 3 answers 503", "requests": self.load.count(), "failures": len(failures),
                "failures_after_ejection": len(late), "detect_s": round(detect, 3),
                "recover_s": round(recover, 3) if recover is not None else None})
        self.assertEqual(late, [], late[:5])
        self.assertEqual(served_while_ejected, 0)
        self.assertIsNotNone(recover)
        status = self.lb.status()
        self.assertGreaterEqual(self.backend(0)["ejections_total"], 1)
        del status

    def test_4_all_down_fast_503_then_recovery(self):
        self.start(["address: " + b.address for b in self.backends])
        killed_at = time.monotonic()
        for b in self.backends:
            b.kill()
        time.sleep(2.0)
        down = self.load.failures(since=killed_at + 0.2)
        for b in self.backends:
            b.restart()
        restarted_at = time.monotonic()
        recover = wait_until(lambda: len(self.load.successes_after(time.monotonic() - 0.05)) > 0, 10, step=0.05)
        time.sleep(0.5)
        self.load.stop()
        statuses = {r[2] for r in down}
        latencies = sorted(r[1] for r in down)
        p99 = latencies[int(len(latencies) * 0.99) - 1] if latencies else None
        reasons = {r[4].get("x-spillway-reason") for r in down}
        report({"scenario": "4 all 3 killed, restarted", "requests": self.load.count(),
                "answers_while_down": len(down), "statuses": sorted(s for s in statuses if s is not None),
                "reasons": sorted(r for r in reasons if r), "p99_ms_while_down": round(p99 * 1000, 2) if p99 else None,
                "recover_s": round(recover, 3) if recover is not None else None})
        self.assertGreater(len(down), 100)
        self.assertEqual(statuses, {503})
        self.assertTrue(all("retry-after" in r[4] for r in down))
        # Fast: no wait for a timeout (connect: 1 s). Under TSan on a busy machine the p99 was seen
        # at 53 ms: it gets a bound that still tells an answer from a timeout.
        self.assertLess(p99, 0.25 if UNDER_TSAN else 0.05)
        self.assertIsNotNone(recover, "no traffic after the backends came back")
        del restarted_at

    def test_5_primaries_killed_backups_take_over(self):
        self.start(["address: " + self.backends[0].address, "address: " + self.backends[1].address,
                    "{ address: %s, backup: true }" % self.backends[2].address])
        self.assertEqual(self.backends[2].stats()["requests"], 0)
        killed_at = time.monotonic()
        self.backends[0].kill()
        self.backends[1].kill()
        moved = wait_until(lambda: self.backends[2].stats()["requests"] > 100, 10)
        time.sleep(1.0)
        self.load.stop()
        failures = self.load.failures(since=killed_at)
        report({"scenario": "5 both primaries killed, backup lives", "requests": self.load.count(),
                "failures": len(failures), "moved_s": round(moved, 3) if moved is not None else None})
        self.assertEqual(failures, [], failures[:5])
        self.assertIsNotNone(moved)


if __name__ == "__main__":
    unittest.main()

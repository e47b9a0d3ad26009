"""Observability against the real binary: per-request metrics, the access log, the event journal and
the degradation report.

Counts are checked against traffic the test sent itself, so every assertion can fail: a counter that
misses requests, a histogram whose buckets do not add up, a log line with a wrong field, an incident
whose times are out of order.
"""

import json
import os
import re
import threading
import time
import unittest
import urllib.request

from harness import Spillway, free_port, wait_until
from testd import Testd


def metrics_text(sw):
    code, body = sw.admin("GET", "/metrics")
    assert code == 200
    return body.decode()


def samples(text, name):
    """{labels string: value} for every sample of `name`."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^" + re.escape(name) + r"(\{[^}]*\})? (\S+)$", line)
        if m:
            out[m.group(1) or ""] = float(m.group(2))
    return out


def read_lines(path, want, timeout=5.0):
    """The access log's lines once at least `want` are there (workers hand lines over every second)."""
    lines = []

    def enough():
        nonlocal lines
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            # The writer's last write may be under way: only whole lines count.
            lines = [json.loads(l) for l in text[:text.rfind("\n") + 1].splitlines() if l.strip()]
        return len(lines) >= want

    wait_until(enough, timeout)
    return lines


class MetricsAndAccessLogTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Testd(name="a")
        cls.dead_port = free_port()  # nothing listens here
        cls.log_path = None
        cls.sw = Spillway("""
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
access_log: { path: access.log }
listeners:
  - name: web
    listen: 127.0.0.1:{port}
    routes:
      - { match: { path_prefix: /dead }, upstream: dead }
      - { match: { path_prefix: /app }, upstream: app }
upstreams:
  - name: app
    health_check: false
    backends: [ { address: 127.0.0.1:%d } ]
  - name: dead
    health_check: false
    outlier_detection: { consecutive_failures: 1000 }
    circuit_breaker: false
    backends: [ { address: 127.0.0.1:%d } ]
""" % (cls.a.port, cls.dead_port))
        cls.log_path = os.path.join(cls.sw.dir, "access.log")

    @classmethod
    def tearDownClass(cls):
        cls.sw.stop()
        cls.a.stop()

    def test_counts_histograms_and_log_lines_match_the_traffic(self):
        """N requests of each kind show up exactly in listener, route, upstream and backend counters,
        the histograms' buckets add up to their counts, and one log line per request says why."""
        before = metrics_text(self.sw)
        ok_before = samples(before, "spillway_upstream_requests_total").get('{upstream="app",code="2xx"}', 0)
        n = 40
        for i in range(n):
            status, _, _ = self.sw.request("GET", "/app/item?i=%d" % i, headers={"x-request-id": "req-%d" % i})
            self.assertEqual(status, 200)
        for _ in range(5):
            self.assertEqual(self.sw.request("GET", "/nowhere")[0], 404)
        for _ in range(3):
            self.assertEqual(self.sw.request("GET", "/dead/x")[0], 503)
        # The last requests may be counted a moment after their responses were read.
        self.sw.wait_metric('spillway_upstream_requests_total{upstream="app",code="2xx"}', ok_before + n)
        self.sw.wait_metric('spillway_backend_responses_total{upstream="app",backend="127.0.0.1:%d",code="2xx"}'
                            % self.a.port, n)
        self.sw.wait_metric('spillway_listener_requests_total{listener="web",code="4xx"}', 5)
        self.sw.wait_metric('spillway_upstream_requests_total{upstream="dead",code="5xx"}', 3)
        self.sw.wait_metric('spillway_listener_requests_total{listener="web",code="5xx"}', 3)
        text = metrics_text(self.sw)
        up = samples(text, "spillway_upstream_requests_total")
        self.assertEqual(up['{upstream="app",code="2xx"}'] - ok_before, n)
        self.assertGreaterEqual(up['{upstream="dead",code="5xx"}'], 3)
        backend = samples(text, "spillway_backend_responses_total")
        self.assertGreaterEqual(backend['{upstream="app",backend="127.0.0.1:%d",code="2xx"}' % self.a.port], n)
        route = samples(text, "spillway_route_requests_total")
        self.assertGreaterEqual(route['{listener="web",route="1",upstream="app",code="2xx"}'], n)
        listener = samples(text, "spillway_listener_requests_total")
        self.assertGreaterEqual(listener['{listener="web",code="4xx"}'], 5)
        self.assertGreaterEqual(listener['{listener="web",code="5xx"}'], 3)
        # Histogram: cumulative buckets, non-decreasing, +Inf equals _count.
        buckets = samples(text, "spillway_upstream_request_duration_seconds_bucket")
        app = [(float(re.search(r'le="([^"]+)"', k).group(1).replace("+Inf", "inf")), v)
               for k, v in buckets.items() if 'upstream="app"' in k]
        app.sort()
        values = [v for _, v in app]
        self.assertEqual(values, sorted(values))
        count = samples(text, "spillway_upstream_request_duration_seconds_count")['{upstream="app"}']
        self.assertEqual(values[-1], count)
        self.assertGreaterEqual(count, n)
        self.assertGreater(samples(text, "spillway_upstream_connect_duration_seconds_count")['{upstream="app"}'], 0)
        self.assertGreater(samples(text, "spillway_listener_received_bytes_total")['{listener="web"}'], 0)
        self.assertGreater(samples(text, "spillway_listener_sent_bytes_total")['{listener="web"}'], 0)

        lines = read_lines(self.log_path, n + 8)
        by_id = {l["request_id"]: l for l in lines}
        first = by_id["req-0"]
        self.assertEqual(first["status"], 200)
        self.assertEqual(first["path"], "/app/item?i=0")
        self.assertEqual(first["listener"], "web")
        self.assertEqual(first["route"], 1)
        self.assertEqual(first["upstream"], "app")
        self.assertEqual(first["backend"], "127.0.0.1:%d" % self.a.port)
        self.assertEqual(first["flags"], "-")
        self.assertEqual(first["tries"], 1)
        self.assertGreater(first["duration_ms"], 0)
        self.assertGreater(first["bytes_out"], 0)
        no_route = [l for l in lines if l["status"] == 404]
        self.assertEqual(len(no_route), 5)
        self.assertTrue(all(l["flags"] == "NR" and l["reason"] == "no_route" and l["route"] is None for l in no_route))
        dead = [l for l in lines if l["path"] == "/dead/x"]
        self.assertEqual(len(dead), 3)
        # One backend, refused: a connect failure on every try (the default retries try it again).
        self.assertTrue(all(l["status"] == 503 and l["flags"] == "UF" and l["tries"] >= 1 for l in dead), dead)

    def test_status_carries_latency_and_response_classes(self):
        for _ in range(10):
            self.sw.request("GET", "/app/")
        # Counted when the response is done, a moment after the client read it: the last one may lag.
        address = "127.0.0.1:%d" % self.a.port
        self.assertTrue(wait_until(lambda: self.sw.backend_status("app", address)["responses"]["2xx"] >= 10, 5))
        b = self.sw.backend_status("app", address)
        self.assertGreaterEqual(b["responses"]["2xx"], 10)
        self.assertGreater(b["latency_ms"]["p99"], 0)
        self.assertGreaterEqual(b["latency_ms"]["p99"], b["latency_ms"]["p50"])
        listeners = self.sw.status()["listeners"]
        self.assertEqual(listeners[0]["name"], "web")
        self.assertGreater(listeners[0]["connections_total"], 0)


class AccessLogFormatTest(unittest.TestCase):
    def test_template_format_and_sampling(self):
        """A template names fields in braces; sampling keeps about its share of lines."""
        a = Testd(name="a")
        try:
            with Spillway("""
admin: { listen: 127.0.0.1:{admin_port} }
access_log: { path: access.log, format: "{method} {path} {status} {upstream} {flags} {tries}", sample: 50%% }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, health_check: false, backends: [ { address: 127.0.0.1:%d } ] } ]
""" % a.port) as sw:
                n = 400
                for i in range(n):
                    self.assertEqual(sw.request("GET", "/t%d" % i)[0], 200)
                path = os.path.join(sw.dir, "access.log")
                time.sleep(1.5)  # lines are handed to the writer every second
                with open(path) as f:
                    lines = f.read().splitlines()
            self.assertGreater(len(lines), n * 0.3)
            self.assertLess(len(lines), n * 0.7)
            m = re.fullmatch(r"GET /t(\d+) 200 app - 1", lines[0])
            self.assertIsNotNone(m, lines[0])
        finally:
            a.stop()

    def test_unknown_template_field_is_a_config_error(self):
        from test_cli import run, write  # the validate command, as users run it
        result = run("validate", "-c", write("""
access_log: { path: access.log, format: "{method} {nonsense}" }
listeners: [ { listen: 127.0.0.1:18080, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9 } ] } ]
"""))
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stdout, r":2:\d+: access_log format: unknown field \{nonsense\}")


class MetricsOffTest(unittest.TestCase):
    def test_metrics_false_stops_per_request_counting(self):
        """`metrics: false` (for measuring what counting costs) leaves per-request counters at 0;
        the gauges the balancer lives on still work."""
        a = Testd(name="a")
        try:
            with Spillway("""
metrics: false
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams: [ { name: app, health_check: false, backends: [ { address: 127.0.0.1:%d } ] } ]
""" % a.port) as sw:
                for _ in range(20):
                    self.assertEqual(sw.request("GET", "/")[0], 200)
                text = metrics_text(sw)
                self.assertEqual(samples(text, "spillway_metrics_per_request")[""], 0)
                self.assertEqual(samples(text, "spillway_upstream_requests_total")['{upstream="app",code="2xx"}'], 0)
                backend = samples(text, "spillway_backend_requests_total")
                self.assertEqual(backend['{upstream="app",backend="127.0.0.1:%d"}' % a.port], 20)
        finally:
            a.stop()


class DegradationReportTest(unittest.TestCase):
    def test_killed_backend_incident_is_reported_in_order(self):
        """Kill a backend under load, bring it back: the report has one incident for it with
        failed_at <= marked_out_at <= came_back_at <= in_rotation_at, a short detection time, and
        every request that failed on it in between retried (clients saw no error)."""
        a = Testd(name="a")
        b = Testd(name="b")
        b_port = b.port
        sw = Spillway("""
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    health_check: { http: { path: /healthz }, interval: 300ms, timeout: 200ms, unhealthy_threshold: 2, healthy_threshold: 1 }
    outlier_detection: { consecutive_failures: 3, ejection_time: 1s }
    backends: [ { address: 127.0.0.1:%d }, { address: 127.0.0.1:%d } ]
""" % (a.port, b_port))
        errors = []
        stop = threading.Event()

        def load():
            while not stop.is_set():
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/" % sw.port, timeout=5) as r:
                        r.read()
                except Exception as e:  # noqa: BLE001 - any failure is what the test counts
                    errors.append(repr(e))

        try:
            address = "127.0.0.1:%d" % b_port
            self.assertTrue(wait_until(lambda: sw.backend_status("app", address)["healthy"], 10))
            threads = [threading.Thread(target=load) for _ in range(4)]
            for t in threads:
                t.start()
            time.sleep(0.5)
            b.kill()
            self.assertTrue(wait_until(lambda: not sw.backend_status("app", address)["available"], 10))
            time.sleep(0.5)
            b = Testd(name="b", port=b_port)
            self.assertTrue(wait_until(lambda: sw.backend_status("app", address)["available"], 15))
            time.sleep(0.3)
            stop.set()
            for t in threads:
                t.join(10)
            self.assertEqual(errors, [], "clients saw failures")
            code, body = sw.admin("GET", "/degradation")
            self.assertEqual(code, 200)
            incidents = [i for i in json.loads(body)["incidents"] if i["backend"] == address]
            self.assertEqual(len(incidents), 1, incidents)
            inc = incidents[0]
            self.assertIn(inc["reason"], ("unhealthy", "ejected", "breaker_open"))
            self.assertLess(inc["detection_seconds"], 3.0)
            self.assertLessEqual(inc["failed_at"], inc["marked_out_at"])  # ISO 8601 UTC sorts as text
            self.assertIsNotNone(inc["came_back_at"])
            self.assertIsNotNone(inc["in_rotation_at"])
            self.assertLessEqual(inc["marked_out_at"], inc["came_back_at"])
            self.assertLessEqual(inc["came_back_at"], inc["in_rotation_at"])
            self.assertEqual(inc["retried_before_out"], inc["failed_before_out"])
            code, text = sw.admin("GET", "/degradation?format=text")
            self.assertIn(address, text.decode())
            kinds = {(e["kind"], e["backend"]) for e in sw.status()["events"]}
            self.assertTrue(("health", address) in kinds or ("ejection", address) in kinds, kinds)
            self.assertEqual(sw.admin("POST", "/degradation/reset")[0], 200)
            self.assertEqual(json.loads(sw.admin("GET", "/degradation")[1])["incidents"], [])
        finally:
            stop.set()
            sw.stop()
            a.stop()
            b.stop()


if __name__ == "__main__":
    unittest.main()

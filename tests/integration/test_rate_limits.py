"""Rate limits through the real binary: a rate held under wrk, the 429 answer and its headers on
HTTP/1.1, HTTP/2 and gRPC, keys (client, header, route), dry_run, max_keys, tcp connection rates,
budgets kept across a reload, and shared budgets in Debian's redis-server (two instances, Redis
killed mid-run, on_unavailable)."""

import os
import shutil
import socket
import subprocess
import time
import unittest

from h2client import H2Client
from harness import Spillway, free_port, wait_for_port, wait_until
from testd import Testd

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "report.lua")


def wrk(url, seconds, connections=8, threads=2):
    """Runs wrk with bench/report.lua; returns its BENCH fields as ints."""
    out = subprocess.run(["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds, "-s", REPORT, url],
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    line = [l for l in out.splitlines() if l.startswith("BENCH ")]
    assert line, out
    return {k: int(v) for k, v in (kv.split("=") for kv in line[0].split()[1:])}


class RateLimitTest(unittest.TestCase):
    def setUp(self):
        self.backend = Testd(name="b")

    def tearDown(self):
        self.backend.stop()

    def spillway(self, policies, route_extra="", workers=2):
        return Spillway("""
workers: %d
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - listen: 127.0.0.1:{port}
    routes:
      - { match: { path_prefix: /limited }, upstream: app, rate_limit: limit %s}
      - { upstream: app }
upstreams: [ { name: app, backends: [ { address: %s } ] } ]
rate_limits:
%s""" % (workers, route_extra, self.backend.address, policies))

    def decisions(self, sw, result, policy="limit"):
        return sw.metric('spillway_rate_limit_decisions_total{policy="%s",result="%s"}' % (policy, result), 0)

    def test_a_rate_is_held_under_wrk_across_workers(self):
        with self.spillway("  - { name: limit, rate: 400/s, burst: 20 }\n") as sw:
            start = time.monotonic()
            r = wrk("http://127.0.0.1:%d/limited" % sw.port, 5)
            elapsed = time.monotonic() - start
            admitted = sw.wait_metric('spillway_rate_limit_decisions_total{policy="limit",result="admitted"}', 1)
            limited = self.decisions(sw, "limited")
            # wrk's run is within `elapsed` (its start-up and the metrics read are the slack).
            rate = (admitted - 20) / (r["duration_us"] / 1e6)
            print("\nRATE LIMIT: 400/s asked, %.1f/s admitted over %.2f s (%d admitted, %d limited, %d requests)" % (
                rate, r["duration_us"] / 1e6, admitted, limited, r["requests"]))
            self.assertGreater(r["requests"], 4 * admitted)  # wrk pushed well past the rate
            self.assertLessEqual(admitted, 400 * elapsed + 20 + 1)
            self.assertAlmostEqual(rate, 400, delta=400 * 0.03)
            # wrk does not count the answers in flight when it stops (one per connection at most).
            self.assertAlmostEqual(admitted + limited, r["requests"], delta=8)
            # A 429 is decided (and counted as limited) before it is written, and counted as a local
            # reply once written: the last ones may lag.
            self.assertEqual(sw.wait_metric('spillway_listener_local_replies_total{listener="listener_0",'
                                            'reason="rate_limited"}', limited), limited)
            # The route without a policy is not limited.
            self.assertEqual(wrk("http://127.0.0.1:%d/other" % sw.port, 1)["status_errors"], 0)

    def test_the_429_answer_on_http1_http2_and_grpc(self):
        with self.spillway("  - { name: limit, rate: 1/m, burst: 2 }\n") as sw:
            self.assertEqual(sw.request("GET", "/limited")[0], 200)
            code, headers, _ = sw.request("GET", "/limited")
            self.assertEqual(code, 200)
            self.assertEqual(headers.get("ratelimit"), None)  # admitted answers are the backend's own
            code, headers, body = sw.request("GET", "/limited")
            self.assertEqual(code, 429)
            self.assertEqual(headers["x-spillway-reason"], "rate_limited")
            self.assertEqual(headers["ratelimit-policy"], '"limit";q=1;w=60')
            self.assertEqual(headers["ratelimit"], '"limit";r=0;t=120')  # two requests' worth to refill
            self.assertEqual(headers["retry-after"], "60")
            self.assertEqual(body, b"rate_limited\n")
            # The connection stays open: a limited client may keep it (HTTP/1.1 keep-alive).
            c = sw.conn()
            c.request("GET", "/limited")
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 429)
            c.request("GET", "/other")
            self.assertEqual(c.getresponse().status, 200)
            c.close()

            h2 = H2Client(sw.port)
            try:
                s = h2.get("/limited")
                self.assertEqual(s.status, 429)
                self.assertEqual(s.header("retry-after"), "60")
                self.assertEqual(s.header("ratelimit-policy"), '"limit";q=1;w=60')
                g = h2.response(h2.request("POST", "/limited", headers=[("content-type", "application/grpc"),
                                                                        ("te", "trailers")], body=b""))
                self.assertEqual(g.status, 200)
                self.assertEqual(g.header("grpc-status"), "8")  # RESOURCE_EXHAUSTED
                self.assertEqual(g.header("x-spillway-reason"), "rate_limited")
            finally:
                h2.close()
            self.assertEqual(self.decisions(sw, "admitted"), 2)
            self.assertEqual(self.decisions(sw, "limited"), 4)
            status = [p for p in sw.status()["rate_limits"] if p["name"] == "limit"][0]
            self.assertEqual((status["rate"], status["burst"], status["key"], status["limited"]), ("1/m", 2,
                                                                                                    "client_ip", 4))

    def test_header_and_route_keys_and_dry_run(self):
        with self.spillway("""  - { name: limit, rate: 1/m, burst: 1, key: "header:X-Tenant" }
  - { name: per-route, rate: 1/m, burst: 1, key: route }
  - { name: watch, rate: 1/m, burst: 1, dry_run: true }
""") as sw:
            def get(path, tenant=None):
                return sw.request("GET", path, headers={"X-Tenant": tenant} if tenant else {})[0]
            self.assertEqual(get("/limited", "a"), 200)
            self.assertEqual(get("/limited", "a"), 429)
            self.assertEqual(get("/limited", "b"), 200)  # another tenant, another budget
            self.assertEqual(get("/limited"), 200)  # no header: one shared budget for all without it
            self.assertEqual(get("/limited"), 429)
            self.assertEqual(sw.metric('spillway_rate_limit_keys{policy="limit"}'), 3)

        with self.spillway("""  - { name: limit, rate: 1/m, burst: 1, key: route }
""", route_extra="}\n      - { match: { path_prefix: /second }, upstream: app, rate_limit: limit") as sw:
            self.assertEqual(sw.request("GET", "/limited")[0], 200)
            self.assertEqual(sw.request("GET", "/limited")[0], 429)
            self.assertEqual(sw.request("GET", "/second")[0], 200)  # the same policy, another route's budget

        with self.spillway("  - { name: limit, rate: 1/m, burst: 1, dry_run: true }\n") as sw:
            for _ in range(5):
                self.assertEqual(sw.request("GET", "/limited")[0], 200)
            self.assertEqual(self.decisions(sw, "admitted"), 1)
            self.assertEqual(self.decisions(sw, "dry_run_limited"), 4)
            self.assertEqual(self.decisions(sw, "limited"), 0)

    def test_max_keys_bounds_the_table_and_counts_evictions(self):
        with self.spillway('  - { name: limit, rate: 1/m, burst: 1, key: "header:X-Tenant", max_keys: 16 }\n') as sw:
            for i in range(100):
                self.assertEqual(sw.request("GET", "/limited", headers={"X-Tenant": "t%d" % i})[0], 200)
            self.assertLessEqual(sw.metric('spillway_rate_limit_keys{policy="limit"}'), 16)
            self.assertGreater(sw.metric('spillway_rate_limit_evictions_total{policy="limit"}'), 0)

    def test_a_reload_keeps_budgets_of_unchanged_policies(self):
        with self.spillway("  - { name: limit, rate: 1/m, burst: 1 }\n") as sw:
            self.assertEqual(sw.request("GET", "/limited")[0], 200)
            self.assertEqual(sw.request("GET", "/limited")[0], 429)
            with open(sw.config_path) as f:
                text = f.read()
            sw.write_config(text.replace("path_prefix: /limited", "path_prefix: /limited/"))
            self.assertEqual(sw.admin("POST", "/reload")[0], 200)
            self.assertEqual(sw.request("GET", "/limited/x")[0], 429)  # the budget was kept
            sw.write_config(text.replace("burst: 1", "burst: 2"))
            self.assertEqual(sw.admin("POST", "/reload")[0], 200)
            self.assertEqual(sw.request("GET", "/limited")[0], 200)  # a changed policy starts full
            self.assertEqual(sw.request("GET", "/limited")[0], 200)
            self.assertEqual(sw.request("GET", "/limited")[0], 429)


class Redis:
    """Debian's redis-server on a free loopback port, in memory only; stopped by PID."""

    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def cli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True,
                              timeout=10).stdout

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@unittest.skipUnless(shutil.which("redis-server") and shutil.which("redis-cli"), "needs redis-server (Debian)")
class SharedRateLimitTest(unittest.TestCase):
    def setUp(self):
        self.redis = Redis()
        self.backend = Testd(name="b")

    def tearDown(self):
        self.redis.kill()
        self.backend.stop()

    def spillway(self, rate="300/s", burst=15, on_unavailable="local", timeout="100ms"):
        return Spillway("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - listen: 127.0.0.1:{port}
    routes:
      - { match: { path_prefix: /limited }, upstream: app, rate_limit: fleet }
      - { upstream: app }
upstreams: [ { name: app, backends: [ { address: %s } ] } ]
rate_limits:
  - { name: fleet, key: global, rate: %s, burst: %d, shared: "redis://127.0.0.1:%d", on_unavailable: %s,
      shared_timeout: %s }
""" % (self.backend.address, rate, burst, self.redis.port, on_unavailable, timeout))

    @staticmethod
    def count(sw, result):
        return sw.metric('spillway_rate_limit_decisions_total{policy="fleet",result="%s"}' % result, 0)

    @staticmethod
    def redis_calls(sw, result):
        return sw.metric('spillway_rate_limit_redis_calls_total{policy="fleet",result="%s"}' % result, 0)

    def test_two_instances_together_admit_the_rate_not_twice_it(self):
        with self.spillway() as a, self.spillway() as b:
            runs = [subprocess.Popen(["wrk", "-t1", "-c8", "-d5s", "-s", REPORT, "http://127.0.0.1:%d/limited" % sw.port],
                                     stdout=subprocess.PIPE, text=True) for sw in (a, b)]
            outs = [r.communicate(timeout=60)[0] for r in runs]
            seconds = max(int(l.split("duration_us=")[1].split()[0]) for o in outs for l in o.splitlines()
                          if l.startswith("BENCH ")) / 1e6
            a.wait_metric('spillway_rate_limit_decisions_total{policy="fleet",result="admitted"}', 1)
            admitted = self.count(a, "admitted") + self.count(b, "admitted")
            rate = (admitted - 15) / seconds
            print("\nSHARED RATE LIMIT: 300/s asked of two instances, %.1f/s admitted together (%d + %d over %.2f s)"
                  % (rate, self.count(a, "admitted"), self.count(b, "admitted"), seconds))
            # (A generous shared_timeout: on a loaded machine a call may take more than the default 5 ms,
            # and each instance would then decide alone.)
            for sw in (a, b):
                self.assertEqual(self.redis_calls(sw, "timeout"), 0, sw.logs())
            self.assertAlmostEqual(rate, 300, delta=300 * 0.05)
            for sw in (a, b):
                self.assertGreater(self.count(sw, "admitted"), 0)
                self.assertGreater(self.count(sw, "limited"), 0)
                self.assertEqual(self.redis_calls(sw, "unavailable") + self.redis_calls(sw, "error"), 0, sw.logs())
            # Redis forgets the script (a restart, SCRIPT FLUSH): it is sent once in full, then by SHA.
            self.assertEqual(self.redis.cli("SCRIPT", "FLUSH").strip(), "OK")
            before = self.redis_calls(a, "ok")
            self.assertEqual(a.request("GET", "/limited")[0], 200)
            self.assertEqual(self.redis_calls(a, "ok"), before + 1)
            self.assertEqual(self.redis_calls(a, "error"), 0)

    def test_redis_killed_mid_run_falls_back_without_failing_or_holding_requests(self):
        with self.spillway() as sw:
            wrk = subprocess.Popen(["wrk", "-t1", "-c8", "-d4s", "-s", REPORT, "http://127.0.0.1:%d/limited" % sw.port],
                                   stdout=subprocess.PIPE, text=True)
            time.sleep(1.5)
            self.redis.kill()
            # Requests to the other route are untouched meanwhile.
            for _ in range(20):
                self.assertEqual(sw.request("GET", "/other")[0], 200)
            out = wrk.communicate(timeout=60)[0]
            fields = {k: int(v) for k, v in (kv.split("=") for kv in
                                             [l for l in out.splitlines() if l.startswith("BENCH ")][0].split()[1:])}
            for k in ("connect", "read", "write", "timeout"):
                self.assertEqual(fields[k], 0, (k, out))
            self.assertGreater(self.redis_calls(sw, "ok"), 0)
            self.assertGreater(self.redis_calls(sw, "unavailable"), 0)
            # on_unavailable: local: this instance went on limiting alone, at the same rate.
            admitted = self.count(sw, "admitted")
            self.assertAlmostEqual(admitted, 300 * fields["duration_us"] / 1e6 + 15, delta=300 * 4 * 0.1)
            self.assertIn("lost Redis", sw.logs())
            self.assertEqual(sw.status()["rate_limits"][0]["on_unavailable"], "local")

    def test_on_unavailable_allow_and_deny(self):
        self.redis.kill()
        with self.spillway(rate="1/m", burst=1, on_unavailable="allow") as sw:
            for _ in range(3):
                self.assertEqual(sw.request("GET", "/limited")[0], 200)
            self.assertEqual(self.redis_calls(sw, "unavailable"), 3)
        with self.spillway(rate="1/m", burst=1, on_unavailable="deny") as sw:
            code, headers, _ = sw.request("GET", "/limited")
            self.assertEqual(code, 429)
            self.assertEqual(headers["retry-after"], "1")
            self.assertEqual(sw.request("GET", "/other")[0], 200)


class ConnectionRateTest(unittest.TestCase):
    def test_a_tcp_listener_closes_connections_over_the_rate(self):
        with Testd(name="b") as backend, Spillway("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - { name: relay, listen: 127.0.0.1:{port}, protocol: tcp, upstream: app, rate_limit: conns }
upstreams: [ { name: app, backends: [ { address: %s } ] } ]
rate_limits: [ { name: conns, rate: 1/m, burst: 3 } ]
""" % backend.address) as sw:
            def get():
                with socket.create_connection(("127.0.0.1", sw.port), timeout=5) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        b = s.recv(65536)
                        if not b:
                            return data
                        data += b
            # The harness's own connect (waiting for the port) took one of the three.
            sw.wait_metric('spillway_listener_connections_total{listener="relay"}', 1)
            self.assertEqual(sw.metric('spillway_rate_limit_decisions_total{policy="conns",result="admitted"}'), 1)
            self.assertTrue(get().startswith(b"HTTP/1.1 200"))
            self.assertTrue(get().startswith(b"HTTP/1.1 200"))
            self.assertEqual(get(), b"")  # the third connection is closed at once
            self.assertEqual(sw.metric('spillway_rate_limit_decisions_total{policy="conns",result="limited"}'), 1)
            self.assertEqual(backend.stats()["requests"], 2)


if __name__ == "__main__":
    unittest.main()

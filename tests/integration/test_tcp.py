"""L4: protocol: tcp listeners through the real binary."""

import hashlib
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
import unittest

from harness import Spillway, free_port, wait_until
from testd import Testd

CONFIG = """
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: l4
    listen: 127.0.0.1:{port}
    protocol: tcp
    upstream: app
upstreams:
  - name: app
    health_check: { tcp: {}, interval: 200ms, timeout: 100ms }
    timeouts: { idle: %s }
    backends:
%s
"""


class SinkThenSource(socketserver.BaseRequestHandler):
    """Reads until the client half-closes, then answers with the sha256 of what it got followed by
    as many bytes back, then closes: both directions of a half-closed connection must work."""

    def handle(self):
        h = hashlib.sha256()
        n = 0
        while True:
            b = self.request.recv(1 << 16)
            if not b:
                break
            h.update(b)
            n += len(b)
        self.request.sendall(h.hexdigest().encode() + b"\n")
        chunk = b"r" * 65536
        left = n
        while left > 0:
            self.request.sendall(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))


class TcpTest(unittest.TestCase):
    def test_http_through_l4_spreads_with_wrk(self):
        a, b = Testd(name="a"), Testd(name="b")
        lb = Spillway(CONFIG % ("60s", "      - address: %s\n      - address: %s" % (a.address, b.address)))
        try:
            status, headers, body = lb.request("GET", "/")
            self.assertEqual(status, 200)
            out = subprocess.run(["wrk", "-t2", "-c16", "-d3s", "http://127.0.0.1:%d/" % lb.port],
                                 capture_output=True, text=True, timeout=30)
            self.assertNotIn("Socket errors", out.stdout, out.stdout)
            self.assertNotIn("Non-2xx", out.stdout, out.stdout)
            self.assertGreater(a.stats()["connections_accepted"], 2)
            self.assertGreater(b.stats()["connections_accepted"], 2)
            # wrk has closed its connections; Spillway's relays end as it reads those closes.
            def idle():
                st = lb.status()["upstreams"][0]["backends"]
                return sum(x["active_requests"] for x in st) == 0
            self.assertTrue(wait_until(idle, 5), lb.status()["upstreams"][0]["backends"])
        finally:
            lb.stop()
            a.stop()
            b.stop()

    def test_consistent_hash_spreads_clients_by_address(self):
        """balance: consistent_hash on a tcp listener hashes each client's address (it used to hash
        nothing on L4, which sent every client to the same backend): clients from different
        addresses spread over the backends, and one client always lands on the same one."""
        backends = [Testd(name=n) for n in "abc"]
        config = CONFIG.replace("    health_check:", "    balance: consistent_hash\n    health_check:")
        lb = Spillway(config % ("60s", "\n".join("      - address: %s" % t.address for t in backends)))
        try:
            def backend_for(source_ip):
                with socket.create_connection(("127.0.0.1", lb.port), timeout=5,
                                              source_address=(source_ip, 0)) as s:
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                head = data.split(b"\r\n\r\n", 1)[0].decode().lower()
                self.assertTrue(head.startswith("http/1.1 200"), head)
                return [l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.startswith("x-backend:")][0]

            chosen = {}
            for i in range(1, 25):
                ip = "127.0.0.%d" % i
                chosen[ip] = backend_for(ip)
            self.assertGreater(len(set(chosen.values())), 1, chosen)
            for ip in list(chosen)[:6]:
                for _ in range(3):
                    self.assertEqual(backend_for(ip), chosen[ip], ip)
        finally:
            lb.stop()
            for t in backends:
                t.stop()

    def test_large_transfer_with_half_close(self):
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SinkThenSource)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        # one dead backend first: a refused connect moves on before any byte is relayed
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = "127.0.0.1:%d" % s.getsockname()[1]
        lb = Spillway(CONFIG.replace("health_check: { tcp: {}, interval: 200ms, timeout: 100ms }",
                                     "health_check: false") %
                      ("60s", "      - address: %s\n      - address: 127.0.0.1:%d" % (dead, server.server_address[1])))
        try:
            size = 20 * 1024 * 1024
            payload = bytes(range(256)) * (size // 256)
            for _ in range(3):
                with socket.create_connection(("127.0.0.1", lb.port), timeout=20) as c:
                    c.sendall(payload)
                    c.shutdown(socket.SHUT_WR)  # half-close: the answer must still come back
                    got = bytearray()
                    while True:
                        b = c.recv(1 << 20)
                        if not b:
                            break
                        got += b
                digest, _, rest = bytes(got).partition(b"\n")
                self.assertEqual(digest.decode(), hashlib.sha256(payload).hexdigest())
                self.assertEqual(len(rest), size)
        finally:
            lb.stop()
            server.shutdown()
            server.server_close()

    def test_drain_lets_open_connections_finish(self):
        a = Testd(name="a")
        lb = Spillway(CONFIG % ("60s", "      - address: " + a.address))
        try:
            with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as c:
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertIn(b"200", c.recv(4096))
                lb.signal(signal.SIGTERM)
                time.sleep(0.3)
                self.assertIsNone(lb.proc.poll())  # waits for the open connection
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the relay still runs
                self.assertIn(b"200", c.recv(4096))
            self.assertEqual(lb.proc.wait(5), 0)  # the client closed: drained
        finally:
            lb.stop()
            a.stop()

    def test_idle_timeout_closes(self):
        a = Testd(name="a")
        lb = Spillway(CONFIG % ("1s", "      - address: " + a.address))
        try:
            with socket.create_connection(("127.0.0.1", lb.port), timeout=5) as c:
                c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertIn(b"200", c.recv(4096))
                start = time.monotonic()
                self.assertEqual(c.recv(4096), b"")
                self.assertGreater(time.monotonic() - start, 0.8)
                self.assertLess(time.monotonic() - start, 3)
        finally:
            lb.stop()
            a.stop()

    def test_access_log_has_a_line_per_connection(self):
        """Each L4 connection gets one access log line when it ends: bytes both ways, the backend,
        the connect time and tries; a connection nothing could take says why (UF)."""
        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SinkThenSource)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        backend = "127.0.0.1:%d" % server.server_address[1]
        dead = "127.0.0.1:%d" % free_port()
        log_path = os.path.join(tempfile.mkdtemp(prefix="spillway-tcplog-"), "access.log")
        gone_port = free_port()
        lb = Spillway("""
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
access_log: { path: %s }
listeners:
  - { name: l4, listen: 127.0.0.1:{port}, protocol: tcp, upstream: app }
  - { name: gone, listen: 127.0.0.1:%d, protocol: tcp, upstream: dead }
upstreams:
  - name: app
    health_check: false
    backends: [ { address: %s } ]
  - name: dead
    health_check: false
    retries: { attempts: 0 }
    backends: [ { address: %s } ]
""" % (log_path, gone_port, backend, dead))
        try:
            sent = 100000
            with socket.create_connection(("127.0.0.1", lb.port), timeout=10) as c:
                c.sendall(b"x" * sent)
                c.shutdown(socket.SHUT_WR)
                got = 0
                while True:
                    b = c.recv(1 << 16)
                    if not b:
                        break
                    got += len(b)
            with socket.create_connection(("127.0.0.1", gone_port), timeout=10) as c:
                self.assertEqual(c.recv(10), b"")  # nothing could take it: closed

            lines = []

            def both():  # (the harness's readiness probe has a line of its own, with no bytes)
                nonlocal lines
                if os.path.exists(log_path):
                    with open(log_path) as f:
                        lines = [json.loads(l) for l in f if l.strip()]
                return {l["listener"] for l in lines if l["bytes_in"] > 0 or l["listener"] == "gone"} == {"l4", "gone"}
            self.assertTrue(wait_until(both, 5), lines)
            ok = next(l for l in lines if l["listener"] == "l4" and l["bytes_in"] > 0)
            failed = next(l for l in lines if l["listener"] == "gone")
            self.assertEqual(ok["upstream"], "app")
            self.assertEqual(ok["backend"], backend)
            self.assertEqual(ok["bytes_in"], sent)
            self.assertEqual(ok["bytes_out"], got)
            self.assertEqual(got, 65 + sent)  # sha256 hex + newline, then the bytes back
            self.assertEqual(ok["status"], 0)
            self.assertEqual(ok["tries"], 1)
            self.assertIsNotNone(ok["connect_ms"])
            self.assertEqual(ok["client"], "127.0.0.1")
            self.assertEqual(ok["flags"], "-")
            self.assertEqual((failed["upstream"], failed["backend"], failed["flags"], failed["reason"]),
                             ("dead", dead, "UF", "upstream_connect_failure"))
            self.assertEqual(failed["bytes_in"] + failed["bytes_out"], 0)
            self.assertIsNone(failed["connect_ms"])
        finally:
            lb.stop()
            server.shutdown()
            server.server_close()


class Redis:
    """A real redis-server on a free loopback port, in a temp dir, stopped by PID."""

    def __init__(self):
        import tempfile
        from harness import free_port, wait_for_port
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="spillway-redis-")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--dir", self.dir, "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def cli(self, *args, port=None, stdin=None):
        return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port or self.port), *args],
                              input=stdin, capture_output=True, timeout=30)

    def connected_clients(self):
        out = self.cli("INFO", "clients").stdout.decode()
        for line in out.splitlines():
            if line.startswith("connected_clients:"):
                return int(line.split(":")[1])
        return -1

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@unittest.skipUnless(shutil.which("redis-server") and shutil.which("redis-benchmark"), "redis-server not installed")
class RedisThroughL4Test(unittest.TestCase):
    """A real protocol behind a tcp listener: two redis-server backends, driven by redis' own
    clients (redis-benchmark, redis-cli) through Spillway."""

    def setUp(self):
        self.r1, self.r2 = Redis(), Redis()
        self.lb = Spillway(CONFIG % ("60s", "      - address: 127.0.0.1:%d\n      - address: 127.0.0.1:%d" %
                                     (self.r1.port, self.r2.port)))

    def tearDown(self):
        self.lb.stop()
        self.r1.stop()
        self.r2.stop()

    def test_redis_benchmark_through_the_proxy(self):
        out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.lb.port), "-n", "20000", "-c",
                              "20", "-t", "set,get,incr,lpush", "--csv"], capture_output=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        rows = [l.split('","') for l in out.stdout.decode().splitlines() if l.startswith('"') and "rps" not in l]
        tests = {r[0].strip('"'): float(r[1].strip('"')) for r in rows}
        for name in ("SET", "GET", "INCR"):
            self.assertIn(name, " ".join(tests), out.stdout)
        self.assertEqual(len(tests), 4, out.stdout)
        self.assertTrue(all(rps > 0 for rps in tests.values()), tests)
        # Both backends served benchmark clients: their keyspaces both hold the benchmark's key.
        self.assertEqual(self.r1.cli("EXISTS", "key:__rand_int__").stdout.strip(), b"1")
        self.assertEqual(self.r2.cli("EXISTS", "key:__rand_int__").stdout.strip(), b"1")

    def test_values_round_trip_and_connections_spread(self):
        # SET then GET on one connection (one redis-cli session) through the proxy.
        out = self.r1.cli(port=self.lb.port, stdin=b"SET greeting hello\nGET greeting\n")
        self.assertEqual(out.stdout.split(), [b"OK", b"hello"])
        # A 5 MB value round-trips intact (redis-cli -x reads the value from stdin).
        value = hashlib.sha256(b"seed").hexdigest().encode() * (5 * 1024 * 1024 // 64)
        out = self.r1.cli("-x", "SET", "big", port=self.lb.port, stdin=value)
        self.assertEqual(out.stdout.strip(), b"OK")
        holder = self.r1 if self.r1.cli("EXISTS", "big").stdout.strip() == b"1" else self.r2
        self.assertEqual(holder.cli("STRLEN", "big").stdout.strip(), str(len(value)).encode())
        # Several clients held open spread over both backends (least connections).
        held = [socket.create_connection(("127.0.0.1", self.lb.port)) for _ in range(6)]
        try:
            for s in held:
                s.sendall(b"PING\r\n")
                self.assertEqual(s.recv(64), b"+PONG\r\n")
            # Minus INFO's own connection; a health check's connect may be counted for an instant.
            c1, c2 = self.r1.connected_clients() - 1, self.r2.connected_clients() - 1
            self.assertGreaterEqual(c1 + c2, 6)
            self.assertGreaterEqual(min(c1, c2), 2, (c1, c2))
        finally:
            for s in held:
                s.close()


if __name__ == "__main__":
    unittest.main()

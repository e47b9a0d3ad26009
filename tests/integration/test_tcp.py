"""L4: protocol: tcp listeners through the real binary."""

import hashlib
import signal
import socket
import socketserver
import subprocess
import threading
import time
import unittest

from harness import Spillway
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
            st = lb.status()["upstreams"][0]["backends"]
            self.assertEqual(sum(x["active_requests"] for x in st), 0)
        finally:
            lb.stop()
            a.stop()
            b.stop()

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


if __name__ == "__main__":
    unittest.main()

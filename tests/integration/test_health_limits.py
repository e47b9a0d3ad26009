"""An http health check reads at most 64 KiB of a backend's answer: a backend (or whatever took its
port) that sends an endless header fails the check at once, with the reason in health_detail and the
log, instead of feeding the check's parser until the timeout."""

import socket
import threading
import unittest

from harness import Spillway, wait_until


class EndlessHeaderBackend:
    """Answers every connection with a status line and then one header that never ends (bounded:
    it stops after 8 MiB or when the peer goes)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.stopped = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn):
        with conn:
            try:
                conn.settimeout(5)
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Endless: ")
                for _ in range(128):
                    conn.sendall(b"a" * 65536)
                    self.sent += 65536
            except OSError:
                pass

    def stop(self):
        self.stopped = True
        self.sock.close()


class HealthCheckSizeLimitTest(unittest.TestCase):
    def test_endless_header_fails_the_check(self):
        backend = EndlessHeaderBackend()
        try:
            with Spillway("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    backends: [ { address: 127.0.0.1:%d } ]
    health_check: { http: { path: /healthz }, interval: 300ms, timeout: 300ms, unhealthy_threshold: 1 }
""" % backend.port) as sw:
                address = "127.0.0.1:%d" % backend.port
                self.assertTrue(wait_until(
                    lambda: sw.metric('spillway_health_check_failures_total{upstream="app",backend="%s"}' % address,
                                      0) >= 2, 10))
                b = sw.backend_status("app", address)
                self.assertFalse(b["healthy"])
                self.assertEqual(b["health_detail"], "response head over 64 KiB")
                self.assertIn("response head over 64 KiB", sw.logs())
        finally:
            backend.stop()


if __name__ == "__main__":
    unittest.main()

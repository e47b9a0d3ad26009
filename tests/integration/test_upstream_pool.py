"""Pooled upstream connections through the real binary: one that turns readable while idle is never reused.

A backend may close a keep-alive connection while it idles in Spillway's pool, or send bytes nobody
asked for (a body behind a 204, a stray response). Either way the connection must not carry the
next request: a closed one would fail it (a POST cannot be retried), and stray bytes would be read
as the next client's response. The backend here is a raw socket server that does each on purpose.
"""

import socket
import threading
import time
import unittest

from harness import Spillway


class MisbehavingBackend:
    """Answers each request with `conn <n> req <m>`; then, per `after`, does nothing, sends a stray
    response on the same connection, or closes it, 100 ms after answering."""

    def __init__(self, after):
        self.after = after
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.connections = 0
        self.stop_event = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop_event.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True).start()

    def _serve(self, conn, number):
        buf = b""
        served = 0
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        chunk = conn.recv(65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                served += 1
                body = b"conn %d req %d" % (number, served)
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
                if self.after == "stray":
                    time.sleep(0.1)
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nEVIL!")
                elif self.after == "close":
                    time.sleep(0.1)
                    return
                elif self.after == "close_now":
                    return  # the FIN right behind the response: read with it, no later event

    def stop(self):
        self.stop_event.set()
        self.sock.close()


CONFIG = """
workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    retries: { attempts: 0 }
    backends: [ { address: %s } ]
"""


class UpstreamPoolTest(unittest.TestCase):
    def run_two_requests(self, after, method="GET", second_body=b"y"):
        backend = MisbehavingBackend(after)
        lb = Spillway(CONFIG % backend.address)
        try:
            first = lb.request(method, "/", body=b"x" if method == "POST" else None)
            self.assertEqual(first[0], 200, first)
            time.sleep(0.5)  # the backend misbehaves 100 ms after answering; the pool must notice
            second = lb.request(method, "/", body=second_body if method == "POST" else None)
            return first, second, backend.connections
        finally:
            lb.stop()
            backend.stop()

    def test_a_well_behaved_connection_is_reused(self):
        first, second, connections = self.run_two_requests("nothing")
        self.assertEqual(first[2], b"conn 1 req 1")
        self.assertEqual(second[2], b"conn 1 req 2")
        self.assertEqual(connections, 1)

    def test_stray_bytes_while_idle_are_never_read_as_the_next_response(self):
        first, second, connections = self.run_two_requests("stray")
        self.assertEqual(second[0], 200, second)
        self.assertNotIn(b"EVIL", second[2])
        self.assertEqual(second[2], b"conn 2 req 1")  # a new connection, the stray one dropped
        self.assertEqual(connections, 2)

    def test_a_connection_the_backend_closed_while_idle_does_not_fail_a_post(self):
        first, second, connections = self.run_two_requests("close", method="POST")
        self.assertEqual(second[0], 200, second)  # retries are off: only a fresh connection saves it
        self.assertEqual(second[2], b"conn 2 req 1")
        self.assertEqual(connections, 2)


    def test_a_close_right_behind_the_response_does_not_fail_a_big_post(self):
        # The FIN comes in with the response's last bytes, so no event follows it while the
        # connection idles; a body too big to keep for a second try (64 KiB) must not be sent into
        # that connection: it is checked before reuse.
        first, second, connections = self.run_two_requests("close_now", method="POST",
                                                           second_body=b"z" * (256 * 1024))
        self.assertEqual(second[0], 200, second)
        self.assertEqual(second[2], b"conn 2 req 1")
        self.assertEqual(connections, 2)

    def test_a_close_right_behind_the_response_does_not_fail_a_get(self):
        first, second, connections = self.run_two_requests("close_now")
        self.assertEqual(second[0], 200, second)
        self.assertEqual(second[2], b"conn 2 req 1")


if __name__ == "__main__":
    unittest.main()

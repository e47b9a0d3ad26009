"""Big response bodies spliced socket to socket on an http listener, through the real binary.

A response body of known length (Content-Length) of 64 KiB or more goes from the backend's socket
to the client's through a pipe with splice(2) when both are plain TCP and the listener has
`splice: true` (the default). The bytes never pass through the parser, so these tests check what
could go wrong: every byte arrives, in order, at the sizes around the threshold; the parser is told
where the body ended, so the client connection and the pooled upstream connection carry on; a
backend that dies mid-body costs a closed client connection, never a hang or a wrong next answer;
and `splice: false` copies the same bytes.
"""

import json
import socket
import threading
import unittest

from harness import Spillway, parse_response
from testd import Testd

CONFIG = """workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: main
    listen: 127.0.0.1:{port}
%s    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    backends:
      - address: %s
"""

SIZES = [1000, 65535, 65536, 65537, 200000, 1048576 + 7]


def read_response(sock, timeout=10.0):
    """Reads one Content-Length response from `sock`: (status, headers, body). Raises on EOF early."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed before the head: %r" % data[:200])
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise EOFError("closed after %d of %d body bytes" % (len(rest), length))
        rest += chunk
    return status, headers, rest[:length], rest[length:]


class SpliceBodiesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = Testd(name="s")
        cls.expected = {}
        for size in SIZES:
            with socket.create_connection(("127.0.0.1", cls.backend.port)) as s:
                s.sendall(b"GET /download?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
                status, _, body, _ = read_response(s)
                assert status == 200 and len(body) == size
                cls.expected[size] = body

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()

    def check_sizes_on_one_connection(self, lb):
        with socket.create_connection(("127.0.0.1", lb.port)) as s:
            for size in SIZES + list(reversed(SIZES)):
                s.sendall(b"GET /download?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % size)
                status, _, body, extra = read_response(s)
                self.assertEqual(status, 200)
                self.assertEqual(extra, b"")
                self.assertEqual(len(body), size)
                self.assertTrue(body == self.expected[size], "body of %d bytes differs" % size)

    def backend_connections_accepted(self):
        # The query is a connection of its own, counted before it is answered.
        with socket.create_connection(("127.0.0.1", self.backend.port)) as s:
            s.sendall(b"GET /_testd/stats HTTP/1.1\r\nHost: t\r\n\r\n")
            _, _, body, _ = read_response(s)
        return json.loads(body)["connections_accepted"]

    def test_bodies_arrive_whole_and_the_connections_carry_on(self):
        with Spillway(CONFIG % ("", self.backend.address)) as lb:
            before = self.backend_connections_accepted()
            self.check_sizes_on_one_connection(lb)
            # One client connection, one backend: all the requests went on one upstream connection,
            # pooled between them, which each splice left exactly at the end of its response.
            self.assertEqual(self.backend_connections_accepted() - before, 2)

    def upload(self, port, sock, size):
        body = bytes((i * 7 + size) % 251 for i in range(size))
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        sock.sendall(body)
        status, _, answer, extra = read_response(sock)
        self.assertEqual(status, 200)
        self.assertEqual(extra, b"")
        return json.loads(answer)

    def test_uploads_arrive_whole(self):
        # What the backend saw (length and FNV-1a of the body) through Spillway, spliced or not, is
        # what it sees straight from the client.
        with Spillway(CONFIG % ("", self.backend.address)) as lb:
            with socket.create_connection(("127.0.0.1", self.backend.port)) as direct, \
                    socket.create_connection(("127.0.0.1", lb.port)) as proxied:
                for size in SIZES + list(reversed(SIZES)):
                    want = self.upload(self.backend.port, direct, size)
                    got = self.upload(lb.port, proxied, size)
                    self.assertEqual(got["body_bytes"], size)
                    self.assertEqual(got["body_fnv1a"], want["body_fnv1a"], size)

    def test_client_stopping_mid_upload_costs_only_its_request(self):
        with Spillway(CONFIG % ("", self.backend.address)) as lb:
            with socket.create_connection(("127.0.0.1", lb.port)) as s:
                s.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n" + b"u" * 300000)
            # The backend connection that carried the cut body is not reused: the next uploads and
            # downloads are answered whole.
            self.check_sizes_on_one_connection(lb)
            with socket.create_connection(("127.0.0.1", lb.port)) as s:
                self.assertEqual(self.upload(lb.port, s, 200000)["body_bytes"], 200000)

    def test_splice_false_copies_the_same_bytes(self):
        with Spillway(CONFIG % ("    splice: false\n", self.backend.address)) as lb:
            self.check_sizes_on_one_connection(lb)

    def test_backend_dying_mid_body_closes_the_client_connection(self):
        # A raw backend: a 1 MiB Content-Length, 300 KB of it, then a close.
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(8)

        def serve():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n" + b"x" * 300000)

        threading.Thread(target=serve, daemon=True).start()
        try:
            with Spillway(CONFIG % ("", "127.0.0.1:%d" % server.getsockname()[1])) as lb:
                with socket.create_connection(("127.0.0.1", lb.port)) as s:
                    s.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
                    with self.assertRaises(EOFError) as caught:
                        read_response(s, timeout=10)
                    self.assertIn("closed after", str(caught.exception))
                    self.assertIn("of 1048576", str(caught.exception))
                # Spillway is fine and answers the next client.
                status, _, _ = parse_response(lb.raw(b"GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
                self.assertEqual(status, 200)
        finally:
            server.close()


if __name__ == "__main__":
    unittest.main()

"""gRPC through the real binary: Python grpcio clients and servers (Debian's python3-grpcio), with
Spillway between them speaking HTTP/2 on both sides (`protocol: http2` upstream).

The textbook failure of an L4 balancer is one channel's calls all pinned to one backend: here one
channel's calls spread over both backends, per call. Trailers (grpc-status, grpc-message, trailing
metadata) pass through; streaming both ways arrives whole; a dead backend costs no call; no backend
gives UNAVAILABLE quickly and a client's deadline gives DEADLINE_EXCEEDED.
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

import grpc

from harness import Spillway, free_port, parse_response, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = """workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - listen: 127.0.0.1:{port}
    routes:
      - { match: { path_prefix: /down.Svc/ }, upstream: down }
      - { upstream: grpc }
upstreams:
  - name: grpc
    protocol: http2
    health_check: { interval: 200ms, timeout: 100ms, unhealthy_threshold: 1, healthy_threshold: 1 }
    retries: { on: [connect_failure, reset, grpc_unavailable] }
    backends: [ { address: 127.0.0.1:%(a)d }, { address: 127.0.0.1:%(b)d } ]
  - name: down
    protocol: http2
    health_check: false
    backends: [ { address: 127.0.0.1:%(closed)d } ]
"""


class GrpcBackend:
    def __init__(self, name, extra_args=()):
        self.name = name
        # Port 0: the server binds a port the kernel picks and says which. (A port probed free
        # first could be taken meanwhile as another test's ephemeral port under ctest -j.)
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "grpc_backend.py"), "--port", "0",
                                      "--name", name, *extra_args], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening"):
            raise RuntimeError("grpc backend %s did not start: %r" % (name, line))
        self.port = int(line.split()[1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc.stdout.close()


def unary(channel, method="Unary"):
    return channel.unary_unary("/test.Echo/" + method)


class GrpcTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = GrpcBackend("a")
        cls.addClassCleanup(cls.a.kill)
        cls.b = GrpcBackend("b")
        cls.addClassCleanup(cls.b.kill)
        cls.lb = Spillway(CONFIG % dict(a=cls.a.port, b=cls.b.port, closed=free_port()))
        cls.addClassCleanup(cls.lb.stop)

    def channel(self):
        ch = grpc.insecure_channel("127.0.0.1:%d" % self.lb.port)
        self.addCleanup(ch.close)
        return ch

    def test_one_channel_spreads_calls_over_backends(self):
        """One channel (one HTTP/2 connection) making 200 calls, 8 at a time: each backend answers a
        fair share, because every call is balanced on its own."""
        ch = self.channel()
        call = unary(ch, "Slow")
        counts = {b"a": 0, b"b": 0}
        lock = threading.Lock()

        def worker():
            for _ in range(25):
                who = call(b"0.005", timeout=10)
                with lock:
                    counts[who] += 1

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sum(counts.values()), 200)
        self.assertGreater(min(counts.values()), 50, counts)

    def test_unary_echo_and_big_messages(self):
        ch = self.channel()
        self.assertIn(unary(ch)(b"hello", timeout=10), (b"a:hello", b"b:hello"))
        big = os.urandom(3 * 1024 * 1024)
        self.assertEqual(unary(ch)(big, timeout=30)[2:], big)

    def test_server_streaming_10000_messages(self):
        ch = self.channel()
        got = list(ch.unary_stream("/test.Echo/Stream")(b"10000", timeout=60))
        self.assertEqual(len(got), 10000)
        name = got[0].split(b":")[0]
        self.assertEqual(got, [name + b":%d" % i for i in range(10000)])

    def test_client_streaming(self):
        ch = self.channel()
        msgs = [os.urandom(1000) for _ in range(2000)]
        out = ch.stream_unary("/test.Echo/Collect")(iter(msgs), timeout=60)
        self.assertEqual(out.split(b":")[1:], [b"2000", b"2000000"])

    def test_status_and_trailers_pass_through(self):
        """A backend's error status, message and trailing metadata reach the client unchanged."""
        ch = self.channel()
        with self.assertRaises(grpc.RpcError) as e:
            unary(ch, "Fail")(b"9", timeout=10)  # FAILED_PRECONDITION
        self.assertEqual(e.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(e.exception.details(), "failed on purpose")
        self.assertIn(("x-why", "because"), tuple(e.exception.trailing_metadata()))

    def test_no_backend_is_unavailable_quickly(self):
        ch = self.channel()
        start = time.monotonic()
        with self.assertRaises(grpc.RpcError) as e:
            ch.unary_unary("/down.Svc/M")(b"x", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertLess(time.monotonic() - start, 3)

    def test_deadline_exceeded(self):
        """The client's deadline travels as grpc-timeout: Spillway ends the call at it."""
        ch = self.channel()
        start = time.monotonic()
        with self.assertRaises(grpc.RpcError) as e:
            unary(ch, "Slow")(b"3", timeout=0.5)
        self.assertEqual(e.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertLess(time.monotonic() - start, 2.5)
        self.assertIn(unary(ch)(b"after", timeout=10)[2:], (b"after",))


    def test_trailers_only_unavailable_is_retried(self):
        """A backend answering UNAVAILABLE with a trailers-only answer is retried on the other backend
        (retries.on lists grpc_unavailable): the call ends UNAVAILABLE only once every try did, and
        the retries are counted."""
        before = self.lb.metric('spillway_retries_total{upstream="grpc",result="failure"}', 0)
        ch = self.channel()
        with self.assertRaises(grpc.RpcError) as e:
            unary(ch, "Fail")(b"14", timeout=10)
        self.assertEqual(e.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(e.exception.details(), "failed on purpose")
        self.assertGreater(self.lb.metric('spillway_retries_total{upstream="grpc",result="failure"}', 0), before)


def grpc_frame(message):
    return b"\0" + struct.pack(">I", len(message)) + message


def dechunk(body):
    """The data and the trailer lines of a chunked body."""
    data = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return data, [l for l in body.split(b"\r\n") if l]
        data += body[:size]
        body = body[size + 2:]


class Http1ClientTest(unittest.TestCase):
    """HTTP/1 clients reach `protocol: http2` backends too: the request goes as an HTTP/2 stream
    (a chunked body without its framing), the answer comes back chunked with the backend's trailers
    for a client that sent `TE: trailers`, or with a length when it was whole at once."""

    @classmethod
    def setUpClass(cls):
        cls.a = GrpcBackend("a")
        cls.addClassCleanup(cls.a.kill)
        cls.lb = Spillway("""workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - listen: 127.0.0.1:{port}
    routes: [ { upstream: grpc } ]
upstreams:
  - name: grpc
    protocol: http2
    timeouts: { request: 1s }
    backends: [ { address: 127.0.0.1:%d } ]
""" % cls.a.port)
        cls.addClassCleanup(cls.lb.stop)

    def post(self, method, body, te=True, chunk=1000):
        head = (b"POST /test.Echo/%s HTTP/1.1\r\nHost: grpc.test\r\ncontent-type: application/grpc\r\n"
                b"%sConnection: close\r\n" % (method.encode(), b"TE: trailers\r\n" if te else b""))
        if chunk is None:
            return self.lb.raw(head + b"Content-Length: %d\r\n\r\n" % len(body) + body, timeout=30)
        out = head + b"Transfer-Encoding: chunked\r\n\r\n"
        for i in range(0, len(body), chunk):
            out += b"%x\r\n" % len(body[i:i + chunk]) + body[i:i + chunk] + b"\r\n"
        return self.lb.raw(out + b"0\r\n\r\n", timeout=30)

    def test_unary_with_trailers(self):
        for chunk in (None, 3, 1000):
            status, headers, body = parse_response(self.post("Unary", grpc_frame(b"hello"), chunk=chunk))
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("transfer-encoding"), "chunked")
            data, trailers = dechunk(body)
            self.assertEqual(data, grpc_frame(b"a:hello"))
            self.assertEqual(trailers, [b"grpc-status: 0"])

    def test_trailers_only_answers_have_a_length(self):
        """A trailers-only answer (how gRPC servers answer errors) is whole with its head: it goes to
        an HTTP/1 client with a length, its status and metadata as header fields."""
        status, headers, body = parse_response(self.post("Fail", grpc_frame(b"9")))
        self.assertEqual((status, headers["grpc-status"], headers["x-why"], headers["content-length"], body),
                         (200, "9", "because", "0", b""))
        # TE is hop-by-hop: passed on as `trailers` only when the client sent it (gRPC servers want it)
        status, headers, body = parse_response(self.post("Unary", grpc_frame(b"x"), te=False))
        self.assertEqual((status, headers["grpc-message"]), (200, "Missing :te header"))

    def test_big_chunked_upload(self):
        """2,000 messages of 1,000 bytes in one chunked body: each reaches the backend (it counts them),
        through the backend's flow-control window."""
        msgs = b"".join(grpc_frame(os.urandom(1000)) for _ in range(2000))
        status, headers, body = parse_response(self.post("Collect", msgs, chunk=7000))
        data, trailers = dechunk(body)
        self.assertEqual(data, grpc_frame(b"a:2000:2000000"))
        self.assertEqual(trailers, [b"grpc-status: 0"])

    def test_request_deadline(self):
        """A backend slower than the request timeout: 504 to the client, the stream reset, and the
        connection to the backend serves the next call."""
        start = time.monotonic()
        status, headers, body = parse_response(self.post("Slow", grpc_frame(b"3")))
        self.assertEqual((status, headers.get("x-spillway-reason")), (504, "upstream_timeout"))
        self.assertLess(time.monotonic() - start, 2.5)
        data, trailers = dechunk(parse_response(self.post("Unary", grpc_frame(b"next")))[2])
        self.assertEqual(data, grpc_frame(b"a:next"))

    def test_keep_alive(self):
        with socket.create_connection(("127.0.0.1", self.lb.port), timeout=10) as s:
            for i in range(3):
                body = grpc_frame(b"%d" % i)
                s.sendall(b"POST /test.Echo/Unary HTTP/1.1\r\nHost: h\r\ncontent-type: application/grpc\r\n"
                          b"TE: trailers\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                got = b""
                while not got.endswith(b"0\r\n\r\n"):
                    got += s.recv(65536)
                self.assertIn(grpc_frame(b"a:%d" % i), dechunk(parse_response(got)[2])[0])


class GrpcHealthTest(unittest.TestCase):
    """grpc.health.v1 checks (`health_check: { grpc: { service } }`): a backend whose Check says
    NOT_SERVING, that does not know the service, or that answers slower than the check timeout is
    taken out, with the reason in /status; back in once it serves again."""

    def setUp(self):
        self.a = GrpcBackend("a")
        self.addCleanup(self.a.kill)
        self.b = GrpcBackend("b")
        self.addCleanup(self.b.kill)

    def balancer(self, service, extra=""):
        lb = Spillway("""workers: 1
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - listen: 127.0.0.1:{port}
    routes: [ { upstream: grpc } ]
upstreams:
  - name: grpc
    protocol: http2
    health_check: { grpc: { service: %s }, interval: 200ms, timeout: 150ms, unhealthy_threshold: 1,
                    healthy_threshold: 1 }
    backends: [ { address: 127.0.0.1:%d }, { address: 127.0.0.1:%d } ]
%s""" % (service, self.a.port, self.b.port, extra))
        self.addCleanup(lb.stop)
        return lb

    def health(self, lb, backend):
        st = lb.backend_status("grpc", "127.0.0.1:%d" % backend.port)
        return st["healthy"], st["health_detail"]

    def test_not_serving_takes_a_backend_out(self):
        lb = self.balancer("test.Echo")
        self.assertEqual(self.health(lb, self.a), (True, ""))
        self.assertEqual(self.health(lb, self.b), (True, ""))
        with grpc.insecure_channel("127.0.0.1:%d" % self.b.port) as direct:
            unary(direct, "SetHealth")(b"test.Echo=2", timeout=10)
        self.assertTrue(wait_until(lambda: self.health(lb, self.b) == (False, "NOT_SERVING"), 5),
                        self.health(lb, self.b))
        with grpc.insecure_channel("127.0.0.1:%d" % lb.port) as ch:
            got = {unary(ch)(b"x", timeout=10) for _ in range(20)}
        self.assertEqual(got, {b"a:x"})
        self.assertGreaterEqual(lb.metric('spillway_health_transitions_total{upstream="grpc",backend="127.0.0.1:%d"}' % self.b.port, 0), 1)
        with grpc.insecure_channel("127.0.0.1:%d" % self.b.port) as direct:
            unary(direct, "SetHealth")(b"test.Echo=1", timeout=10)
        self.assertTrue(wait_until(lambda: self.health(lb, self.b) == (True, ""), 5))

    def test_unknown_service_and_whole_server(self):
        lb = self.balancer("no.Such")
        healthy, detail = self.health(lb, self.a)
        self.assertFalse(healthy)
        self.assertEqual(detail, "grpc-status 5: unknown service")
        # service "" asks about the server as a whole
        lb2 = self.balancer('""')
        self.assertEqual(self.health(lb2, self.a), (True, ""))

    def test_slow_check_times_out(self):
        """A backend that takes the check's stream and does not answer in time: each check ends at
        its timeout (150 ms, every 200 ms), not when the answer finally comes (30 s)."""
        slow = GrpcBackend("slow", extra_args=["--health-delay", "30"])
        self.addCleanup(slow.kill)
        self.b.kill()
        self.b = slow
        lb = self.balancer("test.Echo")
        self.assertEqual(self.health(lb, slow), (False, "timeout after 150ms"))
        self.assertEqual(self.health(lb, self.a), (True, ""))
        name = 'spillway_health_check_failures_total{upstream="grpc",backend="127.0.0.1:%d"}' % slow.port
        first = lb.metric(name, 0)
        self.assertTrue(wait_until(lambda: lb.metric(name, 0) >= first + 3, 5), lb.metric(name, 0))


class KillTest(unittest.TestCase):
    def test_killing_a_backend_under_calls_costs_no_call(self):
        """Calls flow (4 at a time) while one of two backends is killed (SIGKILL): none fails, and
        the survivor takes the rest."""
        a = GrpcBackend("a")
        self.addCleanup(a.kill)
        b = GrpcBackend("b")
        self.addCleanup(b.kill)
        lb = Spillway(CONFIG % dict(a=a.port, b=b.port, closed=free_port()))
        self.addCleanup(lb.stop)
        ch = grpc.insecure_channel("127.0.0.1:%d" % lb.port)
        self.addCleanup(ch.close)
        call = unary(ch)
        self.assertIn(call(b"warm", timeout=10), (b"a:warm", b"b:warm"))
        failures = []
        done = []
        stop = time.monotonic() + 3

        def worker():
            while time.monotonic() < stop:
                try:
                    done.append(call(b"x", timeout=10))
                except grpc.RpcError as e:
                    failures.append((e.code(), e.details()))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1)
        a.kill()
        killed_at = len(done)
        for t in threads:
            t.join()
        self.assertEqual(failures, [])
        self.assertGreater(len(done), killed_at + 50)
        self.assertTrue(all(r == b"b:x" for r in done[killed_at + 20:]))


if __name__ == "__main__":
    unittest.main()

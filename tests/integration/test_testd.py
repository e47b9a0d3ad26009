"""Checks spillway-testd itself, so that failures elsewhere are not blamed on the test backend."""

import http.client
import json
import socket
import time
import unittest

from testd import Testd, TestdError

DOWNLOAD_PERIOD = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-\n"


def fnv1a(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def download_bytes(n):
    whole, rest = divmod(n, len(DOWNLOAD_PERIOD))
    return DOWNLOAD_PERIOD * whole + DOWNLOAD_PERIOD[:rest]


class RawResponse:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value), as received
        self.body = body

    def header(self, name):
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def read_response(stream, head=False):
    """Reads one HTTP/1.1 response from a socket's binary file, framing by content-length or chunked."""
    status_line = stream.readline()
    if not status_line:
        raise ConnectionError("connection closed before a response")
    status = int(status_line.split()[1])
    headers = []
    while True:
        line = stream.readline()
        if line in (b"\r\n", b""):
            break
        name, value = line.decode("latin-1").rstrip("\r\n").split(":", 1)
        headers.append((name, value.strip()))
    response = RawResponse(status, headers, b"")
    if head or status in (204, 304) or 100 <= status < 200:
        return response
    if (response.header("transfer-encoding") or "").lower() == "chunked":
        body = b""
        while True:
            size = int(stream.readline().strip(), 16)
            if size == 0:
                stream.readline()
                break
            body += stream.read(size)
            stream.readline()
        response.body = body
    else:
        response.body = stream.read(int(response.header("content-length")))
    return response


class RawConnection:
    def __init__(self, backend, timeout=5.0):
        self.sock = socket.create_connection((backend.host, backend.port), timeout=timeout)
        self.stream = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def response(self, head=False):
        return read_response(self.stream, head=head)

    def closed_by_peer(self, timeout=2.0):
        self.sock.settimeout(timeout)
        try:
            return self.stream.read(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.stream.close()
        self.sock.close()


class TestdTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = Testd(name="alpha")

    @classmethod
    def tearDownClass(cls):
        cls.backend.stop()

    def setUp(self):
        self.backend.set(latency="0", status=200, error_rate=0, error_status=503, healthy=1, size=-1, chunked=0)

    def raw(self):
        conn = RawConnection(self.backend)
        self.addCleanup(conn.close)
        return conn

    # ----- defaults and overrides -------------------------------------------------------------

    def test_default_answer(self):
        status, headers, body = self.backend.get("/any/path")
        headers = dict((k.lower(), v) for k, v in headers)
        self.assertEqual(status, 200)
        self.assertEqual(body, b"alpha\n")
        self.assertEqual(headers["x-backend"], "alpha")
        self.assertEqual(headers["content-type"], "text/plain")
        self.assertEqual(headers["content-length"], "6")

    def test_status_and_size_overrides(self):
        status, headers, body = self.backend.get("/?status=503&size=1000")
        self.assertEqual(status, 503)
        self.assertEqual(body, b"x" * 1000)
        self.assertIn(("x-backend", "alpha"), headers)

    def test_chunked_override(self):
        conn = self.raw()
        conn.send(b"GET /?size=40000&chunked=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        response = conn.response()
        self.assertEqual(response.header("transfer-encoding"), "chunked")
        self.assertIsNone(response.header("content-length"))
        self.assertEqual(response.body, b"x" * 40000)

    def test_latency_override(self):
        started = time.monotonic()
        status, _, _ = self.backend.get("/?latency=200ms")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.19)

    def test_close_override(self):
        conn = self.raw()
        conn.send(b"GET /?close=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        response = conn.response()
        self.assertEqual(response.status, 200)
        self.assertEqual(response.header("connection"), "close")
        self.assertTrue(conn.closed_by_peer())

    def test_reset_override(self):
        conn = self.raw()
        conn.send(b"GET /?reset=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        with self.assertRaises(ConnectionResetError):
            conn.sock.settimeout(2)
            if conn.sock.recv(1) == b"":
                self.fail("expected RST, got FIN")

    def test_hang_override(self):
        conn = self.raw()
        conn.send(b"GET /?hang=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        conn.sock.settimeout(0.5)
        with self.assertRaises(socket.timeout):
            conn.sock.recv(1)

    def test_bad_override_is_400_and_keeps_connection(self):
        conn = self.raw()
        conn.send(b"GET /?status=abc HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(conn.response().status, 400)
        self.assertEqual(conn.response().status, 200)

    def test_head(self):
        conn = self.raw()
        conn.send(b"HEAD /?size=100 HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head = conn.response(head=True)
        self.assertEqual(head.header("content-length"), "100")
        self.assertEqual(conn.response().body, b"alpha\n")

    # ----- error injection and runtime settings -----------------------------------------------

    def test_error_injection(self):
        self.backend.set(error_rate=100, error_status=502)
        status, headers, _ = self.backend.get("/")
        self.assertEqual(status, 502)
        self.assertIn(("x-testd-injected", "1"), headers)
        # An explicit status= is not overridden by injection; /healthz never is.
        self.assertEqual(self.backend.get("/?status=201")[0], 201)
        self.assertEqual(self.backend.get("/healthz")[0], 200)
        self.backend.set(error_rate=0)
        self.assertEqual(self.backend.get("/")[0], 200)

    def test_error_rate_is_roughly_respected(self):
        self.backend.set(error_rate=50)
        conn = http.client.HTTPConnection(self.backend.host, self.backend.port, timeout=5)
        errors = 0
        for _ in range(400):
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            errors += response.status == 503
        conn.close()
        self.assertTrue(120 < errors < 280, errors)

    def test_set_defaults(self):
        settings = self.backend.set(status=202, size=10, latency="50ms")
        self.assertEqual(settings["status"], 202)
        self.assertEqual(settings["size"], 10)
        self.assertEqual(settings["latency_ms"], 50)
        started = time.monotonic()
        status, _, body = self.backend.get("/")
        self.assertGreaterEqual(time.monotonic() - started, 0.045)
        self.assertEqual((status, body), (202, b"x" * 10))

    def test_set_rejects_bad_values_and_changes_nothing(self):
        with self.assertRaises(TestdError):
            self.backend.set(status=201, latency="fast")
        with self.assertRaises(TestdError):
            self.backend.set(statsu=201)
        self.assertEqual(self.backend.settings()["status"], 200)

    def test_healthz_flip(self):
        status, _, body = self.backend.get("/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))
        self.assertFalse(self.backend.set(healthy=False)["healthy"])
        self.assertEqual(self.backend.get("/healthz")[0], 503)
        self.assertEqual(self.backend.get("/")[0], 200)  # only /healthz says unhealthy
        self.backend.set(healthy=True)
        self.assertEqual(self.backend.get("/healthz")[0], 200)

    def test_stats(self):
        self.backend.reset_stats()
        for _ in range(3):
            self.backend.get("/")
        self.backend.get("/healthz")
        stats = self.backend.stats()
        self.assertEqual(stats["name"], "alpha")
        self.assertEqual(stats["requests"], 3)
        self.assertEqual(stats["healthz_requests"], 1)
        # 3 + 1 above, plus this stats call; reset_stats' own connection came before the reset.
        self.assertEqual(stats["connections_accepted"], 5)
        # Only the stats call's own connection stays open, once testd has seen the others' EOF.
        deadline = time.monotonic() + 2
        while stats["connections_active"] != 1 and time.monotonic() < deadline:
            time.sleep(0.01)
            stats = self.backend.stats()
        self.assertEqual(stats["connections_active"], 1)

    # ----- /echo, /upload, /download ----------------------------------------------------------

    def test_echo_with_chunked_upload(self):
        parts = [b"hello ", b"chunked ", b"x" * 100000, b" world"]
        conn = http.client.HTTPConnection(self.backend.host, self.backend.port, timeout=5)
        conn.putrequest("POST", "/echo?q=1", skip_accept_encoding=True)
        conn.putheader("X-Custom", "One")
        conn.putheader("x-custom", "two")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for part in parts:
            conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        echo = json.loads(response.read())
        conn.close()
        body = b"".join(parts)
        self.assertEqual(response.status, 200)
        self.assertEqual(echo["backend"], "alpha")
        self.assertEqual(echo["method"], "POST")
        self.assertEqual(echo["path"], "/echo?q=1")
        self.assertEqual(echo["version"], "1.1")
        self.assertEqual(echo["body_bytes"], len(body))
        self.assertEqual(echo["body_fnv1a"], fnv1a(body))
        names = [name for name, _ in echo["headers"]]
        self.assertEqual(names, ["Host", "X-Custom", "x-custom", "Transfer-Encoding"])
        self.assertEqual(echo["headers"][1], ["X-Custom", "One"])

    def test_upload_with_expect_continue(self):
        body = b"y" * 5000
        conn = self.raw()
        conn.send(b"PUT /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
        interim = conn.response()
        self.assertEqual(interim.status, 100)
        conn.send(body)
        final = conn.response()
        echo = json.loads(final.body)
        self.assertEqual(echo["body_bytes"], len(body))
        self.assertEqual(echo["body_fnv1a"], fnv1a(body))

    def test_echo_escapes_header_bytes(self):
        conn = self.raw()
        conn.send(b'GET /echo HTTP/1.1\r\nHost: t\r\nX-Q: a"b\\c\xe9\r\n\r\n')
        echo = json.loads(conn.response().body)
        self.assertEqual(echo["headers"][1], ["X-Q", 'a"b\\c\u00e9'])
        self.assertEqual(echo["body_fnv1a"], fnv1a(b""))

    def test_download_sizes(self):
        for size in (0, 1, 64, 65, 100000, 5 * 1024 * 1024 + 3):
            for chunked in (0, 1):
                with self.subTest(size=size, chunked=chunked):
                    conn = self.raw()
                    conn.send(b"GET /download?size=%d&chunked=%d HTTP/1.1\r\nHost: t\r\n\r\n" % (size, chunked))
                    response = conn.response()
                    self.assertEqual(response.status, 200)
                    self.assertEqual(len(response.body), size)
                    self.assertEqual(response.body, download_bytes(size))
                    self.assertEqual(response.header("transfer-encoding") == "chunked", bool(chunked))

    def test_download_suffix_and_missing_size(self):
        status, _, body = self.backend.get("/download?size=2k")
        self.assertEqual((status, len(body)), (200, 2048))
        self.assertEqual(self.backend.get("/download")[0], 400)

    # ----- connection handling ----------------------------------------------------------------

    def test_keep_alive(self):
        conn = self.raw()
        conn.send(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(conn.response().body, b"alpha\n")
        conn.send(b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n")
        self.assertEqual(conn.response().body, b"alpha\n")

    def test_pipelining_answers_in_order(self):
        conn = self.raw()
        conn.send(b"POST /echo?n=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
                  b"GET /?status=202&size=5 HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET /echo?n=3 HTTP/1.1\r\nHost: t\r\n\r\n")
        first = conn.response()
        self.assertEqual(json.loads(first.body)["path"], "/echo?n=1")
        self.assertEqual(json.loads(first.body)["body_bytes"], 3)
        second = conn.response()
        self.assertEqual((second.status, second.body), (202, b"xxxxx"))
        self.assertEqual(json.loads(conn.response().body)["path"], "/echo?n=3")

    def test_http10(self):
        conn = self.raw()
        conn.send(b"GET /echo HTTP/1.0\r\n\r\n")
        response = conn.response()
        self.assertEqual(json.loads(response.body)["version"], "1.0")
        self.assertEqual(response.header("connection"), "close")
        self.assertTrue(conn.closed_by_peer())

    def test_http10_keep_alive_and_no_chunking(self):
        conn = self.raw()
        conn.send(b"GET /?chunked=1&size=10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = conn.response()
        self.assertEqual(response.header("connection"), "keep-alive")
        self.assertEqual(response.header("content-length"), "10")
        conn.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        self.assertEqual(conn.response().body, b"alpha\n")

    def test_malformed_requests_get_400_and_close(self):
        cases = {
            "garbage": b"HELLO\r\n\r\n",
            "cl_and_te": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "duplicate_cl": b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "bare_lf": b"GET / HTTP/1.1\nHost: t\n\n",
            "obs_fold": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n",
            "bad_chunk": b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "space_before_colon": b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
        }
        for name, request in cases.items():
            with self.subTest(name):
                conn = self.raw()
                conn.send(request)
                response = conn.response()
                self.assertEqual(response.status, 400)
                self.assertEqual(response.header("x-backend"), "alpha")
                self.assertEqual(response.header("connection"), "close")
                self.assertTrue(conn.closed_by_peer())

    def test_obs_fold_split_across_reads(self):
        conn = self.raw()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-A: b\r\n")
        time.sleep(0.05)
        conn.send(b" c\r\n\r\n")
        self.assertEqual(conn.response().status, 400)

    def test_headers_split_at_every_byte(self):
        # One byte per read: header values starting right at a read boundary are not obs-fold.
        request = b"POST /echo HTTP/1.1\r\nHost: t\r\nX-A:  b c \r\nX-Empty:\r\nContent-Length: 2\r\n\r\nok"
        conn = self.raw()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(request)):
            conn.send(request[i:i + 1])
            time.sleep(0.001)
        echo = json.loads(conn.response().body)
        self.assertEqual(echo["headers"], [["Host", "t"], ["X-A", "b c"], ["X-Empty", ""], ["Content-Length", "2"]])
        self.assertEqual(echo["body_fnv1a"], fnv1a(b"ok"))

    def test_huge_headers_get_431(self):
        conn = self.raw()
        conn.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
        self.assertEqual(conn.response().status, 431)

    def test_upgrade_echo_tunnel(self):
        conn = self.raw()
        conn.send(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nearly")
        response = conn.response(head=True)
        self.assertEqual(response.status, 101)
        self.assertEqual(response.header("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        self.assertEqual(conn.stream.read(5), b"early")
        conn.send(b"ping")
        self.assertEqual(conn.stream.read(4), b"ping")


class TestdLifecycleTest(unittest.TestCase):
    def test_restart_on_same_port_keeps_serving(self):
        with Testd(name="beta") as backend:
            port = backend.port
            # Leave a connection behind so the old port has state in TIME_WAIT / FIN_WAIT.
            self.assertEqual(backend.get("/")[0], 200)
            backend.kill()
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            backend.restart()
            self.assertEqual(backend.port, port)
            self.assertEqual(backend.get("/")[2], b"beta\n")
            self.assertEqual(backend.stop(), 0)

    def test_pause_and_resume(self):
        with Testd(name="gamma") as backend:
            backend.pause()
            with self.assertRaises(socket.timeout):
                backend.get("/", timeout=0.5)
            backend.resume()
            self.assertEqual(backend.get("/")[0], 200)

    def test_stop_while_paused_and_with_open_connections(self):
        backend = Testd(name="delta")
        conn = socket.create_connection(("127.0.0.1", backend.port))
        conn.sendall(b"GET /?hang=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        backend.pause()
        self.assertEqual(backend.stop(timeout=5), 0)
        conn.close()

    def test_command_line_defaults_and_threads(self):
        with Testd(name="eps", threads=2, status=201, body_size="1k", chunked=True, unhealthy=True) as backend:
            conn = RawConnection(backend)
            self.addCleanup(conn.close)
            conn.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            response = conn.response()
            self.assertEqual(response.status, 201)
            self.assertEqual(response.header("transfer-encoding"), "chunked")
            self.assertEqual(response.body, b"x" * 1024)
            self.assertEqual(backend.get("/healthz")[0], 503)
            for _ in range(20):
                self.assertEqual(backend.get("/")[0], 201)
            self.assertEqual(backend.stats()["requests"], 21)

    def test_latency_and_error_rate_flags(self):
        with Testd(name="zeta", latency="100ms", error_rate=100, error_status=500) as backend:
            started = time.monotonic()
            self.assertEqual(backend.get("/")[0], 500)
            self.assertGreaterEqual(time.monotonic() - started, 0.095)

    def test_bad_flag_fails_to_start(self):
        with self.assertRaises(TestdError):
            Testd(latency="soon")

    def test_port_in_use_fails_to_start(self):
        with Testd() as first:
            with self.assertRaises(TestdError):
                Testd(port=first.port)


if __name__ == "__main__":
    unittest.main()

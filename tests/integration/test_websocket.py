"""Upgrade tunnels: real WebSocket exchanges through Spillway, plain and over TLS.

The backend and the clients are the `websockets` library from Debian (python3-websockets), so the
handshake, framing, masking and close handshake are a real implementation's, not ours. The backend
runs in a thread of the test process with its own event loop.
"""

import asyncio
import json
import os
import socket
import ssl
import tempfile
import threading
import time
import unittest

import websockets

from certs import CertAuthority
from harness import Spillway, free_port, wait_until
from testd import Testd


class WebSocketBackend:
    """Echoes every message; `/hello` first sends a greeting; `/headers` sends the request headers
    it got as JSON; `/push?n=N` sends N numbered messages without being asked."""

    def __init__(self):
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("websocket backend did not start")

    async def _handler(self, ws):
        self.connections += 1
        path = ws.path
        if path == "/hello":
            await ws.send("hello from backend")
        elif path == "/headers":
            await ws.send(json.dumps({k.lower(): v for k, v in ws.request_headers.raw_items()}))
        elif path.startswith("/push"):
            n = int(path.split("n=")[1])
            for i in range(n):
                await ws.send("push %d" % i)
        try:
            async for message in ws:
                await ws.send(message)
        except websockets.ConnectionClosed:
            pass

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def main():
            self.stop_future = self.loop.create_future()
            async with websockets.serve(self._handler, "127.0.0.1", self.port, max_size=None):
                self.ready.set()
                await self.stop_future

        self.loop.run_until_complete(main())

    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_future.set_result, None)
        self.thread.join(10)


CONFIG = """
workers: 2
admin: {{ listen: 127.0.0.1:{{admin_port}} }}
listeners:
  - listen: 127.0.0.1:{{port}}
    routes: [ {{ match: {{ path_prefix: /raw }}, upstream: raw }}, {{ upstream: ws }} ]
  - listen: 127.0.0.1:{tls_port}
    tls: {{ cert: {cert}, key: {key} }}
    routes: [ {{ upstream: ws }} ]
upstreams:
  - name: ws
    health_check: {{ tcp: {{}}, interval: 1s }}
    timeouts: {{ idle: {idle}, request: 1s }}
    backends: [ {{ address: 127.0.0.1:{ws_port} }} ]
  - name: raw
    timeouts: {{ idle: {idle} }}
    backends: [ {{ address: 127.0.0.1:{raw_port} }} ]
"""


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


class WebSocketTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="spillway-ws-")
        ca = CertAuthority(cls.dir)
        cert, key = ca.issue("ws", ["ws.test"])
        cls.client_tls = ssl.create_default_context(cafile=ca.crt)
        cls.backend = WebSocketBackend()
        cls.raw = Testd(name="raw")
        cls.tls_port = free_port()
        cls.proxy = Spillway(CONFIG.format(tls_port=cls.tls_port, cert=cert, key=key, idle="1500ms",
                                           ws_port=cls.backend.port, raw_port=cls.raw.port))
        wait_until(lambda: cls.proxy.backend_status("ws", "127.0.0.1:%d" % cls.backend.port)["healthy"], 10)

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.raw.stop()
        cls.backend.stop()

    def url(self, path, tls=False):
        if tls:
            return "wss://ws.test:%d%s" % (self.tls_port, path)
        return "ws://127.0.0.1:%d%s" % (self.proxy.port, path)

    def connect(self, path, tls=False, **kw):
        if tls:
            # ws.test resolves to loopback through the socket we hand over (no /etc/hosts edit).
            sock = socket.create_connection(("127.0.0.1", self.tls_port))
            return websockets.connect(self.url(path, True), ssl=self.client_tls, sock=sock, server_hostname="ws.test",
                                      max_size=None, **kw)
        return websockets.connect(self.url(path), max_size=None, **kw)

    def exchange(self, tls):
        async def go():
            async with self.connect("/hello", tls) as ws:
                greeting = await ws.recv()
                await ws.send("text message")
                echoed = await ws.recv()
                blob = os.urandom(1 << 20)
                await ws.send(blob)
                blob_back = await ws.recv()
                return greeting, echoed, blob == blob_back

        return run(go())

    def test_websocket_exchange_plain(self):
        """A server-first message, a text echo and a 1 MiB binary echo cross the tunnel intact."""
        greeting, echoed, blob_ok = self.exchange(tls=False)
        self.assertEqual(greeting, "hello from backend")
        self.assertEqual(echoed, "text message")
        self.assertTrue(blob_ok)

    def test_websocket_exchange_over_tls(self):
        """The same over a TLS listener (wss://): TLS ends at Spillway, the tunnel goes on in clear."""
        greeting, echoed, blob_ok = self.exchange(tls=True)
        self.assertEqual(greeting, "hello from backend")
        self.assertEqual(echoed, "text message")
        self.assertTrue(blob_ok)

    def test_backend_sees_upgrade_and_forwarding_headers(self):
        """The backend gets Upgrade/Connection for its handshake plus X-Forwarded-*; the proto says
        https for wss clients."""

        async def go(tls):
            async with self.connect("/headers", tls) as ws:
                return json.loads(await ws.recv())

        plain = run(go(False))
        self.assertEqual(plain["upgrade"].lower(), "websocket")
        self.assertIn("upgrade", plain["connection"].lower())
        self.assertEqual(plain["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(plain["x-forwarded-proto"], "http")
        self.assertIn("sec-websocket-key", plain)
        secure = run(go(True))
        self.assertEqual(secure["x-forwarded-proto"], "https")

    def test_messages_pushed_right_after_the_handshake_arrive(self):
        """Frames the backend sends in the same packets as its 101 are passed on, in order."""

        async def go():
            async with self.connect("/push?n=50") as ws:
                return [await ws.recv() for _ in range(50)]

        self.assertEqual(run(go()), ["push %d" % i for i in range(50)])

    def test_tunnel_counts_as_load_while_open(self):
        """An open WebSocket is one active request on its backend for as long as it lasts."""
        address = "127.0.0.1:%d" % self.backend.port

        async def go():
            async with self.connect("/") as ws:
                await ws.send("x")
                await ws.recv()
                during = self.proxy.backend_status("ws", address)["active_requests"]
            return during

        during = run(go())
        self.assertEqual(during, 1)
        self.assertTrue(wait_until(lambda: self.proxy.backend_status("ws", address)["active_requests"] == 0, 5))

    def test_active_tunnel_outlives_request_timeout(self):
        """The request timeout (1s here) does not cut a tunnel that keeps moving bytes (2.5s)."""

        async def go():
            async with self.connect("/", ping_interval=None) as ws:
                end = time.monotonic() + 2.5
                n = 0
                while time.monotonic() < end:
                    await ws.send("tick %d" % n)
                    self.assertEqual(await ws.recv(), "tick %d" % n)
                    n += 1
                    await asyncio.sleep(0.2)
                return n

        self.assertGreater(run(go()), 8)

    def test_idle_tunnel_is_closed_by_idle_timeout(self):
        """A tunnel with no traffic for the idle timeout (1.5s) is closed by Spillway."""

        async def go():
            async with self.connect("/", ping_interval=None) as ws:
                await ws.send("x")
                await ws.recv()
                start = time.monotonic()
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except websockets.ConnectionClosed:
                    return time.monotonic() - start
                return None

        closed_after = run(go())
        self.assertIsNotNone(closed_after, "the idle tunnel was not closed")
        self.assertGreater(closed_after, 1.0)
        self.assertLess(closed_after, 6.0)

    def test_other_upgrade_protocols_tunnel_too(self):
        """A non-WebSocket Upgrade (raw bytes after the 101) is tunnelled the same way, both ways."""
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as s:
            s.sendall(b"GET /raw HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo-proto\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "closed before the 101")
                head += chunk
            status_line = head.split(b"\r\n")[0]
            self.assertIn(b" 101 ", status_line)
            self.assertIn(b"upgrade: echo-proto", head.lower())
            rest = head.split(b"\r\n\r\n", 1)[1]
            s.sendall(b"ping-through-tunnel")
            while len(rest) < len(b"ping-through-tunnel"):
                chunk = s.recv(4096)
                self.assertTrue(chunk)
                rest += chunk
            self.assertEqual(rest, b"ping-through-tunnel")

    def test_declined_upgrade_is_an_ordinary_response(self):
        """A backend that refuses an Upgrade answers with a normal response: it reaches the client
        as it is (no tunnel, no 502)."""
        with socket.create_connection(("127.0.0.1", self.proxy.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: not-websocket\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "closed before a response")
                data += chunk
        status = int(data.split(b" ")[1])
        self.assertTrue(400 <= status < 500, data[:200])
        self.assertNotIn(b"x-spillway-reason", data.lower())


if __name__ == "__main__":
    unittest.main()

"""The recording backend: a strict HTTP/1.1 origin on loopback that remembers every byte it got.

One thread runs a selector loop over every listener and connection. Each request it parses (with
`httpmsg.parse_request`, which is strict) is answered at once with a small fixed response naming
the request's number (`X-Backend-Request`) and the listener that took it (`X-Backend-Listener`), so
pipelined and keep-alive requests are answered in order. Bytes it cannot parse are recorded as
`errors` (the proxy forwarded something ambiguous), answered 400, and the connection is closed.

The runner brackets each case with `begin_case` / `end_case`; bytes are attributed to the case that
was running when the first byte of their request arrived.
"""

import base64
import hashlib
import selectors
import socket
import threading
import time

import httpmsg

WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3


class CaseRecord:
    """What the backend saw during one case."""

    def __init__(self, case_id):
        self.case_id = case_id
        self.requests = []  # httpmsg.Message, each with .listener and .number
        self.errors = []  # strings: ambiguous bytes that reached the backend
        self.partial = []  # (listener, bytes) left unparsed when the case ended
        self.raw = []  # (connection number, bytes) as received
        self.tunnel = b""  # bytes after a 101

    def received(self):
        return b"".join(b for _, b in self.raw)


class _Conn:
    def __init__(self, sock, listener, number):
        self.sock = sock
        self.listener = listener
        self.number = number
        self.buf = b""
        self.case = None  # the case the buffered bytes belong to
        self.out = b""
        self.close_after_write = False
        self.tunnel = False
        self.dirty = False  # closed when the case ends (an override was sent, or an error)
        self.continue_sent = False


class RecordingBackend:
    """`listeners`: names; each gets its own loopback port (`ports[name]`): the one given in
    `fixed_ports` (a dict), or one the kernel picks."""

    def __init__(self, listeners=("default",), fixed_ports=None):
        self.sel = selectors.DefaultSelector()
        self.ports = {}
        self.lock = threading.RLock()
        self.conns = {}
        self.conn_count = 0
        self.request_count = 0
        self.case = CaseRecord(None)
        self.records = {}
        self.override = None  # (bytes, close) for the case's first request(s)
        self.override_left = 0
        self.last_rx = 0.0
        self.stopping = False
        for name in listeners:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", (fixed_ports or {}).get(name, 0)))
            s.listen(128)
            s.setblocking(False)
            self.ports[name] = s.getsockname()[1]
            self.sel.register(s, selectors.EVENT_READ, ("listener", name))
        self.thread = threading.Thread(target=self._loop, name="recording-backend", daemon=True)
        self.thread.start()

    # --- the runner's side ---
    def begin_case(self, case_id, response=None, response_close=False, response_count=1):
        """Starts attributing bytes to `case_id`. `response`: raw bytes sent instead of the normal
        answer to the case's first `response_count` requests (then the connection closes if
        `response_close`)."""
        with self.lock:
            self.case = CaseRecord(case_id)
            self.records[case_id] = self.case
            self.override = (response, response_close) if response is not None else None
            self.override_left = response_count if response is not None else 0

    def end_case(self, quiet=0.03, limit=0.5):
        """Waits until nothing arrived for `quiet` seconds (at most `limit`), closes connections
        left with partial or ambiguous bytes, and returns the case's record and whether any
        connection was closed (a proxy may need a moment to notice)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self.lock:
                idle = time.monotonic() - self.last_rx
            if idle >= quiet:
                break
            time.sleep(quiet / 3)
        closed = False
        with self.lock:
            record = self.case
            for conn in list(self.conns.values()):
                if conn.buf and not conn.tunnel:
                    record.partial.append((conn.listener, conn.buf))
                if conn.buf or conn.dirty or conn.tunnel:
                    self._close(conn)
                    closed = True
            self.case = CaseRecord(None)
            self.override = None
        return record, closed

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()

    # --- the loop ---
    def _loop(self):
        while not self.stopping:
            for key, mask in self.sel.select(timeout=0.05):
                kind = key.data[0]
                # Under the lock: end_case (the runner's thread) may close connections.
                with self.lock:
                    self._dispatch(key, mask, kind)

    def _dispatch(self, key, mask, kind):
        try:
            if kind == "listener":
                self._accept(key.fileobj, key.data[1])
                return
            conn = key.data[1]
            if conn.sock.fileno() < 0:
                return  # closed earlier in this round
            if mask & selectors.EVENT_READ:
                self._read(conn)
            if mask & selectors.EVENT_WRITE and conn.sock.fileno() >= 0:
                self._flush(conn)
        except (OSError, ValueError, KeyError):
            if kind != "listener":
                self._close(key.data[1])

    def _accept(self, lsock, name):
        try:
            sock, _ = lsock.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        with self.lock:
            self.conn_count += 1
            conn = _Conn(sock, name, self.conn_count)
            self.conns[sock.fileno()] = conn
            self.sel.register(sock, selectors.EVENT_READ, ("conn", conn))

    def _close(self, conn):
        if conn.sock.fileno() < 0:
            return
        self.conns.pop(conn.sock.fileno(), None)
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _read(self, conn):
        try:
            data = conn.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        with self.lock:
            if not data:
                if conn.buf and not conn.tunnel:
                    rec = self.records.get(conn.case, self.case)
                    rec.partial.append((conn.listener, conn.buf))
                    conn.buf = b""
                self._close(conn)
                return
            self.last_rx = time.monotonic()
            if not conn.buf:
                conn.case = self.case.case_id
            record = self.records.get(conn.case, self.case)
            record.raw.append((conn.number, data))
            if conn.tunnel:
                record.tunnel += data
                return
            conn.buf += data
            self._parse(conn)

    def _parse(self, conn):
        while conn.buf and not conn.tunnel and not conn.close_after_write:
            record = self.records.get(conn.case, self.case)
            try:
                req, used = httpmsg.parse_request(conn.buf)
            except httpmsg.Incomplete as e:
                head = e.head
                if head is not None and not conn.continue_sent and "100-continue" in head.first("expect", "").lower():
                    conn.continue_sent = True
                    self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
                return
            except httpmsg.Ambiguous as e:
                record.errors.append("%s (bytes: %r)" % (e, conn.buf[:120]))
                conn.buf = b""
                conn.dirty = True
                self._send(conn, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", close=True)
                return
            conn.buf = conn.buf[used:]
            conn.continue_sent = False
            self.request_count += 1
            req.number = self.request_count
            req.listener = conn.listener
            record.requests.append(req)
            self._answer(conn, req)
            conn.case = self.case.case_id if conn.buf else None

    def _answer(self, conn, req):
        number = req.number
        if self.override is not None and self.override_left > 0:
            self.override_left -= 1
            data, close = self.override
            conn.dirty = True
            self._send(conn, data.replace(b"{n}", str(number).encode()), close=close)
            return
        upgrade = req.first("upgrade", "").lower()
        if upgrade == "websocket" and "upgrade" in req.first("connection", "").lower():
            conn.tunnel = True
            key = req.first("sec-websocket-key", "").encode("latin-1")
            accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
            self._send(
                conn,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: %s\r\nX-Backend-Request: %d\r\n\r\n" % (accept, number),
            )
            return
        body = b"backend %d %s\n" % (number, conn.listener.encode())
        close = "close" in req.first("connection", "").lower() or (
            req.version == "1.0" and "keep-alive" not in req.first("connection", "").lower()
        )
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nX-Backend-Request: %d\r\n"
            b"X-Backend-Listener: %s\r\n%s\r\n"
            % (len(body), number, conn.listener.encode(), b"Connection: close\r\n" if close else b"")
        )
        self._send(conn, head + (b"" if req.method == "HEAD" else body), close=close)

    def _send(self, conn, data, close=False):
        conn.out += data
        conn.close_after_write = conn.close_after_write or close
        self._flush(conn)

    def _flush(self, conn):
        while conn.out:
            try:
                n = conn.sock.send(conn.out)
            except BlockingIOError:
                self.sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, ("conn", conn))
                return
            conn.out = conn.out[n:]
        if conn.close_after_write:
            self._close(conn)
            return
        self.sel.modify(conn.sock, selectors.EVENT_READ, ("conn", conn))

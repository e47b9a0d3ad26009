"""A small HTTP/2 client for the tests, on Debian's python3-h2 (run with /usr/bin/python3).

It speaks cleartext HTTP/2 with prior knowledge (or over a given TLS context with ALPN h2), sends
requests on streams of its own choosing, and collects what comes back per stream: status, headers,
body, trailers, a reset's error code, and a GOAWAY for the connection. Misbehaving on purpose (resets,
floods, huge headers) is done with the same connection object: tests reach `conn` and `sock`.
"""

import socket
import ssl
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions


class Stream:
    def __init__(self):
        self.status = None
        self.headers = []
        self.body = bytearray()
        self.trailers = []
        self.ended = False
        self.reset = None  # the error code of a RST_STREAM

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def trailer(self, name):
        for k, v in self.trailers:
            if k == name:
                return v
        return None


class H2Client:
    def __init__(self, port, host="127.0.0.1", tls=None, server_hostname=None, timeout=10, settings=None,
                 validate=True):
        """`validate=False`: python3-h2 sends headers as given (no checks, no normalising), to send
        what a broken or hostile client would."""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname)
            assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=validate,
            normalize_outbound_headers=validate, validate_inbound_headers=True))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.streams = {}
        self.goaway = None  # (error code, last stream id)
        self.closed = False
        self.pings = 0
        self.error = None  # a protocol error python3-h2 found in what the server sent
        self.flush()

    @staticmethod
    def tls_context(cafile):
        ctx = ssl.create_default_context(cafile=cafile)
        ctx.set_alpn_protocols(["h2"])
        return ctx

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, authority="test", headers=(), body=None, end=True, raw_headers=None):
        """Opens a stream; returns its id. `body` (bytes) is sent in DATA frames as windows allow.
        `raw_headers`: the whole header list as given, pseudo-header fields included."""
        sid = self.conn.get_next_available_stream_id()
        self.streams[sid] = Stream()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)]
        hdrs += list(headers)
        if raw_headers is not None:
            hdrs = list(raw_headers)
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end=end)
        return sid

    def send_body(self, sid, body, end=True):
        view = memoryview(body)
        while view:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room <= 0:
                self.pump(until=lambda: self.conn.local_flow_control_window(sid) > 0 or self.streams[sid].ended)
                if self.streams[sid].ended or self.closed:
                    return
                continue
            self.conn.send_data(sid, bytes(view[:room]))
            view = view[room:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def pump(self, until, timeout=10):
        """Reads and handles frames until `until()` is true, the connection closes, or `timeout`."""
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("h2: condition not met in %ss" % timeout)
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.closed = True
                return
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError as e:
                self.closed = True
                self.error = e
                return
            for ev in events:
                self.handle(ev)
            try:
                self.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.closed = True

    def handle(self, ev):
        s = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived):
            s.headers = list(ev.headers)
            s.status = int(dict(ev.headers)[":status"])
        elif isinstance(ev, h2.events.DataReceived):
            s.body += ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            s.trailers = list(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
            s.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if s is not None:
                s.reset = ev.error_code
                s.ended = True
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = (ev.error_code, ev.last_stream_id)
        elif isinstance(ev, h2.events.PingAckReceived):
            self.pings += 1

    def response(self, sid, timeout=10):
        """Waits for stream `sid` to end; returns its Stream."""
        self.pump(lambda: self.streams[sid].ended, timeout)
        return self.streams[sid]

    def get(self, path, timeout=10, **kw):
        return self.response(self.request("GET", path, **kw), timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

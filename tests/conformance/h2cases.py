"""The HTTP/2 part of the conformance corpus: requests a client sends over cleartext HTTP/2 (prior
knowledge), many of them malformed in the ways RFC 9113 section 8 names, with the verdict a proxy
that forwards to an HTTP/1.1 backend owes them.

The danger of HTTP/2 in front of HTTP/1 is the downgrade: a field value with CR or LF, a name with a
colon or space, a method or path with whitespace becomes, once written as HTTP/1.1, a second header
or a second request (request splitting and smuggling, as in PortSwigger's "HTTP/2: the sequel is
always worse"). Framing fields (content-length that disagrees with the DATA, transfer-encoding,
connection-specific fields) are the other half. Classes follow h2spec's section 8.1 tests and
nghttp2's own checks of HTTP messaging; every byte string was written for this corpus.

Each case is the frames sent after the connection preface and an empty SETTINGS (stream 1 is the
request), and its verdicts: `Forward(...)` (verdicts.py) as for HTTP/1, or `Refuse()`: the stream is
reset, the connection ends (GOAWAY or close), or the proxy answers 4xx itself; nothing reaches the
backend. Header blocks are HPACK literals without indexing, so any byte goes on the wire as given.
"""

import struct

from verdicts import Forward, Verdict

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, END_HEADERS, PADDED = 0x1, 0x4, 0x8
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
AUTHORITY = b"example.test"


class Refuse(Verdict):
    """Nothing reaches the backend, and the client learns its request was refused: RST_STREAM on
    its stream, GOAWAY, a closed connection, or a 4xx answer the proxy made itself."""

    def __init__(self, rfc_only=False):
        self.rfc_only = rfc_only

    def check(self, case, obs):
        if obs.backend.requests:
            return "backend got %d requests" % len(obs.backend.requests)
        if obs.responses:
            r = obs.responses[0]
            if r.from_backend:
                return "the request was forwarded (backend answered %d)" % r.status
            return None if 400 <= r.status < 500 else "the proxy answered %d" % r.status
        if obs.h2_reset is not None or obs.h2_goaway is not None or obs.closed:
            return None
        return "no answer, no reset" + (" (hang)" if obs.hang else "")


class H2Case:
    def __init__(self, id, ref, frames, expect):
        self.id = id
        self.ref = ref
        self.frames = frames
        self.expect = expect
        self.requests = 1
        self.sent = 1
        self.response = None
        self.methods = []


H2_CASES = []


def case(id, ref, frames, *expect):
    assert expect, id
    assert all(c.id != id for c in H2_CASES), "duplicate case id " + id
    H2_CASES.append(H2Case(id, ref, frames if isinstance(frames, bytes) else b"".join(frames), list(expect)))


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def block(fields):
    """An HPACK header block of literals without indexing (RFC 7541 6.2.2), no Huffman."""
    out = b""
    for name, value in fields:
        name = name.encode() if isinstance(name, str) else name
        value = value.encode() if isinstance(value, str) else value
        out += b"\x00" + _int(len(name), 7) + name + _int(len(value), 7) + value
    return out


def pseudo(method=b"GET", path=b"/", authority=AUTHORITY, scheme=b"http"):
    fields = []
    if method is not None:
        fields.append((b":method", method))
    if scheme is not None:
        fields.append((b":scheme", scheme))
    if authority is not None:
        fields.append((b":authority", authority))
    if path is not None:
        fields.append((b":path", path))
    return fields


def headers(fields, stream=1, end_stream=True, flags=END_HEADERS):
    return frame(HEADERS, flags | (END_STREAM if end_stream else 0), stream, block(fields))


def request(extra=(), end_stream=True, **kw):
    """A request head on stream 1: the pseudo-header fields (see pseudo()), then `extra`."""
    return headers(pseudo(**kw) + list(extra), end_stream=end_stream)


def data(payload, stream=1, end_stream=True):
    return frame(DATA, END_STREAM if end_stream else 0, stream, payload)


REFUSE = Refuse()

# --- well-formed: forwarded, and as HTTP/1.1 the backend reads one way only ----------------------

case("h2-base-get", "RFC 9113 8.3.1", request(), Forward(method="GET", target="/", host="example.test"))
case("h2-base-post-length", "RFC 9113 8.1.1", [request([(b"content-length", b"5")], method=b"POST", end_stream=False),
                                                data(b"hello")], Forward(method="POST", body=b"hello"))
case("h2-base-post-no-length", "RFC 9113 8.1: a body of unknown length, chunked to HTTP/1.1",
     [request(method=b"POST", end_stream=False), data(b"hel", end_stream=False), data(b"lo")],
     Forward(method="POST", body=b"hello"))
case("h2-base-trailers-end-request", "RFC 9113 8.1: trailers end the request",
     [request(method=b"POST", end_stream=False), data(b"hello", end_stream=False),
      headers([(b"x-sum", b"1")])], Forward(method="POST", body=b"hello", trailers=[("x-sum", "1")]))
case("h2-base-host-without-authority", "RFC 9113 8.3.1: Host instead of :authority",
     request([(b"host", b"other.test")], authority=None), Forward(host="other.test"))
case("h2-base-te-trailers", "RFC 9113 8.2.2: TE: trailers is the one TE allowed",
     request([(b"te", b"trailers")]), Forward(target="/"))
case("h2-base-cookies-joined", "RFC 9113 8.2.3: split cookie fields are joined with '; '",
     request([(b"cookie", b"a=1"), (b"cookie", b"b=2")]), Forward(present={"cookie": "a=1; b=2"}))
case("h2-base-dot-segments", "RFC 3986 5.2.4: the path as routed is the path forwarded (SPEC 4)",
     request(path=b"/a/../b?q=1"), Forward(target="/b?q=1"), Forward(target="/a/../b?q=1", rfc_only=True))
case("h2-base-query-only", "RFC 9113 8.3.1", request(path=b"/?x"), Forward(target="/?x"))
case("h2-base-padded-headers", "RFC 9113 6.2: padding is not content",
     frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, b"\x03" + block(pseudo()) + b"\x00\x00\x00"),
     Forward(target="/"))
case("h2-base-continuation", "RFC 9113 6.10: a header block split over CONTINUATION",
     [frame(HEADERS, END_STREAM, 1, block(pseudo()[:2])), frame(CONTINUATION, END_HEADERS, 1, block(pseudo()[2:]))],
     Forward(target="/"))

# --- malformed heads (RFC 9113 8.1.1): never forwarded ---------------------------------------------

case("h2-name-uppercase", "RFC 9113 8.2.1", request([(b"X-Upper", b"1")]), REFUSE)
case("h2-name-space", "RFC 9113 8.2.1 / downgrade: a name with SP", request([(b"x a", b"1")]), REFUSE)
case("h2-name-colon", "RFC 9113 8.2.1 / downgrade: 'x-a:b' would read as 'x-a: b'", request([(b"x-a:b", b"1")]), REFUSE)
case("h2-name-empty", "RFC 9113 8.2.1", request([(b"", b"1")]), REFUSE)
case("h2-name-cr", "downgrade: CR in a name", request([(b"x-a\r\nx-b", b"1")]), REFUSE)
case("h2-value-crlf", "RFC 9113 8.2.1 / downgrade: CRLF in a value splits the head",
     request([(b"x-a", b"1\r\nTransfer-Encoding: chunked")]), REFUSE)
case("h2-value-lf", "RFC 9113 8.2.1: LF in a value", request([(b"x-a", b"1\nx-b: 2")]), REFUSE)
case("h2-value-cr", "RFC 9113 8.2.1: CR in a value", request([(b"x-a", b"1\rx")]), REFUSE)
case("h2-value-nul", "RFC 9113 8.2.1: NUL in a value", request([(b"x-a", b"1\x00x")]), REFUSE)
case("h2-value-leading-space", "RFC 9113 8.2.1: whitespace at the start of a value", request([(b"x-a", b" 1")]), REFUSE)
case("h2-value-trailing-tab", "RFC 9113 8.2.1: whitespace at the end of a value", request([(b"x-a", b"1\t")]), REFUSE)
case("h2-connection", "RFC 9113 8.2.2: connection-specific", request([(b"connection", b"keep-alive")]), REFUSE)
case("h2-keep-alive", "RFC 9113 8.2.2", request([(b"keep-alive", b"timeout=5")]), REFUSE)
case("h2-proxy-connection", "RFC 9113 8.2.2", request([(b"proxy-connection", b"keep-alive")]), REFUSE)
case("h2-transfer-encoding", "RFC 9113 8.2.2: Transfer-Encoding in HTTP/2",
     [request([(b"transfer-encoding", b"chunked")], method=b"POST", end_stream=False), data(b"0\r\n\r\n")], REFUSE)
case("h2-upgrade", "RFC 9113 8.2.2", request([(b"upgrade", b"websocket")]), REFUSE)
case("h2-te-gzip", "RFC 9113 8.2.2: TE other than trailers", request([(b"te", b"gzip")]), REFUSE)
case("h2-pseudo-after-regular", "RFC 9113 8.3", headers([(b"x-a", b"1")] + pseudo()), REFUSE)
case("h2-pseudo-duplicate-path", "RFC 9113 8.3.1", request([(b":path", b"/admin")]), REFUSE)
case("h2-pseudo-duplicate-method", "RFC 9113 8.3.1", headers([(b":method", b"GET")] + pseudo()), REFUSE)
case("h2-pseudo-unknown", "RFC 9113 8.3", request([(b":foo", b"bar")]), REFUSE)
case("h2-pseudo-status-in-request", "RFC 9113 8.3.2", request([(b":status", b"200")]), REFUSE)
case("h2-missing-method", "RFC 9113 8.3.1", request(method=None), REFUSE)
case("h2-missing-scheme", "RFC 9113 8.3.1", request(scheme=None), REFUSE)
case("h2-missing-path", "RFC 9113 8.3.1", request(path=None), REFUSE)
case("h2-path-empty", "RFC 9113 8.3.1", request(path=b""), REFUSE)
case("h2-path-relative", "RFC 9113 8.3.1: origin-form or '*'", request(path=b"admin"), REFUSE)
case("h2-path-space", "downgrade: a path with SP becomes a second request-line token",
     request(path=b"/a HTTP/1.1\r\nHost: x\r\n\r\nGET /smuggled"), REFUSE)
case("h2-path-ctl", "RFC 3986: a CTL in the path", request(path=b"/a\x7fb"), REFUSE)
case("h2-method-space", "downgrade: a method with SP", request(method=b"GET /admin HTTP/1.1\r\nX:"), REFUSE)
case("h2-method-lowercase-unknown", "RFC 9110 9.1: an unknown method (SPEC: refused as in HTTP/1)",
     request(method=b"get"), REFUSE, Forward(method="get", rfc_only=True))
case("h2-authority-userinfo", "RFC 9113 8.3.1: no userinfo in :authority", request(authority=b"user@example.test"), REFUSE)
case("h2-authority-space", "RFC 9113 8.3.1 / downgrade", request(authority=b"example.test x"), REFUSE)
case("h2-connect-without-tunnel", "RFC 9113 8.5: CONNECT is not proxied here",
     headers([(b":method", b"CONNECT"), (b":authority", b"example.test:443")]), REFUSE,
     Forward(method="CONNECT", rfc_only=True))
case("h2-content-length-more-data", "RFC 9113 8.1.1: DATA beyond content-length",
     [request([(b"content-length", b"3")], method=b"POST", end_stream=False), data(b"hello")], REFUSE)
case("h2-content-length-less-data", "RFC 9113 8.1.1: the stream ends short of content-length",
     [request([(b"content-length", b"10")], method=b"POST", end_stream=False), data(b"hello")], REFUSE)
case("h2-content-length-twice", "RFC 9110 8.6: two content-lengths",
     [request([(b"content-length", b"5"), (b"content-length", b"6")], method=b"POST", end_stream=False),
      data(b"hello")], REFUSE)
case("h2-content-length-not-number", "RFC 9110 8.6",
     [request([(b"content-length", b"5x")], method=b"POST", end_stream=False), data(b"hello")], REFUSE)
case("h2-trailer-pseudo", "RFC 9113 8.1: no pseudo-header fields in trailers",
     [request(method=b"POST", end_stream=False), data(b"hi", end_stream=False), headers([(b":path", b"/x")])], REFUSE)
case("h2-trailer-framing-field", "RFC 9110 6.5.1: no content-length in trailers (as in HTTP/1 chunked trailers)",
     [request(method=b"POST", end_stream=False), data(b"hi", end_stream=False),
      headers([(b"content-length", b"2")])], REFUSE)
case("h2-trailer-host", "RFC 9110 6.5.1: no routing field in trailers",
     [request(method=b"POST", end_stream=False), data(b"hi", end_stream=False), headers([(b"host", b"evil.test")])],
     REFUSE)
case("h2-trailer-value-ctl", "RFC 9113 8.2.1: trailers are held to the head's rules",
     [request(method=b"POST", end_stream=False), data(b"hi", end_stream=False), headers([(b"x-a", b"1\x01")])],
     REFUSE)
case("h2-trailers-without-end-stream", "RFC 9113 8.1: a second HEADERS must end the stream",
     [request(method=b"POST", end_stream=False), headers([(b"x-a", b"1")], end_stream=False), data(b"x")], REFUSE)

# --- framing (RFC 9113 sections 4 to 6): a connection error, nothing forwarded ---------------------

case("h2-frame-data-on-stream-0", "RFC 9113 6.1", [frame(DATA, 0, 0, b"x"), request()], REFUSE)
case("h2-frame-headers-even-stream", "RFC 9113 5.1.1: client streams are odd", headers(pseudo(), stream=2), REFUSE)
case("h2-frame-padding-too-long", "RFC 9113 6.2: padding longer than the payload",
     frame(HEADERS, END_HEADERS | END_STREAM | PADDED, 1, b"\xff" + block(pseudo())), REFUSE)
case("h2-frame-too-large", "RFC 9113 4.2: over SETTINGS_MAX_FRAME_SIZE",
     [request(method=b"POST", end_stream=False), frame(DATA, END_STREAM, 1, b"x" * 16385)], REFUSE)
case("h2-frame-continuation-without-headers", "RFC 9113 6.10",
     [frame(CONTINUATION, END_HEADERS, 1, block(pseudo())), request()], REFUSE)
case("h2-frame-interleaved-continuation", "RFC 9113 6.10: nothing between HEADERS and its CONTINUATION",
     [frame(HEADERS, END_STREAM, 1, block(pseudo()[:2])), frame(PING, 0, 0, b"\0" * 8),
      frame(CONTINUATION, END_HEADERS, 1, block(pseudo()[2:]))], REFUSE)
case("h2-frame-bad-window", "RFC 9113 6.5.2: SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1",
     [frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0x80000000)), request()], REFUSE)
case("h2-frame-push-promise-from-client", "RFC 9113 8.4: clients cannot push",
     [frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + block(pseudo())), request()], REFUSE)
case("h2-hpack-bad-index", "RFC 7541 2.3.3: an index beyond both tables", frame(HEADERS, END_HEADERS | END_STREAM, 1,
                                                                            b"\xff\x80\x01"), REFUSE)

"""Strict HTTP/1.x parsing for the conformance corpus (stdlib only).

Two parsers, both incremental over a byte buffer:

- `parse_request` is the recording backend's: it accepts only what RFC 9112 allows a sender to
  generate. Anything a proxy forwards that it cannot parse, or that frames a message in more than one
  way, raises `Ambiguous`; irregular but harmless details (a CTL in a field value, a byte >= 0x80 in
  the target) are kept as `notes` on the request.
- `parse_response` is the client's: it frames responses the way RFC 9112 section 6.3 says and
  raises `Ambiguous` for responses whose framing a client could read two ways.

Both raise `Incomplete` when more bytes are needed.
"""

import re

TCHAR = re.escape("!#$%&'*+-.^_`|~") + "0-9A-Za-z"
TOKEN = rb"[" + TCHAR.encode() + rb"]+"
TOKEN_RE = re.compile(TOKEN)
QSTRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
REQUEST_LINE_RE = re.compile(rb"(" + TOKEN + rb") ([^\x00-\x20\x7f]+) HTTP/(1\.[01])")
STATUS_LINE_RE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3}) ([\t \x21-\x7e\x80-\xff]*)")
CHUNK_LINE_RE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:[ \t]*;[ \t]*"
    + TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + TOKEN
    + rb"|"
    + QSTRING
    + rb"))?)*)"
)
# uri-host [ ":" port ]: a reg-name (unreserved / pct-encoded / sub-delims except ",") or an IP literal.
HOST_RE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})*(?::[0-9]*)?|\[[0-9A-Fa-f:.]+\](?::[0-9]*)?")
FIELD_VALUE_OK = set(range(0x20, 0x7F)) | {0x09} | set(range(0x80, 0x100))

MAX_LINE = 4 * 1024 * 1024  # far above any proxy's limit: a long line is the proxy's business
MAX_FIELDS = 20000


class Incomplete(Exception):
    """More bytes are needed. `head` is the parsed head when only the body is missing."""

    def __init__(self, head=None):
        super().__init__("incomplete")
        self.head = head


class Ambiguous(Exception):
    """The bytes are not a message a strict recipient can frame one way only."""


class Message:
    """A parsed request or response."""

    def __init__(self):
        self.method = self.target = self.version = None
        self.status = None
        self.reason = b""
        self.headers = []  # (lowercase name, value) as str (latin-1)
        self.raw_names = []  # names as sent (bytes)
        self.trailers = []
        self.body = b""
        self.chunked = False
        self.chunk_exts = []
        self.notes = []
        self.raw = b""
        self.tunnel = False  # a 101 answer: what follows is not HTTP

    def get(self, name):
        """Every value of header `name` (case-insensitive), in order."""
        name = name.lower()
        return [v for n, v in self.headers if n == name]

    def first(self, name, default=None):
        values = self.get(name)
        return values[0] if values else default


def read_line(buf, pos, limit=MAX_LINE):
    """One CRLF-terminated line from `pos`: (line, next position). A bare LF or bare CR is Ambiguous."""
    end = buf.find(b"\n", pos)
    if end < 0:
        cr = buf.find(b"\r", pos)
        if 0 <= cr < len(buf) - 1:
            raise Ambiguous("bare CR")
        if len(buf) - pos > limit:
            raise Ambiguous("line longer than %d bytes" % limit)
        raise Incomplete()
    if end == pos or buf[end - 1] != 0x0D:
        raise Ambiguous("bare LF")
    line = buf[pos : end - 1]
    if b"\r" in line:
        raise Ambiguous("bare CR")
    return line, end + 1


def parse_fields(buf, pos, msg, into):
    """Field lines up to the empty line; appended to `into`. Returns the position after it."""
    first = True
    while True:
        line, pos = read_line(buf, pos)
        if line == b"":
            return pos
        if line[:1] in (b" ", b"\t"):
            raise Ambiguous("whitespace before the first field" if first else "obs-fold")
        first = False
        name, sep, value = line.partition(b":")
        if not sep:
            raise Ambiguous("field line without a colon: %r" % line[:40])
        if not name:
            raise Ambiguous("empty field name")
        if not TOKEN_RE.fullmatch(name):
            raise Ambiguous("invalid field name %r" % name[:40])
        value = value.strip(b" \t")
        if b"\x00" in value:
            raise Ambiguous("NUL in field value")
        if any(b not in FIELD_VALUE_OK for b in value):
            msg.notes.append("CTL in field %r" % name.decode("latin-1"))
        into.append((name.decode("latin-1").lower(), value.decode("latin-1")))
        msg.raw_names.append(name)
        if len(into) > MAX_FIELDS:
            raise Ambiguous("too many fields")


def transfer_codings(msg):
    """The Transfer-Encoding list, lowercased; Ambiguous when it is not a valid coding list."""
    codings = []
    for value in msg.get("transfer-encoding"):
        for item in value.split(","):
            item = item.strip(" \t")
            if not item:
                raise Ambiguous("empty transfer coding")
            name = item.split(";")[0].strip(" \t")
            if not TOKEN_RE.fullmatch(name.encode("latin-1")):
                raise Ambiguous("invalid transfer coding %r" % item)
            codings.append(name.lower())
    return codings


def content_length(msg):
    """The Content-Length as an int, None when absent; Ambiguous when repeated or not 1*DIGIT."""
    values = msg.get("content-length")
    if not values:
        return None
    if len(values) > 1:
        raise Ambiguous("%d Content-Length fields" % len(values))
    if not re.fullmatch(r"[0-9]{1,15}", values[0]):
        raise Ambiguous("invalid Content-Length %r" % values[0])
    return int(values[0])


def parse_chunked(buf, pos, msg):
    """A chunked body from `pos` into msg.body/chunk_exts/trailers; returns the end position."""
    body = []
    while True:
        line, pos = read_line(buf, pos, limit=64 * 1024)
        m = CHUNK_LINE_RE.fullmatch(line)
        if not m:
            raise Ambiguous("invalid chunk line %r" % line[:40])
        size = int(m.group(1), 16)
        if size >= 1 << 63:
            raise Ambiguous("chunk size %s overflows a signed 64-bit integer" % m.group(1).decode())
        if m.group(2):
            msg.chunk_exts.append(m.group(2))
        if size == 0:
            pos = parse_fields(buf, pos, msg, msg.trailers)
            msg.body = b"".join(body)
            return pos
        if len(buf) < pos + size + 2:
            if len(buf) >= pos + size and buf[pos + size : pos + size + 2] not in (b"", b"\r"):
                raise Ambiguous("chunk data not followed by CRLF")
            raise Incomplete(msg)
        if buf[pos + size : pos + size + 2] != b"\r\n":
            raise Ambiguous("chunk data not followed by CRLF")
        body.append(buf[pos : pos + size])
        pos += size + 2


def check_host(msg):
    hosts = msg.get("host")
    if msg.version == "1.1" and not hosts:
        raise Ambiguous("HTTP/1.1 request without Host")
    if len(hosts) > 1:
        raise Ambiguous("%d Host fields" % len(hosts))
    if hosts and not HOST_RE.fullmatch(hosts[0]):
        raise Ambiguous("invalid Host %r" % hosts[0])


def parse_request(buf):
    """One request from the start of `buf`: (Message, bytes consumed)."""
    msg = Message()
    line, pos = read_line(buf, 0)
    m = REQUEST_LINE_RE.fullmatch(line)
    if not m:
        raise Ambiguous("invalid request line %r" % line[:60])
    msg.method, target, msg.version = m.group(1).decode(), m.group(2), m.group(3).decode()
    if any(b >= 0x80 for b in target):
        msg.notes.append("non-ASCII target")
    if b"#" in target:
        msg.notes.append("fragment in target")
    msg.target = target.decode("latin-1")
    pos = parse_fields(buf, pos, msg, msg.headers)
    check_host(msg)
    codings = transfer_codings(msg)
    length = content_length(msg)
    if codings:
        if length is not None:
            raise Ambiguous("Content-Length with Transfer-Encoding")
        if msg.version == "1.0":
            raise Ambiguous("Transfer-Encoding in HTTP/1.0")
        if codings[-1] != "chunked" or codings.count("chunked") != 1:
            raise Ambiguous("Transfer-Encoding %r is not chunked-final" % ",".join(codings))
        msg.chunked = True
        pos = parse_chunked(buf, pos, msg)
    elif length:
        if len(buf) < pos + length:
            raise Incomplete(msg)
        msg.body = buf[pos : pos + length]
        pos += length
    msg.raw = buf[:pos]
    return msg, pos


def parse_response(buf, method="GET", closed=False):
    """One response from the start of `buf`, for a request with `method`; `closed` when the
    connection has ended (a close-delimited body is complete then). (Message, bytes consumed)."""
    msg = Message()
    line, pos = read_line(buf, 0)
    m = STATUS_LINE_RE.fullmatch(line)
    if not m:
        raise Ambiguous("invalid status line %r" % line[:60])
    msg.version = "1." + m.group(1).decode()
    msg.status = int(m.group(2))
    msg.reason = m.group(3)
    pos = parse_fields(buf, pos, msg, msg.headers)
    codings = transfer_codings(msg)
    length = content_length(msg)
    if codings and length is not None:
        raise Ambiguous("response with Content-Length and Transfer-Encoding")
    if msg.status == 101:
        msg.tunnel = True
    elif method == "HEAD" or msg.status < 200 or msg.status in (204, 304):
        pass
    elif codings and codings[-1] == "chunked":
        msg.chunked = True
        pos = parse_chunked(buf, pos, msg)
    elif length is not None:
        if len(buf) < pos + length:
            raise Incomplete(msg)
        msg.body = buf[pos : pos + length]
        pos += length
    else:
        if not closed:
            raise Incomplete(msg)
        msg.body = buf[pos:]
        pos = len(buf)
    msg.raw = buf[:pos]
    return msg, pos

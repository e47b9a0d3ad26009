"""The conformance corpus: hostile and edge-case HTTP/1.x messages with their expected verdicts.

One `case(...)` call is one case:

    case(id, reference, bytes the client sends, verdict, [verdict...], **options)

- `send`: bytes, or a list of byte strings sent with a pause (`pause`, default 0.2 s) in between.
- verdicts (verdicts.py): `Forward(...)` with checks on what the backend must receive,
  `Reject(400, ...)`, `Close()`; for response cases `Relay(...)`, `BadGateway()`, `Abort()`.
  Any one of them passes; `rfc_only=True` marks one the RFCs allow but SPEC.md does not.
- `requests`: how many requests a conforming proxy processes (default 1); `sent`: how many the
  client's bytes hold at most (default `requests`): more than that reaching the backend is smuggling.
- `response`: raw bytes the backend answers the case's first request with (`{n}` becomes the
  request number), instead of its normal answer; `response_close`: it then closes;
  `response_count`: how many requests get that answer; `methods`: request methods in order, for
  framing responses to HEAD.

The ids say the class; references name the RFC section (RFC 9110 "semantics", RFC 9112 "HTTP/1.1")
or the public corpus or research that inspired the class. Every byte string here was written for
this corpus.
"""

from verdicts import Abort, BadGateway, Close, Forward, Relay, Reject

HOST = b"example.test"
H = b"Host: " + HOST + b"\r\n"
HELLO_CHUNKED = b"5\r\nhello\r\n0\r\n\r\n"
SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: example.test\r\n\r\n"  # a request hidden in a body


class Case:
    def __init__(self, id, ref, send, expect, requests=1, sent=None, response=None, response_close=False,
                 response_count=1, methods=None, pause=0.2):
        self.id = id
        self.ref = ref
        self.send = send if isinstance(send, list) else [send]
        self.expect = expect
        self.requests = requests
        self.sent = sent if sent is not None else max([requests] + [getattr(v, "after", 0) + 1 for v in expect])
        self.response = response
        self.response_close = response_close
        self.response_count = response_count
        self.methods = methods or []
        self.pause = pause


CASES = []


def case(id, ref, send, *expect, **options):
    assert expect, id
    assert all(c.id != id for c in CASES), "duplicate case id " + id
    CASES.append(Case(id, ref, send, list(expect), **options))


def req(method=b"GET", target=b"/", version=b"HTTP/1.1", headers=H, body=b""):
    return method + b" " + target + b" " + version + b"\r\n" + headers + b"\r\n" + body


def post(headers, body=b"", target=b"/"):
    return req(b"POST", target, headers=H + headers, body=body)


def te(value, body=HELLO_CHUNKED, extra=b""):
    return post(b"Transfer-Encoding: " + value + b"\r\n" + extra, body)


def chunked(body):
    return post(b"Transfer-Encoding: chunked\r\n", body)


def cl(value, body=b"hello", extra=b""):
    return post(b"Content-Length: " + value + b"\r\n" + extra, body)


GET = req()
R400 = Reject(400)
TE_UNKNOWN = Reject(400, 501)  # RFC 9112 6.1: 501 for a coding not understood; 6.3: 400 if not chunked-final

# ----------------------------------------------------------------------------------------------
# Baseline: well-formed requests every proxy must forward unchanged.
case("base-get", "RFC 9112 3", GET, Forward(method="GET", target="/", host="example.test", body=b""))
case("base-get-query", "RFC 9112 3.2.1", req(target=b"/a/b?x=1&y=%20"), Forward(target="/a/b?x=1&y=%20"))
case("base-post-cl", "RFC 9112 6.2", cl(b"5"), Forward(method="POST", body=b"hello"))
case("base-post-cl0", "RFC 9112 6.2", cl(b"0", b""), Forward(body=b""))
case("base-post-chunked", "RFC 9112 7.1", chunked(HELLO_CHUNKED), Forward(body=b"hello"))
case("base-chunked-multi", "RFC 9112 7.1", chunked(b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"), Forward(body=b"hello"))
case("base-chunked-empty", "RFC 9112 7.1", chunked(b"0\r\n\r\n"), Forward(body=b""))
case("base-chunked-upper-hex", "RFC 9112 7.1 (HEXDIG)", chunked(b"A\r\n0123456789\r\n0\r\n\r\n"), Forward(body=b"0123456789"))
case("base-chunked-lower-hex", "RFC 9112 7.1", chunked(b"a\r\n0123456789\r\n0\r\n\r\n"), Forward(body=b"0123456789"))
case("base-chunked-leading-zeros", "RFC 9112 7.1; Http11Probe", chunked(b"0005\r\nhello\r\n000\r\n\r\n"), Forward(body=b"hello"))
case("base-head", "RFC 9110 9.3.2", req(b"HEAD"), Forward(method="HEAD"), methods=["HEAD"])
case("base-options", "RFC 9110 9.3.7", req(b"OPTIONS", b"/x"), Forward(method="OPTIONS", target="/x"))
case("base-delete", "RFC 9110 9.3.5", req(b"DELETE", b"/x"), Forward(method="DELETE"))
case("base-put-cl", "RFC 9110 9.3.4", req(b"PUT", b"/x", headers=H + b"Content-Length: 5\r\n", body=b"hello"), Forward(method="PUT", body=b"hello"))
case("base-http10", "RFC 9112 2.3", req(version=b"HTTP/1.0"), Forward())
case("base-http10-no-host", "RFC 9112 3.2 (Host required in 1.1 only)", req(version=b"HTTP/1.0", headers=b""), Forward())
case("base-pipelined-2", "RFC 9112 9.3.2", GET + req(target=b"/2"), Forward(requests=2, each=[{"target": "/"}, {"target": "/2"}]), requests=2)
case("base-pipelined-post-get", "RFC 9112 9.3.2", cl(b"5") + req(target=b"/2"),
     Forward(requests=2, each=[{"body": b"hello"}, {"target": "/2"}]), requests=2)
case("base-body-looks-like-request", "PortSwigger request smuggling (body is data)",
     cl(b"39", b"GET /smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n"[:39]),
     Forward(body=b"GET /smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n"[:39]))
case("base-long-header-value", "RFC 9110 5.4", req(headers=H + b"X-Long: " + b"v" * 6000 + b"\r\n"), Forward(present={"x-long": "v" * 6000}))
case("base-many-headers-50", "RFC 9110 5.4", req(headers=H + b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(50))), Forward(present={"x-h49": "49"}))
case("base-ows-tab", "RFC 9110 5.6.3 (OWS)", req(headers=H + b"X-A:\t a \t\r\n"), Forward(present={"x-a": "a"}))
case("base-no-space-after-colon", "RFC 9112 5.1", req(headers=H + b"X-A:a\r\n"), Forward(present={"x-a": "a"}))
case("base-empty-value", "RFC 9110 5.5 (field-value may be empty)", req(headers=H + b"X-Empty:\r\n"), Forward())
case("base-obs-text-value", "RFC 9110 5.5 (obs-text)", req(headers=H + b"X-A: caf\xe9\r\n"), Forward(present={"x-a": "caf\xe9"}))
case("base-slash-slash-target", "RFC 9112 3.2.1 (path may start with //)", req(target=b"//other.test/x"), Forward(target="//other.test/x"))
case("base-split-writes", "slow client: head and body in pieces",
     [b"POST / HTTP/1.1\r\nHo", b"st: example.test\r\nContent-Le", b"ngth: 5\r\n\r\nhe", b"llo"], Forward(body=b"hello"), pause=0.05)
case("base-get-with-body", "RFC 9110 9.3.1 (content on GET is framed by CL)", req(headers=H + b"Content-Length: 5\r\n", body=b"hello"),
     Forward(method="GET", body=b"hello"), Reject(400, rfc_only=True))

# ----------------------------------------------------------------------------------------------
# Request line: method, target, version.
case("rl-lowercase-method", "RFC 9110 9.1 (methods are case-sensitive tokens)", req(b"get"), Forward(method="get"), Reject(400, 405, 501))
case("rl-unknown-method", "RFC 9110 9.1", req(b"PROPFIND"), Forward(method="PROPFIND"), Reject(405, 501))
case("rl-method-invalid-char", "RFC 9110 5.6.2 (token)", req(b"GE(T"), R400)
case("rl-method-nul", "RFC 9112 3", req(b"GE\x00T"), R400, Close())
case("rl-method-empty", "RFC 9112 3", b" / HTTP/1.1\r\n" + H + b"\r\n", R400)
case("rl-double-space", "RFC 9112 3 (single SP)", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", R400, Forward(target="/", rfc_only=True))
case("rl-tab-separator", "RFC 9112 3", b"GET\t/\tHTTP/1.1\r\n" + H + b"\r\n", R400, Forward(target="/", rfc_only=True))
case("rl-trailing-space", "RFC 9112 3", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", R400)
case("rl-three-words-extra", "RFC 9112 3", b"GET / HTTP/1.1 extra\r\n" + H + b"\r\n", R400)
case("rl-missing-target", "RFC 9112 3", b"GET HTTP/1.1\r\n" + H + b"\r\n", R400)
case("rl-http09", "RFC 9112 2.3 (HTTP/0.9 is not supported)", b"GET /\r\n\r\n", R400, Close())
case("rl-version-lowercase", "RFC 9112 2.3 (HTTP-name is case-sensitive)", req(version=b"http/1.1"), R400)
case("rl-version-1-2", "RFC 9110 2.5 (higher minor version: process as 1.1)", req(version=b"HTTP/1.2"), Forward(version="1.1"), Reject(400, 505))
case("rl-version-2-0", "RFC 9110 2.5; RFC 9113 (h2 is not spoken in HTTP/1 syntax)", req(version=b"HTTP/2.0"), Reject(400, 505), Close())
case("rl-version-1", "RFC 9112 2.3 (HTTP-version = HTTP-name / DIGIT . DIGIT)", req(version=b"HTTP/1"), R400)
case("rl-version-1-10", "RFC 9112 2.3", req(version=b"HTTP/1.10"), R400, Reject(505))
case("rl-version-leading-zero", "RFC 9112 2.3", req(version=b"HTTP/01.1"), R400, Reject(505))
case("rl-version-9-9", "RFC 9110 6.2", req(version=b"HTTP/9.9"), Reject(400, 505))
case("rl-target-space", "RFC 9112 3.2", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", R400)
case("rl-target-ctl", "RFC 3986; RFC 9112 3.2", req(target=b"/a\x01b"), R400)
case("rl-target-del", "RFC 3986", req(target=b"/a\x7fb"), R400)
case("rl-target-non-ascii", "RFC 3986 (no raw octets >= 0x80)", req(target=b"/caf\xc3\xa9"), R400, Forward(notes_ok=True, rfc_only=True))
case("rl-target-fragment", "RFC 9112 3.2.1 (origin-form has no fragment)", req(target=b"/a#frag"), R400, Forward(target="/a", rfc_only=True))
case("rl-target-relative", "RFC 9112 3.2", req(target=b"index.html"), R400)
case("rl-target-query-only", "RFC 9112 3.2.1", req(target=b"?a=1"), R400)
case("rl-asterisk-get", "RFC 9112 3.2.4 (asterisk-form only for OPTIONS)", req(target=b"*"), R400)
case("rl-asterisk-post", "RFC 9112 3.2.4", req(b"POST", b"*", headers=H + b"Content-Length: 0\r\n"), R400)
case("rl-asterisk-options", "RFC 9112 3.2.4", req(b"OPTIONS", b"*"), Forward(method="OPTIONS", target="*"))
case("rl-asterisk-options-suffix", "RFC 9112 3.2.4", req(b"OPTIONS", b"*x"), R400)
case("rl-authority-form-get", "RFC 9112 3.2.3 (authority-form only for CONNECT)", req(target=b"example.test:80"), R400)
case("rl-connect", "RFC 9110 9.3.6 (a reverse proxy does not tunnel)", req(b"CONNECT", b"example.test:443", headers=b"Host: example.test:443\r\n"),
     Reject(400, 403, 405, 501))
case("rl-connect-origin-form", "RFC 9112 3.2.3", req(b"CONNECT", b"/"), Reject(400, 405, 501))
case("rl-leading-crlf", "RFC 9112 2.2 (SHOULD ignore one empty line first)", b"\r\n" + GET, Forward(target="/"), Reject(400, rfc_only=True))
case("rl-leading-lf", "RFC 9112 2.2", b"\n" + GET, Forward(target="/", rfc_only=True), R400)
case("rl-long-method", "Http11Probe (long method)", req(b"X" * 2000), Forward(method="X" * 2000), Reject(400, 405, 414, 431, 501))
case("rl-long-target-20k", "RFC 9112 3 (8000 octets SHOULD be supported)", req(target=b"/" + b"a" * 20000), Forward(), Reject(414, 431, 400))
case("rl-huge-target-300k", "RFC 9110 15.5.15 (414)", req(target=b"/" + b"a" * 300000), Reject(414, 431, 400), Close())
case("rl-binary-garbage", "Http11Probe (binary garbage)", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, R400, Close())

# ----------------------------------------------------------------------------------------------
# Absolute-form targets (SPEC section 5: origin form out, authority replaces Host).
case("abs-same-host", "RFC 9112 3.2.2; SPEC 5", req(target=b"http://example.test/p?q=1"), Forward(target="/p?q=1", host="example.test"),
     Forward(target="http://example.test/p?q=1", host="example.test", rfc_only=True))
case("abs-other-host", "RFC 9112 3.2.2 (Host is ignored); SPEC 5", req(target=b"http://other.test/p", headers=b"Host: example.test\r\n"),
     Forward(target="/p", host="other.test"), Forward(target="http://other.test/p", host="other.test", rfc_only=True), Reject(400, rfc_only=True))
case("abs-with-port", "RFC 9112 3.2.2", req(target=b"http://other.test:8080/p"), Forward(target="/p", host="other.test:8080"),
     Forward(target="http://other.test:8080/p", host="other.test:8080", rfc_only=True), Reject(400, rfc_only=True))
case("abs-no-path", "RFC 9112 3.2.1 (empty path is /)", req(target=b"http://example.test"), Forward(target="/", host="example.test"),
     Forward(target="http://example.test", host="example.test", rfc_only=True))
case("abs-query-no-path", "RFC 9112 3.2.1", req(target=b"http://example.test?x=1"), Forward(target="/?x=1", host="example.test"),
     Forward(target="http://example.test?x=1", host="example.test", rfc_only=True))
case("abs-uppercase-scheme", "RFC 3986 3.1 (scheme is case-insensitive)", req(target=b"HTTP://example.test/p"), Forward(target="/p", host="example.test"),
     Forward(target="HTTP://example.test/p", host="example.test", rfc_only=True), Reject(400, rfc_only=True))
case("abs-https-scheme", "RFC 9110 4.2.2", req(target=b"https://example.test/p"), Forward(target="/p", host="example.test"),
     Forward(target="https://example.test/p", host="example.test", rfc_only=True), Reject(400, rfc_only=True))
case("abs-userinfo", "RFC 9110 4.2.4 (userinfo is an error)", req(target=b"http://user:pw@other.test/p"), R400,
     Forward(target="/p", host="other.test", rfc_only=True))
case("abs-empty-host", "RFC 9110 4.2.1 (http URI needs a host)", req(target=b"http:///p"), R400)
case("abs-no-host-header", "RFC 9112 3.2 (Host required in 1.1 even with absolute-form)", req(target=b"http://example.test/p", headers=b""), R400)
case("abs-bad-authority", "RFC 3986 3.2", req(target=b"http://exa mple.test/p"), R400)
case("abs-fragment", "RFC 9112 3.2.2", req(target=b"http://example.test/p#f"), R400, Forward(target="/p", host="example.test", rfc_only=True))

# ----------------------------------------------------------------------------------------------
# Host.
case("host-missing", "RFC 9112 3.2 (MUST 400)", req(headers=b""), R400)
case("host-duplicate-same", "RFC 9112 3.2 (MUST 400)", req(headers=H + H), R400)
case("host-duplicate-different", "RFC 9112 3.2; Kettle host-header attacks", req(headers=H + b"Host: other.test\r\n"), R400)
case("host-list", "RFC 9112 3.2 (invalid value: MUST 400)", req(headers=b"Host: example.test, other.test\r\n"), R400)
case("host-empty", "RFC 9112 3.2 (empty Host is allowed)", req(headers=b"Host:\r\n"), Forward(), R400)
case("host-with-port", "RFC 9110 7.2", req(headers=b"Host: example.test:8080\r\n"), Forward(host="example.test:8080"))
case("host-ipv6", "RFC 3986 3.2.2", req(headers=b"Host: [::1]:8080\r\n"), Forward(host="[::1]:8080"))
case("host-userinfo", "RFC 9110 7.2 (uri-host has no userinfo)", req(headers=b"Host: user@example.test\r\n"), R400)
case("host-path", "RFC 9110 7.2", req(headers=b"Host: example.test/admin\r\n"), R400)
case("host-space-inside", "RFC 9110 7.2", req(headers=b"Host: example .test\r\n"), R400)
case("host-invalid-char", "RFC 3986 3.2.2", req(headers=b"Host: exa<mple.test\r\n"), R400)
case("host-nul", "RFC 9110 5.5", req(headers=b"Host: example.test\x00.other\r\n"), R400)
case("host-bad-port", "RFC 3986 3.2.3 (port = *DIGIT)", req(headers=b"Host: example.test:abc\r\n"), R400)
case("host-ows", "RFC 9110 5.6.3", req(headers=b"Host: \t example.test \t\r\n"), Forward(host="example.test"))
case("host-lowercase-name", "RFC 9110 5.1 (names are case-insensitive)", req(headers=b"host: example.test\r\n"), Forward(host="example.test"))
case("host-space-before-colon", "RFC 9112 5.1; Kettle", req(headers=b"Host : example.test\r\n"), R400)

# ----------------------------------------------------------------------------------------------
# Header syntax.
case("hdr-space-before-colon", "RFC 9112 5.1 (MUST 400)", req(headers=H + b"X-A : b\r\n"), R400)
case("hdr-tab-before-colon", "RFC 9112 5.1", req(headers=H + b"X-A\t: b\r\n"), R400)
case("hdr-empty-name", "RFC 9110 5.1 (field-name = token)", req(headers=H + b": value\r\n"), R400)
case("hdr-no-colon", "RFC 9112 5", req(headers=H + b"X-A value\r\n"), R400)
case("hdr-name-paren", "RFC 9110 5.6.2", req(headers=H + b"X(A): b\r\n"), R400)
case("hdr-name-at", "RFC 9110 5.6.2", req(headers=H + b"X@A: b\r\n"), R400)
case("hdr-name-space", "RFC 9110 5.6.2", req(headers=H + b"X A: b\r\n"), R400)
case("hdr-name-nul", "RFC 9110 5.6.2", req(headers=H + b"X\x00A: b\r\n"), R400)
case("hdr-name-del", "RFC 9110 5.6.2", req(headers=H + b"X\x7fA: b\r\n"), R400)
case("hdr-name-non-ascii", "RFC 9110 5.6.2", req(headers=H + b"X\xe9A: b\r\n"), R400)
case("hdr-name-quote", "RFC 9110 5.6.2", req(headers=H + b'X"A: b\r\n'), R400)
case("hdr-value-nul", "RFC 9110 5.5 (NUL: reject or replace with SP)", req(headers=H + b"X-A: a\x00b\r\n"), R400,
     Forward(present={"x-a": "a b"}, rfc_only=True))
case("hdr-value-ctl", "RFC 9110 5.5 (other CTLs are invalid)", req(headers=H + b"X-A: a\x01b\r\n"), R400)
case("hdr-value-esc", "RFC 9110 5.5", req(headers=H + b"X-A: a\x1b[31mb\r\n"), R400)
case("hdr-value-del", "RFC 9110 5.5", req(headers=H + b"X-A: a\x7fb\r\n"), R400)
case("hdr-value-vt", "RFC 9110 5.5", req(headers=H + b"X-A: a\x0bb\r\n"), R400)
case("hdr-obs-fold", "RFC 9112 5.2 (reject or replace with SP)", req(headers=H + b"X-A: a\r\n b\r\n"), R400,
     Forward(present={"x-a": "a b"}, rfc_only=True))
case("hdr-obs-fold-tab", "RFC 9112 5.2", req(headers=H + b"X-A: a\r\n\tb\r\n"), R400, Forward(present={"x-a": "a b"}, rfc_only=True))
case("hdr-first-line-folded", "RFC 9112 2.2 (whitespace before the first field)", b"GET / HTTP/1.1\r\n X-A: b\r\n" + H + b"\r\n", R400,
     Forward(absent=["x-a"], rfc_only=True))
case("hdr-bare-lf", "RFC 9112 2.2 (bare LF: SPEC rejects)", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\n\r\n", R400,
     Forward(present={"x-a": "b"}, rfc_only=True))
case("hdr-all-bare-lf", "RFC 9112 2.2", b"GET / HTTP/1.1\nHost: example.test\nX-A: b\n\n", R400, Forward(present={"x-a": "b"}, rfc_only=True))
case("hdr-requestline-bare-lf", "RFC 9112 2.2", b"GET / HTTP/1.1\n" + H + b"\r\n", R400, Forward(target="/", rfc_only=True))
case("hdr-bare-cr-value", "RFC 9112 2.2 (bare CR: invalid or SP)", req(headers=H + b"X-A: a\rb\r\n"), R400,
     Forward(present={"x-a": "a b"}, rfc_only=True))
case("hdr-bare-cr-line-end", "RFC 9112 2.2", b"GET / HTTP/1.1\r" + H + b"\r\n", R400)
case("hdr-cr-cr-lf", "RFC 9112 2.2", req(headers=H + b"X-A: b\r\r\n"), R400)
case("hdr-bare-lf-smuggle-te", "Kettle, HTTP/1.1 must die (line-ending desync)",
     b"POST / HTTP/1.1\r\n" + H + b"X-A: b\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" + HELLO_CHUNKED, R400)
case("hdr-many-200", "HAProxy tune.http.maxhdr; Http11Probe", req(headers=H + b"".join(b"X-H%d: %d\r\n" % (i, i) for i in range(200))),
     Forward(present={"x-h199": "199"}), Reject(400, 431))
case("hdr-oversized-100k", "RFC 6585 5 (431)", req(headers=H + b"X-Big: " + b"a" * 100000 + b"\r\n"), Reject(400, 431), Close())
case("hdr-oversized-many-small", "RFC 6585 5", req(headers=H + b"".join(b"X-%05d: %s\r\n" % (i, b"v" * 40) for i in range(3000))),
     Reject(400, 431), Close())
case("hdr-connection-tokens-many", "issue #12 (quadratic Connection tokens)",
     req(headers=H + b"Connection: " + b", ".join(b"t%d" % i for i in range(6000)) + b"\r\n" + b"X-E:\r\n" * 3000),
     Forward(), Reject(400, 431), Close())

# ----------------------------------------------------------------------------------------------
# Content-Length.
case("cl-leading-zeros", "RFC 9110 8.6 (1*DIGIT)", cl(b"005"), Forward(body=b"hello"))
case("cl-ows-tab", "RFC 9110 5.6.3", cl(b"\t5"), Forward(body=b"hello"))
case("cl-plus", "RFC 9110 8.6; Http11Probe", cl(b"+5"), R400)
case("cl-negative", "RFC 9110 8.6", cl(b"-5"), R400)
case("cl-hex", "RFC 9110 8.6", cl(b"0x5"), R400)
case("cl-decimal", "RFC 9110 8.6", cl(b"5.0"), R400)
case("cl-trailing-junk", "RFC 9110 8.6", cl(b"5a"), R400)
case("cl-inner-space", "RFC 9110 8.6", cl(b"5 5"), R400)
case("cl-empty", "RFC 9110 8.6; issue #12 (empty framing header)", cl(b""), R400)
case("cl-comma-same", "RFC 9112 6.3 (identical list: reject or use one)", cl(b"5, 5"), R400,
     Forward(body=b"hello", rfc_only=True))
case("cl-comma-different", "RFC 9112 6.3", cl(b"5, 6"), R400)
case("cl-duplicate-same", "RFC 9112 6.3; PortSwigger (duplicate CL)", cl(b"5", extra=b"Content-Length: 5\r\n"), R400,
     Forward(body=b"hello", rfc_only=True))
case("cl-duplicate-different", "RFC 9112 6.3; PortSwigger CL.CL", cl(b"5", b"hello" + b"GET / HTTP/1.1\r\n\r\n", extra=b"Content-Length: 23\r\n"), R400)
case("cl-overflow", "Http11Probe (CL overflow)", cl(b"99999999999999999999999"), Reject(400, 413))
case("cl-overflow-wrap", "integer wraparound to 5 (2^64+5)", cl(b"18446744073709551621"), Reject(400, 413))
case("cl-nul", "RFC 9110 5.5", cl(b"5\x00"), R400)
case("cl-space-before-colon", "RFC 9112 5.1; PortSwigger", b"POST / HTTP/1.1\r\n" + H + b"Content-Length : 5\r\n\r\nhello", R400)
case("cl-underscore-name", "header name variants (Content_Length is another field)",
     post(b"Content_Length: 5\r\nContent-Length: 0\r\n"), Forward(body=b""))
case("cl-folded", "RFC 9112 5.2", b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n 5\r\n\r\nhello", R400)
case("cl-too-short-pipeline", "RFC 9112 6.3 (the rest is the next request)",
     cl(b"3", b"hello\r\n\r\n"), Reject(400, after=1), Close(after=1), requests=1, sent=2)

# ----------------------------------------------------------------------------------------------
# Transfer-Encoding and its obfuscations (PortSwigger TE.TE, Kettle).
case("te-chunked-uppercase", "RFC 9112 7 (coding names are case-insensitive)", te(b"CHUNKED"), Forward(body=b"hello"))
case("te-chunked-mixed-case", "RFC 9112 7", te(b"Chunked"), Forward(body=b"hello"))
case("te-leading-ows", "RFC 9110 5.6.3 (OWS)", te(b" chunked"), Forward(body=b"hello"))
case("te-trailing-ows", "RFC 9110 5.6.3", te(b"chunked \t"), Forward(body=b"hello"))
case("te-xchunked", "PortSwigger TE.TE obfuscation", te(b"xchunked"), TE_UNKNOWN)
case("te-xchunked-with-cl", "PortSwigger TE.TE", te(b"xchunked", extra=b"Content-Length: 5\r\n", body=b"hello"), TE_UNKNOWN)
case("te-chunk", "PortSwigger TE.TE", te(b"chunk"), TE_UNKNOWN)
case("te-quoted", "PortSwigger TE.TE", te(b'"chunked"'), TE_UNKNOWN)
case("te-chunked-identity", "RFC 9112 6.3 (chunked not final: 400)", te(b"chunked, identity"), TE_UNKNOWN)
case("te-identity-chunked", "RFC 9112 6.1 (identity is not a coding)", te(b"identity, chunked"), TE_UNKNOWN,
     Forward(body=b"hello", rfc_only=True))
case("te-gzip-chunked", "RFC 9112 6.1", te(b"gzip, chunked"), Forward(body=b"hello"), TE_UNKNOWN)
case("te-chunked-twice-list", "RFC 9112 6.1 (chunked at most once)", te(b"chunked, chunked"), TE_UNKNOWN)
case("te-chunked-twice-lines", "RFC 9112 6.1; PortSwigger duplicate TE", te(b"chunked", extra=b"Transfer-Encoding: chunked\r\n"), TE_UNKNOWN)
case("te-two-lines-identity-last", "PortSwigger duplicate TE", te(b"chunked", extra=b"Transfer-Encoding: identity\r\n"), TE_UNKNOWN)
case("te-empty", "issue #12 (empty framing header)", te(b"", body=b""), TE_UNKNOWN)
case("te-comma-only", "RFC 9110 5.6.1", te(b","), TE_UNKNOWN)
case("te-tab-prefix", "RFC 9110 5.6.3 (HTAB is OWS)", te(b"\tchunked"), Forward(body=b"hello"))
case("te-vt", "Kettle (VT is not whitespace)", te(b"\x0bchunked"), TE_UNKNOWN)
case("te-ff", "Kettle", te(b"\x0cchunked"), TE_UNKNOWN)
case("te-nul-suffix", "RFC 9110 5.5", te(b"chunked\x00"), TE_UNKNOWN)
case("te-space-before-colon", "RFC 9112 5.1; PortSwigger", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n" + HELLO_CHUNKED, R400)
case("te-folded-line", "RFC 9112 5.2; PortSwigger", b"POST / HTTP/1.1\r\n" + H + b"X-A: b\r\n Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello",
     R400)
case("te-folded-value", "RFC 9112 5.2", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n chunked\r\n\r\n" + HELLO_CHUNKED, R400)
case("te-name-underscore", "header name variants", post(b"Transfer_Encoding: chunked\r\nContent-Length: 5\r\n", b"hello"), Forward(body=b"hello"))
case("te-http10", "RFC 9112 6.1 (TE in 1.0: framing is faulty)", b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + HELLO_CHUNKED, R400)
case("te-http10-with-cl", "RFC 9112 6.1", b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello", R400)
case("te-on-get", "RFC 9110 9.3.1", req(headers=H + b"Transfer-Encoding: chunked\r\n", body=HELLO_CHUNKED), Forward(method="GET", body=b"hello"))
case("te-params", "RFC 9112 7 (transfer-parameter)", te(b"chunked;foo=bar"), Forward(body=b"hello"), TE_UNKNOWN)

# CL and TE together: SPEC rejects; RFC 9112 6.3 lets an intermediary drop CL, then it MUST close.
case("clte-basic", "RFC 9112 6.3", te(b"chunked", extra=b"Content-Length: 5\r\n", body=HELLO_CHUNKED), R400,
     Forward(body=b"hello", close_after=True, rfc_only=True))
case("clte-prefix-smuggle", "PortSwigger CL.TE", te(b"chunked", extra=b"Content-Length: 6\r\n", body=b"0\r\n\r\nG"), R400,
     Forward(body=b"", close_after=True, rfc_only=True))
case("clte-smuggle-request", "PortSwigger CL.TE",
     te(b"chunked", extra=b"Content-Length: %d\r\n" % (5 + len(SMUGGLED)), body=b"0\r\n\r\n" + SMUGGLED), R400,
     Forward(body=b"", close_after=True, rfc_only=True))
case("tecl-smuggle", "PortSwigger TE.CL",
     te(b"chunked", extra=b"Content-Length: 3\r\n", body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)), R400,
     Forward(body=SMUGGLED, close_after=True, rfc_only=True))
case("clte-cl-first", "PortSwigger CL.TE (header order)", post(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", HELLO_CHUNKED), R400,
     Forward(body=b"hello", close_after=True, rfc_only=True))
case("clte-te-obfuscated-space", "PortSwigger TE.TE", post(b"Content-Length: 5\r\nTransfer-Encoding:  chunked\r\n", HELLO_CHUNKED), R400,
     Forward(body=b"hello", close_after=True, rfc_only=True))
case("clte-te-uppercase", "PortSwigger TE.TE", post(b"Content-Length: 5\r\nTransfer-Encoding: CHUNKED\r\n", HELLO_CHUNKED), R400,
     Forward(body=b"hello", close_after=True, rfc_only=True))
case("clte-cl-zero", "Kettle 0.CL", te(b"chunked", extra=b"Content-Length: 0\r\n"), R400, Forward(body=b"hello", close_after=True, rfc_only=True))

# ----------------------------------------------------------------------------------------------
# Chunk sizes and chunk lines.
case("chunk-size-overflow", "Http11Probe (chunk size overflow)", chunked(b"FFFFFFFFFFFFFFFFF5\r\nhello\r\n0\r\n\r\n"), Reject(400, 413))
case("chunk-size-16f", "integer overflow", chunked(b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n"), Reject(400, 413))
case("chunk-size-wrap", "integer wraparound to 5", chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"), Reject(400, 413))
case("chunk-size-0x", "RFC 9112 7.1 (HEXDIG only)", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-size-negative", "RFC 9112 7.1", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-size-plus", "RFC 9112 7.1", chunked(b"+5\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-size-leading-space", "RFC 9112 7.1", chunked(b" 5\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-size-trailing-space", "RFC 9112 7.1; llhttp tests", chunked(b"5 \r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-size-trailing-tab", "RFC 9112 7.1", chunked(b"5\t\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-size-junk", "RFC 9112 7.1", chunked(b"5g\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-size-underscore", "RFC 9112 7.1", chunked(b"0_5\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-size-empty", "RFC 9112 7.1", chunked(b"\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-size-bare-lf", "RFC 9112 2.2/7.1", chunked(b"5\nhello\r\n0\r\n\r\n"), R400, Forward(body=b"hello", rfc_only=True))
case("chunk-data-bare-lf", "RFC 9112 7.1 (CRLF after data)", chunked(b"5\r\nhello\n0\r\n\r\n"), R400, Forward(body=b"hello", rfc_only=True))
case("chunk-last-bare-lf", "RFC 9112 7.1", chunked(b"5\r\nhello\r\n0\n\r\n"), R400, Forward(body=b"hello", rfc_only=True))
case("chunk-end-bare-lf", "RFC 9112 7.1", chunked(b"5\r\nhello\r\n0\r\n\n"), R400, Forward(body=b"hello", rfc_only=True))
case("chunk-size-bare-cr", "RFC 9112 2.2", chunked(b"5\rhello\r\n0\r\n\r\n"), R400)
case("chunk-data-too-long", "RFC 9112 7.1", chunked(b"5\r\nhelloXX\r\n0\r\n\r\n"), R400)
case("chunk-data-too-short", "RFC 9112 7.1", chunked(b"5\r\nhel\r\n0\r\n\r\n"), R400)
case("chunk-data-no-crlf", "RFC 9112 7.1", chunked(b"5\r\nhello0\r\n\r\n"), R400)
case("chunk-te-cl-in-chunk", "Kettle (chunk body hides a request)", chunked(b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)), Forward(body=SMUGGLED))
# Chunk extensions: valid ones must be forwarded (RFC 9112 7.1.1: a recipient MUST ignore unknown ones).
case("chunk-ext-token", "RFC 9112 7.1.1", chunked(b"5;a=b\r\nhello\r\n0\r\n\r\n"), Forward(body=b"hello"))
case("chunk-ext-name-only", "RFC 9112 7.1.1", chunked(b"5;a\r\nhello\r\n0\r\n\r\n"), Forward(body=b"hello"))
case("chunk-ext-quoted", "RFC 9112 7.1.1", chunked(b'5;a="q"\r\nhello\r\n0\r\n\r\n'), Forward(body=b"hello"))
case("chunk-ext-quoted-escape", "RFC 9110 5.6.4 (quoted-pair)", chunked(b'5;a="q\\"x;y"\r\nhello\r\n0\r\n\r\n'), Forward(body=b"hello"))
case("chunk-ext-multiple", "RFC 9112 7.1.1", chunked(b"5;a=b;c=d;e\r\nhello\r\n0;z=1\r\n\r\n"), Forward(body=b"hello"))
case("chunk-ext-bws", "RFC 9112 7.1.1 (BWS)", chunked(b"5 ; a = b\r\nhello\r\n0\r\n\r\n"), Forward(body=b"hello"))
case("chunk-ext-on-last", "RFC 9112 7.1.1", chunked(b"5\r\nhello\r\n0;a=b\r\n\r\n"), Forward(body=b"hello"))
case("chunk-ext-empty-name", "RFC 9112 7.1.1 (name is a token)", chunked(b"5;\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-ext-empty-value", "RFC 9112 7.1.1", chunked(b"5;a=\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-ext-space-in-value", "RFC 9112 7.1.1", chunked(b"5;a=b c\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-ext-unterminated-quote", "RFC 9110 5.6.4", chunked(b'5;a="b\r\nhello\r\n0\r\n\r\n'), R400)
case("chunk-ext-nul", "RFC 9112 7.1.1", chunked(b"5;a=b\x00\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-ext-ctl", "RFC 9112 7.1.1", chunked(b"5;a=\x01\r\nhello\r\n0\r\n\r\n"), R400)
case("chunk-ext-bare-lf", "RFC 9112 2.2; Kettle", chunked(b"5;a=b\nhello\r\n0\r\n\r\n"), R400)
case("chunk-ext-quoted-lf", "quoted-string cannot hold LF", chunked(b'5;a="x\nhello\r\n0\r\n\r\n"\r\nhello\r\n0\r\n\r\n'), R400)
case("chunk-ext-long", "llhttp HPE_CHUNK_EXTENSIONS_OVERFLOW", chunked(b"5;a=" + b"b" * 20000 + b"\r\nhello\r\n0\r\n\r\n"),
     Forward(body=b"hello"), Reject(400, 413, 431))

# ----------------------------------------------------------------------------------------------
# Trailers (SPEC 5: same limits and strictness as heads).
case("trailer-valid", "RFC 9112 7.1.2", chunked(b"5\r\nhello\r\n0\r\nX-Check: 1\r\n\r\n"), Forward(body=b"hello"))
case("trailer-two", "RFC 9112 7.1.2", chunked(b"5\r\nhello\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n"), Forward(body=b"hello"))
case("trailer-content-length", "RFC 9110 6.5.1 (framing fields never in trailers)",
     chunked(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"), Forward(body=b"hello"), R400)
case("trailer-transfer-encoding", "RFC 9110 6.5.1", chunked(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"), Forward(body=b"hello"), R400)
case("trailer-host", "RFC 9110 6.5.1", chunked(b"5\r\nhello\r\n0\r\nHost: other.test\r\n\r\n"), Forward(body=b"hello", host="example.test"), R400)
case("trailer-bare-lf", "RFC 9112 2.2; issue #12", chunked(b"5\r\nhello\r\n0\r\nX-A: 1\n\r\n"), R400,
     Forward(body=b"hello", rfc_only=True))
case("trailer-obs-fold", "RFC 9112 5.2; issue #12", chunked(b"5\r\nhello\r\n0\r\nX-A: 1\r\n 2\r\n\r\n"), R400,
     Forward(body=b"hello", rfc_only=True))
case("trailer-space-before-colon", "RFC 9112 5.1", chunked(b"5\r\nhello\r\n0\r\nX-A : 1\r\n\r\n"), R400)
case("trailer-no-colon", "RFC 9112 5", chunked(b"5\r\nhello\r\n0\r\nX-A 1\r\n\r\n"), R400)
case("trailer-nul", "RFC 9110 5.5", chunked(b"5\r\nhello\r\n0\r\nX-A: 1\x00\r\n\r\n"), R400, Forward(body=b"hello", rfc_only=True))
case("trailer-empty-name", "RFC 9110 5.1", chunked(b"5\r\nhello\r\n0\r\n: 1\r\n\r\n"), R400)
case("trailer-huge", "SPEC 5 (trailers obey head limits); issue #12", chunked(b"5\r\nhello\r\n0\r\nX-Big: " + b"a" * 300000 + b"\r\n\r\n"),
     Reject(400, 413, 431), Close())
case("trailer-many", "SPEC 5", chunked(b"5\r\nhello\r\n0\r\n" + b"".join(b"X-T%05d: v\r\n" % i for i in range(5000)) + b"\r\n"),
     Reject(400, 413, 431), Close())
case("trailer-uaf-8k-then-300k", "issue #12 (trailer UAF repro, ASan)",
     chunked(b"5\r\nhello\r\n0\r\nX-A: " + b"a" * 8192 + b"\r\n\r\n") + chunked(b"5\r\nhello\r\n0\r\nX-B: " + b"b" * 300000 + b"\r\n\r\n"),
     Reject(400, 413, 431, after=1), Close(after=1))

# ----------------------------------------------------------------------------------------------
# Connection header and hop-by-hop handling.
case("conn-close", "RFC 9112 9.6", req(headers=H + b"Connection: close\r\n"), Forward(close_after=True))
case("conn-close-then-request", "RFC 9112 9.6 (nothing after close is processed)",
     req(headers=H + b"Connection: close\r\n") + req(target=b"/second"), Forward(close_after=True, target="/"), sent=2)
case("conn-http10-then-request", "RFC 9112 9.3 (1.0 closes by default)", req(version=b"HTTP/1.0") + req(target=b"/second"),
     Forward(close_after=True, target="/"), sent=2)
case("conn-nominates-header", "RFC 9110 7.6.1 (remove nominated fields)", req(headers=H + b"Connection: X-Secret\r\nX-Secret: 1\r\n"),
     Forward(absent=["x-secret"]))
case("conn-nominates-content-length", "RFC 9110 7.6.1; hop-by-hop abuse (framing is never stripped)",
     cl(b"5", extra=b"Connection: Content-Length\r\n"), Forward(body=b"hello"), R400)
case("conn-nominates-transfer-encoding", "RFC 9110 7.6.1", te(b"chunked", extra=b"Connection: Transfer-Encoding\r\n"), Forward(body=b"hello"), R400)
case("conn-nominates-host", "RFC 9110 7.6.1", req(headers=H + b"Connection: Host\r\n"), Forward(host="example.test"), R400)
case("conn-keep-alive-http10", "RFC 9112 appendix C.2.2", req(version=b"HTTP/1.0", headers=H + b"Connection: keep-alive\r\n") + req(target=b"/2"),
     Forward(requests=2), Forward(requests=1, close_after=True), requests=2)
case("conn-te-trailers", "RFC 9110 10.1.4 (TE is hop-by-hop)", req(headers=H + b"TE: trailers\r\nConnection: TE\r\n"), Forward())

# ----------------------------------------------------------------------------------------------
# Pipelining after a rejected request: the second request must never reach the backend.
case("pipe-bad-then-good", "RFC 9112 9.3.2; SPEC 4", cl(b"abc") + req(target=b"/second"), R400, sent=2)
case("pipe-good-then-bad", "RFC 9112 9.3.2", GET + req(headers=H + H), Reject(400, after=1))
case("pipe-clte-then-good", "PortSwigger CL.TE", te(b"chunked", extra=b"Content-Length: 5\r\n") + req(target=b"/second"), R400,
     Forward(body=b"hello", close_after=True, rfc_only=True), sent=2)
case("pipe-obsfold-then-good", "RFC 9112 5.2", req(headers=H + b"X-A: a\r\n b\r\n") + req(target=b"/second"), R400,
     Forward(requests=2, rfc_only=True), sent=2)
case("pipe-bad-chunk-then-good", "RFC 9112 7.1", chunked(b"5 junk\r\nhello\r\n0\r\n\r\n") + req(target=b"/second"), R400, sent=2)
case("pipe-host-list-then-good", "RFC 9112 3.2", req(headers=b"Host: a.test, b.test\r\n") + req(target=b"/second"), R400, sent=2)
case("pipe-three", "RFC 9112 9.3.2", GET + cl(b"5") + req(target=b"/3"), Forward(requests=3, each=[{}, {"body": b"hello"}, {"target": "/3"}]), requests=3)

# ----------------------------------------------------------------------------------------------
# Expect.
case("expect-100-body-sent", "RFC 9110 10.1.1", cl(b"5", extra=b"Expect: 100-continue\r\n"), Forward(body=b"hello"))
case("expect-100-wait", "RFC 9110 10.1.1 (client waits for 100)",
     [b"POST / HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n", b"hello"], Forward(body=b"hello"), pause=0.3)
case("expect-100-mixed-case", "RFC 9110 10.1.1 (case-insensitive)", cl(b"5", extra=b"Expect: 100-Continue\r\n"), Forward(body=b"hello"))
case("expect-100-no-body", "RFC 9110 10.1.1", req(headers=H + b"Expect: 100-continue\r\n"), Forward())
case("expect-unknown", "RFC 9110 10.1.1 (417 allowed)", cl(b"5", extra=b"Expect: fancy\r\n"), Forward(body=b"hello"), Reject(417))
case("expect-100-chunked", "RFC 9110 10.1.1", te(b"chunked", extra=b"Expect: 100-continue\r\n"), Forward(body=b"hello"))

# ----------------------------------------------------------------------------------------------
# Upgrade.
WS = b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
case("upgrade-websocket", "RFC 9110 7.8; RFC 6455", req(headers=H + WS), Forward(status=101, present={"upgrade": "websocket"}))
case("upgrade-h2c", "RFC 9113 3.1 (h2c is gone); Bishop Fox h2c smuggling (backend accepts: no tunnel to it)",
     req(headers=H + b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"),
     Reject(400, 501), BadGateway(),
     response=b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nX-Backend-Request: {n}\r\n\r\n")
case("upgrade-refused-then-smuggle", "0ang3el websocket smuggling (backend refuses the upgrade)",
     [req(headers=H + WS.replace(b"Version: 13", b"Version: 1337")), req(target=b"/smuggled", headers=H + b"Content-Length: abc\r\n")],
     Reject(400, after=1), Close(after=1),
     response=b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nX-Backend-Request: {n}\r\n\r\n", pause=0.3)
case("upgrade-post-with-body", "RFC 9110 7.8 (body before the switch)", post(b"Content-Length: 5\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", b"hello"),
     Forward(status=101, body=b"hello"), Forward(body=b"hello", absent=["upgrade"]), Reject(400))

# ----------------------------------------------------------------------------------------------
# Routing: the proxies route /api and /api/... to the `api` backend listener, the rest to `default`.
case("route-api", "SPEC 2 (path_prefix)", req(target=b"/api/x"), Forward(listener="api"))
case("route-api-exact", "SPEC 2", req(target=b"/api"), Forward(listener="api"))
case("route-apix", "issue #12 (prefix matches on a segment boundary)", req(target=b"/apix"), Forward(listener="default"))
case("route-dotdot", "RFC 3986 5.2.4; issue #12 (/api/../admin is /admin)", req(target=b"/api/../admin"), R400,
     Forward(listener="default"))
case("route-dot-encoded", "RFC 3986 2.3 (%2e is .)", req(target=b"/api/%2e%2e/admin"), R400, Forward(listener="default"),
     Forward(listener="api", target="/api/%2e%2e/admin"))
case("route-case", "RFC 3986 6.2.2.1 (paths are case-sensitive)", req(target=b"/API/x"), Forward(listener="default"))

# ----------------------------------------------------------------------------------------------
# Response side: the backend answers badly; the client must get a clean answer, never a hang.
RQ = req(target=b"/r")
XB = b"X-Backend-Request: {n}\r\n"
case("resp-204-with-cl", "RFC 9110 8.6 (no CL in 204); issue #12 hang", RQ, Relay(204, b""), BadGateway(),
     response=b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n" + XB + b"\r\n")
case("resp-204-with-body-then-next", "RFC 9112 6.3 (204 ends at the head)", RQ + req(target=b"/next"),
     Relay(204, b"", then=1), BadGateway(), Relay(204, b""),
     response=b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n" + XB + b"\r\nhello", requests=2)
case("resp-204-chunked", "RFC 9112 6.1 (no TE in 204)", RQ, Relay(204, b""), BadGateway(),
     response=b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n" + XB + b"\r\n")
case("resp-304-with-cl", "RFC 9110 8.6 (304 CL is metadata); issue #12 hang", RQ, Relay(304, b""), BadGateway(),
     response=b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n" + XB + b"\r\n")
case("resp-304-chunked", "RFC 9112 6.3", RQ, Relay(304, b""), BadGateway(),
     response=b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n" + XB + b"\r\n")
case("resp-100-with-cl", "RFC 9110 15.2 (1xx has no content); issue #12 hang", RQ, Relay(200, b"ok"), BadGateway(),
     response=b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-103-early-hints", "RFC 8297", RQ, Relay(200, b"ok"),
     response=b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-1xx-many", "RFC 9110 15.2 (any number of 1xx)", RQ, Relay(200, b"ok"), BadGateway(),
     response=b"HTTP/1.1 102 Processing\r\n\r\n" * 20 + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-head-with-cl", "RFC 9110 9.3.2 (HEAD answers have no content)", req(b"HEAD", b"/r"), Relay(200, b""),
     response=b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n" + XB + b"\r\n", methods=["HEAD"])
case("resp-dup-cl-different", "RFC 9112 6.3 (MUST 502)", RQ, BadGateway(), Abort(),
     response=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n" + XB + b"\r\nok!")
case("resp-dup-cl-same", "RFC 9112 6.3", RQ, BadGateway(), Relay(200, b"ok", rfc_only=True),
     response=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-cl-te", "RFC 9112 6.3 (remove CL before forwarding)", RQ, BadGateway(), Relay(200, b"hello", rfc_only=True),
     response=b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n" + XB + b"\r\n" + HELLO_CHUNKED)
case("resp-bad-chunk-size", "RFC 9112 7.1", RQ, BadGateway(), Abort(),
     response=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + XB + b"\r\nzz\r\nhello\r\n0\r\n\r\n")
case("resp-chunk-overflow", "RFC 9112 7.1", RQ, BadGateway(), Abort(),
     response=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + XB + b"\r\nFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n")
case("resp-chunk-ext", "RFC 9112 7.1.1", RQ, Relay(200, b"hello"),
     response=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + XB + b"\r\n5;a=b\r\nhello\r\n0\r\n\r\n")
case("resp-trailers", "RFC 9112 7.1.2", RQ, Relay(200, b"hello"),
     response=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + XB + b"\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n")
case("resp-te-unknown-close", "RFC 9112 6.3 (not chunked-final: read until close)", RQ, Relay(200, b"hello"), BadGateway(),
     response=b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n" + XB + b"\r\nhello", response_close=True)
case("resp-bare-lf", "RFC 9112 2.2", RQ, BadGateway(), Relay(200, b"ok", rfc_only=True),
     response=b"HTTP/1.1 200 OK\nContent-Length: 2\n" + XB.replace(b"\r\n", b"\n") + b"\nok")
case("resp-obs-fold", "RFC 9112 5.2 (502 or replace with SP)", RQ, BadGateway(), Relay(200, b"ok", rfc_only=True),
     response=b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-space-before-colon", "RFC 9112 5.1 (proxy MUST remove it)", RQ, BadGateway(), Relay(200, b"ok", rfc_only=True),
     response=b"HTTP/1.1 200 OK\r\nX-A : b\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-nul-in-header", "RFC 9110 5.5", RQ, BadGateway(), Relay(200, b"ok", rfc_only=True),
     response=b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-huge-head", "SPEC 5 (response heads have a size limit)", RQ, BadGateway(),
     response=b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"a" * 200000 + b"\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-bad-status-code", "RFC 9112 4 (3DIGIT)", RQ, BadGateway(),
     response=b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-garbage", "RFC 9112 4", RQ, BadGateway(), response=b"garbage\r\n\r\n", response_close=True)
case("resp-no-length-close", "RFC 9112 6.3 (close-delimited)", RQ, Relay(200, b"hello"),
     response=b"HTTP/1.1 200 OK\r\n" + XB + b"\r\nhello", response_close=True)
case("resp-cl-short-close", "RFC 9112 6.3 (incomplete message)", RQ, Abort(), BadGateway(),
     response=b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n" + XB + b"\r\nhello", response_close=True)
case("resp-http10", "RFC 9112 2.3", RQ, Relay(200, b"ok"), response=b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n" + XB + b"\r\nok")
case("resp-cl-negative", "RFC 9110 8.6", RQ, BadGateway(), response=b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n" + XB + b"\r\nok")
case("resp-cl-empty", "RFC 9110 8.6", RQ, BadGateway(), response=b"HTTP/1.1 200 OK\r\nContent-Length:\r\n" + XB + b"\r\nok")
case("resp-101-unrequested", "RFC 9110 15.2.2 (101 only to an Upgrade request)", RQ, BadGateway(), Abort(),
     response=b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + XB + b"\r\n")

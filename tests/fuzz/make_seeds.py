#!/usr/bin/python3
"""Writes the seed corpus under tests/fuzz/corpus/<target>/ (run it again after changing it).

Seeds are small, each shows one shape of input: valid requests and responses of every kind, and the
classic malformed ones (CL+TE, obs-fold, bare LF, duplicate Content-Length), so that every fuzzer
starts next to the parser's interesting branches. Inputs the fuzzers found are added by hand and kept
here: corpus/<target>/crash-<what> (a bug, with a unit test) and found-<what> (a harness fix).
"""

import os
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

REQUESTS = {
    "get": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "get-headers": b"GET /p/q?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t/1\r\nAccept: */*\r\n"
    b"Accept-Encoding: gzip, br\r\nCookie: a=b; c=d\r\nX-Request-Id: abc\r\n\r\n",
    "get-http10": b"GET / HTTP/1.0\r\n\r\n",
    "get-http10-keepalive": b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
    "get-close": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "head": b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n",
    "options-star": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    "absolute-form": b"GET http://b.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n",
    "connect": b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    "post-cl": b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    "post-cl0": b"POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    "post-chunked": b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "post-chunked-ext": b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;a=b;c=\"d\"\r\nhello\r\n0;e\r\n\r\n",
    "post-chunked-trailers": b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
    b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n",
    "post-chunked-big-trailer": b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
    b"X-T: " + b"t" * 3000 + b"\r\n\r\n" + b"POST /d HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    b"X-U: " + b"u" * 6000 + b"\r\n\r\n",
    "pipelined": b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"
    b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
    "pipelined-mixed": b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "expect-continue": b"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "upgrade": b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "connection-tokens": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, x-a, x-b\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
    "empty-value": b"GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Sp:  \r\n\r\n",
    "obs-text": b"GET / HTTP/1.1\r\nHost: a\r\nX-T: caf\xc3\xa9 \x80\xff\r\n\r\n",
    # Refused by a strict parser: the fuzzers start from each rule's edge.
    "bad-cl-te": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-te-http10": b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-te-gzip": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    "bad-dup-cl": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    "bad-cl-list": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx",
    "bad-obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-F: a\r\n b\r\n\r\n",
    "bad-bare-lf": b"GET / HTTP/1.1\nHost: a\n\n",
    "bad-space-colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "bad-nul": b"GET / HTTP/1.1\r\nHost: a\r\nX-N: a\x00b\r\n\r\n",
    "bad-empty-name": b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
    "bad-chunk-size": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n",
    "bad-trailer-lf": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: y\n\r\n",
    "bad-host-list": b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
    "bad-two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "bad-version": b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
}

RESPONSES = {
    "200-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    "200-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "200-chunked-trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 9\r\n\r\n",
    "200-until-close": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until the end",
    "200-http10": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "204": b"HTTP/1.1 204 No Content\r\n\r\n",
    "204-with-length": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
    "304": b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 100\r\n\r\n",
    "100-then-200": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "103-then-200": b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
    "101": b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00",
    "404-reason": b"HTTP/1.1 404 Not Here At All\r\nContent-Length: 0\r\n\r\n",
    "200-no-reason": b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
    "keep-alive-three": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    "set-cookie": b"HTTP/1.1 302 Found\r\nLocation: /x\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
    "bad-cl-te": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bad-dup-cl": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "bad-obs-fold": b"HTTP/1.1 200 OK\r\nX-F: a\r\n\tb\r\nContent-Length: 0\r\n\r\n",
    "bad-status": b"HTTP/1.1 20 OK\r\n\r\n",
    "bad-bare-lf": b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
}

CONFIGS = {
    "minimal": "listeners: [ { listen: 0.0.0.0:8080, routes: [ { upstream: app } ] } ]\n"
    "upstreams: [ { name: app, backends: [ { address: 127.0.0.1:9001 }, { address: 127.0.0.1:9002 } ] } ]\n",
    "tcp": "listeners:\n  - listen: 127.0.0.1:6380\n    protocol: tcp\n    upstream: redis\n    splice: false\n"
    "upstreams:\n  - name: redis\n    balance: consistent_hash\n    backends:\n      - address: 127.0.0.1:6379\n"
    "        weight: 3\n      - address: localhost:6390\n        backup: true\n    health_check: { tcp: {} }\n",
    "off": "workers: 2\nmetrics: false\nlisteners: [ { listen: '[::1]:8080', routes: [ { upstream: a } ] } ]\n"
    "upstreams:\n  - name: a\n    backends: [ { address: '[::1]:9000' } ]\n    health_check: false\n"
    "    outlier_detection: false\n    circuit_breaker: false\n    retries: false\n",
    "access-log": "access_log: { path: '-', format: '{client} {method} {path} {status} {flags}', sample: 12.5% }\n"
    "listeners: [ { listen: 127.0.0.1:80, routes: [ { match: { host: a.example, path_prefix: /api/ },"
    " upstream: a }, { upstream: a } ] } ]\nupstreams: [ { name: a, backends: [ { address: 127.0.0.1:1 } ] } ]\n",
    "tls": "listeners:\n  - listen: 127.0.0.1:8443\n    tls: { cert: certs/s.crt, key: certs/s.key, handshake_timeout: 2s }\n"
    "    routes: [ { upstream: s } ]\nupstreams:\n  - name: s\n    tls: { ca: ca.crt, sni: s.internal, verify: false }\n"
    "    backends: [ { address: 10.0.0.1:443 } ]\n",
    "full-upstream": "listeners: [ { listen: 127.0.0.1:80, max_request_headers: 8k, max_request_body: 10MiB,"
    " routes: [ { match: { headers: { x-canary: \"1\" } }, upstream: u } ] } ]\n"
    "upstreams:\n  - name: u\n    balance: round_robin\n    slow_start: 30s\n    dns_refresh: 1m\n"
    "    backends: [ { address: 127.0.0.1:9001, weight: 1000 } ]\n"
    "    retries: { attempts: 3, on: [connect_failure, reset, timeout, 502], budget: 50%, per_try_timeout: 250ms }\n"
    "    timeouts: { connect: 250ms, request: 1m, header: 1h, idle: 0.5s }\n"
    "    health_check: { http: { path: /h, expect_status: [200, 204], host: h.internal }, interval: 1s,"
    " timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 9 }\n"
    "    outlier_detection: { consecutive_failures: 3, ejection_time: 5s, max_ejection_percent: 100% }\n"
    "    degradation: { panic_threshold: 0%, retry_after: 1s }\n"
    "    circuit_breaker: { failure_rate: 25%, slow_call_duration: 1s, slow_call_rate: 90%, window: 5s,"
    " minimum_requests: 5, open_duration: 2s, half_open_requests: 1, failure_status: [500, 429] }\n"
    "    limits: { max_connections: 10, max_pending: 0, max_requests: 100 }\n",
    "errors": "listeners:\n\t- listen: nowhere\nupstreams: [ { name: x, backends: [] } ]\nunknown: 1\n",
    "anchors": "x: &b { address: 127.0.0.1:1 }\nlisteners: [ { listen: 127.0.0.1:2, routes: [ { upstream: a } ] } ]\n"
    "upstreams: [ { name: a, backends: [ *b, *b ] } ]\n",
    "two-docs": "listeners: []\n---\nupstreams: []\n",
    "bad-values": "workers: -1\ndrain_timeout: 10 parsecs\nadmin: { listen: 999.0.0.1:99999 }\n"
    "listeners: [ { listen: 127.0.0.1:80, protocol: udp, max_request_headers: 1x, routes: [ { upstream: nope } ] } ]\n"
    "upstreams: [ { name: a, balance: fastest, backends: [ { address: ':80', weight: 0 } ],"
    " retries: { budget: 150% }, circuit_breaker: { failure_rate: 0% } } ]\n",
    "dup-keys": "listeners: []\nlisteners: []\nupstreams: [ { name: a, name: b } ]\n",
    "dup-listeners": "listeners:\n  - { listen: 0.0.0.0:80, routes: [ { upstream: a } ] }\n"
    "  - { listen: 127.0.0.1:80, routes: [ { upstream: a } ] }\n  - { listen: '[::]:80', protocol: tcp, upstream: a }\n"
    "upstreams: [ { name: a, backends: [ { address: 127.0.0.1:1 } ] }, { name: a, backends: [] } ]\n",
    "multi-cert": "listeners:\n  - listen: 127.0.0.1:443\n    tls:\n      certificates:\n"
    "        - { cert: /a.crt, key: /a.key }\n        - { cert: b.crt, key: b.key }\n    routes: [ { upstream: a } ]\n"
    "upstreams: [ { name: a, backends: [ { address: 127.0.0.1:1 } ] } ]\n",
    "flow-and-quotes": "{\"listeners\": [{\"listen\": \"127.0.0.1:80\", \"routes\": [{\"upstream\": \"a\"}]}],"
    " \"upstreams\": [{\"name\": \"a\", \"backends\": [{\"address\": \"127.0.0.1:1\"}]}]}\n",
    "block-scalars": "listeners:\n  - listen: >-\n      127.0.0.1:80\n    routes:\n      - upstream: |\n          a\n"
    "upstreams:\n  - name: a\n    backends:\n      - address: 127.0.0.1:1\n",
    "tags-and-nulls": "listeners: !!seq [ { listen: !!str 127.0.0.1:80, routes: ~ } ]\nupstreams: null\n",
    "empty": "",
    "comment-only": "# nothing here\n",
    "scalar": "just a string\n",
    "unterminated": "listeners: [ { listen: \"127.0.0.1:80\n",
    "deep": "a: " + "[" * 40 + "]" * 40 + "\n",
}


def h2_seeds():
    """Client frames after the HTTP/2 preface (fuzz_h2 adds the preface), made with python3-h2:
    requests of each shape, and the frames abuse is made of."""
    import h2.config
    import h2.connection
    import h2.settings

    def conn():
        c = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        c.initiate_connection()
        return c

    def head(path, method="GET", extra=()):
        return [(":method", method), (":scheme", "http"), (":authority", "a"), (":path", path)] + list(extra)

    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    seeds = {}

    def out(name, c):
        data = c.data_to_send()
        assert data.startswith(preface)
        seeds[name] = data[len(preface):]

    c = conn()
    c.send_headers(1, head("/"), end_stream=True)
    out("get", c)
    c = conn()
    c.send_headers(1, head("/p?q=1", extra=[("user-agent", "t"), ("cookie", "a=b"), ("cookie", "c=d")]), end_stream=True)
    c.send_headers(3, head("/x", "HEAD"), end_stream=True)
    c.send_headers(5, head("/y", "OPTIONS"), end_stream=True)
    out("three-streams", c)
    c = conn()
    c.send_headers(1, head("/up", "POST", [("content-length", "10")]))
    c.send_data(1, b"0123456789", end_stream=True)
    out("post-length", c)
    c = conn()
    c.send_headers(1, head("/up", "POST"))
    c.send_data(1, b"abc")
    c.send_data(1, b"defgh")
    c.send_headers(1, [("x-trailer", "1")], end_stream=True)
    out("post-trailers", c)
    c = conn()
    c.send_headers(1, head("/svc/Method", "POST", [("content-type", "application/grpc"), ("te", "trailers"),
                                                    ("grpc-timeout", "1S")]))
    c.send_data(1, b"\0\0\0\0\x02hi", end_stream=True)
    out("grpc", c)
    c = conn()
    c.send_headers(1, head("/"))
    c.reset_stream(1)
    c.send_headers(3, head("/"), end_stream=True)
    c.ping(b"12345678")
    c.increment_flow_control_window(1000)
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    c.prioritize(3, weight=10)
    out("reset-ping-window", c)
    c = conn()
    c.send_headers(1, head("/", extra=[("x-big", "v" * 5000)]), end_stream=True)
    out("big-header", c)
    c = conn()
    c.send_headers(1, head("/"), end_stream=True)
    c.close_connection()
    out("goaway", c)
    # HEADERS without END_HEADERS, then a CONTINUATION carrying the rest of the block.
    c = conn()
    c.send_headers(1, head("/cont", extra=[("x-a", "1")]), end_stream=True)
    data = c.data_to_send()[len(preface):]
    settings_len = 9 + int.from_bytes(data[0:3], "big")
    frame = data[settings_len:]
    block = frame[9:]
    half = len(block) // 2
    headers = len(block[:half]).to_bytes(3, "big") + b"\x01\x01" + frame[5:9] + block[:half]
    cont = len(block[half:]).to_bytes(3, "big") + b"\x09\x04" + frame[5:9] + block[half:]
    seeds["continuation"] = data[:settings_len] + headers + cont
    return seeds


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for target in ("fuzz_request_parser", "fuzz_response_parser", "fuzz_config", "fuzz_proxy", "fuzz_h2"):
        d = os.path.join(HERE, "corpus", target)
        if os.path.isdir(d):
            for name in os.listdir(d):
                if not name.startswith(("crash-", "found-")):
                    os.remove(os.path.join(d, name))
    # Parser seeds start with parser_driver.h's flags byte: 0x00 = one piece; 0x03 + three sizes =
    # split at those lengths in turn; 0x08 = set_no_body (responses); 0x20 = bodies skipped.
    for name, data in REQUESTS.items():
        write("fuzz_request_parser", name, b"\x00" + data)
        write("fuzz_proxy", name, data)
    for name in ("get", "post-chunked-trailers", "pipelined", "upgrade", "bad-obs-fold"):
        write("fuzz_request_parser", name + "-split", b"\x03\x01\x07\x02" + REQUESTS[name])
    for name, data in RESPONSES.items():
        write("fuzz_response_parser", name, b"\x00" + data)
    for name in ("200-chunked-trailers", "keep-alive-three", "100-then-200"):
        write("fuzz_response_parser", name + "-split", b"\x02\x03\x05" + RESPONSES[name])
    write("fuzz_response_parser", "head-200-cl", b"\x08" + RESPONSES["200-cl"])
    write("fuzz_response_parser", "head-200-chunked", b"\x08" + RESPONSES["200-chunked"])
    write("fuzz_response_parser", "head-odd", b"\x10" + RESPONSES["keep-alive-three"])
    # 0x20: Content-Length bodies skipped around the parser (spliced), split so that the skips
    # come in pieces; and a HEAD answered among them.
    write("fuzz_response_parser", "splice-keep-alive-three", b"\x22\x03\x05" + RESPONSES["keep-alive-three"])
    write("fuzz_response_parser", "splice-head-odd", b"\x30" + RESPONSES["keep-alive-three"])
    write("fuzz_request_parser", "splice-pipelined", b"\x20" + REQUESTS["pipelined"])
    for name, data in h2_seeds().items():
        write("fuzz_h2", name, data)
    for name, text in CONFIGS.items():
        write("fuzz_config", name + ".yaml", text.encode())
    shutil.copy(os.path.join(REPO, "config", "spillway.yaml"), os.path.join(HERE, "corpus", "fuzz_config", "example.yaml"))
    # The README's full reference config.
    with open(os.path.join(REPO, "README.md")) as f:
        blocks = re.findall(r"```yaml\n(.*?)```", f.read(), re.S)
    for i, block in enumerate(blocks):
        write("fuzz_config", "readme-%d.yaml" % i, block.encode())


if __name__ == "__main__":
    main()

"""TLS through the real binary, with real clients and a real TLS backend.

Clients are `curl`, `openssl s_client`, `wrk` and Python's ssl module; the outside TLS backend is
NGINX from Debian. Certificates come from a throwaway CA (certs.py). Covered: termination on http and
tcp listeners, SNI certificate choice (wildcards, default), protocol versions, ALPN, session
resumption (tickets and session ids, across a reload too), certificates re-read on reload and bad
ones rejected (POST /reload, SIGHUP, `spillway validate`), the handshake timeout, X-Forwarded-Proto,
and TLS to backends (SNI, CA and name checks, `verify: false`, http health checks over TLS).
"""

import atexit
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from certs import CertAuthority
from harness import SPILLWAY_BIN, Spillway, free_port, parse_response, wait_for_port, wait_until
from testd import Testd

REQUEST = b"GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"


# --- clients ---------------------------------------------------------------------------------------

def s_client(port, *args, servername=None, send=None, timeout=10):
    """Runs `openssl s_client` against 127.0.0.1:`port`; returns its stdout and stderr as one text.

    With `send`, writes those bytes and reads until the server closes (`-ign_eof`), so that TLS 1.3
    session tickets (sent after the handshake) are received before it exits.
    """
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
    cmd += ["-servername", servername] if servername else ["-noservername"]
    if send is not None:
        cmd.append("-ign_eof")
    cmd += list(args)
    out = subprocess.run(cmd, input=send or b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         timeout=timeout)
    return out.stdout.decode(errors="replace")


def presented_certificate(port, servername=None):
    """(CN of the subject, serial) of the certificate the server presents for `servername`."""
    text = s_client(port, servername=servername)
    pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    if pem is None:
        raise AssertionError("no certificate presented:\n" + text)
    return certificate_info(pem.group(0).encode())


def certificate_info(pem=None, path=None):
    """(CN, serial) of a PEM certificate given as bytes or as a file."""
    cmd = ["openssl", "x509", "-noout", "-subject", "-serial", "-nameopt", "RFC2253"]
    if path:
        cmd += ["-in", path]
    out = subprocess.run(cmd, input=pem, capture_output=True, timeout=10, check=True).stdout.decode()
    cn = re.search(r"subject=.*?CN=([^,\n]+)", out).group(1)
    serial = re.search(r"serial=([0-9A-F]+)", out).group(1)
    return cn, serial


def curl(url, ca, name, port, *extra):
    """curl https://NAME:PORT... resolved to loopback and verified against `ca`; returns
    (exit code, http code, body)."""
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", ca,
                          "--resolve", "%s:%d:127.0.0.1" % (name, port),
                          "-o", "-", "-w", "\n%{http_code}", *extra, url], capture_output=True, timeout=20)
    body, _, code = out.stdout.decode(errors="replace").rpartition("\n")
    return out.returncode, int(code or 0), body + out.stderr.decode(errors="replace")


def tls_request(port, context, server_name, request, timeout=10):
    """One request over a Python ssl connection; returns (status, headers, body, TLS version)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as s:
            s.sendall(request)
            data = bytearray()
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
            status, headers, body = parse_response(bytes(data))
            return status, headers, body, s.version()


def echoed_headers(body, name):
    """Values of header `name` the backend saw, from spillway-testd's /echo JSON."""
    return [v for k, v in json.loads(body)["headers"] if k.lower() == name]


def fnv1a64(data):
    """FNV-1a 64 of `data`, as spillway-testd reports a request body's."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def dechunk(body):
    """The payload of a chunked body (extensions and trailers ignored)."""
    out, pos = bytearray(), 0
    while True:
        end = body.index(b"\r\n", pos)
        n = int(body[pos:end].split(b";")[0], 16)
        if n == 0:
            return bytes(out)
        out += body[end + 2:end + 2 + n]
        pos = end + 2 + n + 2


def seconds_until_closed(sockets, limit):
    """For each socket, the seconds until the peer closed it (None if it did not within `limit`)."""
    start = time.monotonic()
    closed = {}
    pending = list(sockets)
    while pending and time.monotonic() - start < limit:
        ready, _, _ = select.select(pending, [], [], 0.05)
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                closed[s] = time.monotonic() - start
                pending.remove(s)
    return [closed.get(s) for s in sockets]


def localhost_is_only_ipv4_loopback():
    try:
        return {a[4][0] for a in socket.getaddrinfo("localhost", 1, type=socket.SOCK_STREAM)} == {"127.0.0.1"}
    except OSError:
        return False


def line_col(text, needle):
    """1-based line and column of the first `needle` in `text` (as the config loader reports them)."""
    for number, line in enumerate(text.splitlines(), 1):
        col = line.find(needle)
        if col >= 0:
            return number, col + 1
    raise KeyError(needle)


# --- NGINX as an outside TLS backend ---------------------------------------------------------------

_nginxes = set()


@atexit.register
def _kill_leftover_nginx():
    for n in list(_nginxes):
        n.stop()


class Nginx:
    """One `nginx` process (master_process off, so its PID is the whole server) with a config, logs,
    pid file and temp paths in a directory of its own. Each server answers
    `sni=$ssl_server_name proto=$ssl_protocol host=$http_host` and logs every request with its TLS
    protocol and SNI to access.log."""

    def __init__(self, servers):
        """`servers`: list of (port, cert path, key path)."""
        self.dir = tempfile.mkdtemp(prefix="spillway-nginx-")
        self.access_log = os.path.join(self.dir, "access.log")
        blocks = []
        for port, crt, key in servers:
            blocks.append("""
  server {
    listen 127.0.0.1:%d ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    default_type text/plain;
    location = /healthz { return 200 "ok\\n"; }
    location / { return 200 "sni=$ssl_server_name proto=$ssl_protocol host=$http_host\\n"; }
  }""" % (port, crt, key))
        d = self.dir
        conf = """daemon off;
master_process off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log info;
events { worker_connections 512; }
http {
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  log_format tls '$server_port $request_uri $ssl_protocol sni=$ssl_server_name';
  access_log %(d)s/access.log tls;
%(blocks)s
}
""" % {"d": d, "blocks": "\n".join(blocks)}
        self.conf_path = os.path.join(d, "nginx.conf")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        self.log = open(os.path.join(d, "nginx.out"), "wb")
        self.proc = subprocess.Popen(["nginx", "-p", d, "-e", os.path.join(d, "error.log"), "-c", self.conf_path],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        _nginxes.add(self)
        try:
            for port, _, _ in servers:
                wait_for_port(port, proc=self.proc)
        except Exception:
            self.stop()
            raise

    def access_lines(self):
        try:
            with open(self.access_log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.log.close()
        _nginxes.discard(self)


# --- termination -----------------------------------------------------------------------------------

TERMINATION = """
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: web
    listen: 127.0.0.1:{port}
    tls:
      certificates: [ { cert: %(a_crt)s, key: %(a_key)s }, { cert: %(b_crt)s, key: %(b_key)s } ]
      handshake_timeout: 1s
    http2: false
    routes: [ { upstream: app } ]
  - name: web2
    listen: 127.0.0.1:%(h2_port)d
    tls: { cert: %(a_crt)s, key: %(a_key)s }
    routes: [ { upstream: app } ]
  - name: raw
    listen: 127.0.0.1:%(raw_port)d
    protocol: tcp
    tls: { cert: %(a_crt)s, key: %(a_key)s, handshake_timeout: 1s }
    upstream: app
  - name: plain
    listen: 127.0.0.1:%(plain_port)d
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: { http: { path: /healthz }, interval: 1s }
    backends: [ { address: %(backend)s } ]
"""


class TerminationTest(unittest.TestCase):
    """One Spillway with an http listener holding two certificates (a.test; b.test and *.b.test), a
    tcp listener with TLS and a plain http listener, all in front of one spillway-testd."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="spillway-tls-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.ca = CertAuthority(cls.dir)
        cls.a_crt, cls.a_key = cls.ca.issue("a", ["a.test"])
        cls.b_crt, cls.b_key = cls.ca.issue("b", ["b.test", "*.b.test"])
        cls.backend = Testd(name="app")
        cls.addClassCleanup(cls.backend.stop)
        cls.raw_port, cls.plain_port, cls.h2_port = free_port(), free_port(), free_port()
        cls.lb = Spillway(TERMINATION % dict(a_crt=cls.a_crt, a_key=cls.a_key, b_crt=cls.b_crt, b_key=cls.b_key,
                                             raw_port=cls.raw_port, plain_port=cls.plain_port, h2_port=cls.h2_port,
                                             backend=cls.backend.address))
        cls.addClassCleanup(cls.lb.stop)
        cls.client = ssl.create_default_context(cafile=cls.ca.crt)

    def test_https_request_is_terminated_and_proxied(self):
        """curl, verifying against the test CA, gets the backend's answer through the http listener."""
        rc, code, body = curl("https://a.test:%d/echo" % self.lb.port, self.ca.crt, "a.test", self.lb.port)
        self.assertEqual((rc, code), (0, 200), body)
        echo = json.loads(body)
        self.assertEqual(echo["backend"], "app")
        self.assertEqual(echo["path"], "/echo")

    def test_sni_chooses_the_certificate(self):
        """The first certificate whose names match the SNI is presented (a wildcard SAN included);
        an unknown name, or no SNI at all, gets the first certificate. curl verifies each."""
        port = self.lb.port
        a_serial = certificate_info(path=self.a_crt)[1]
        b_serial = certificate_info(path=self.b_crt)[1]
        self.assertEqual(presented_certificate(port, "a.test"), ("a.test", a_serial))
        self.assertEqual(presented_certificate(port, "b.test"), ("b.test", b_serial))
        self.assertEqual(presented_certificate(port, "x.b.test"), ("b.test", b_serial))  # *.b.test
        self.assertEqual(presented_certificate(port, "unknown.test"), ("a.test", a_serial))
        self.assertEqual(presented_certificate(port, None), ("a.test", a_serial))
        for name in ("b.test", "deep.b.test"):
            rc, code, body = curl("https://%s:%d/" % (name, port), self.ca.crt, name, port)
            self.assertEqual((rc, code), (0, 200), body)
        # a name no certificate carries gets the default one, which the client then refuses
        rc, _, body = curl("https://c.test:%d/" % port, self.ca.crt, "c.test", port)
        self.assertEqual(rc, 60, body)  # CURLE_PEER_FAILED_VERIFICATION

    def test_tls_1_0_and_1_1_refused_1_2_and_1_3_accepted(self):
        """An old protocol gets a protocol_version alert and no session; 1.2 and 1.3 complete a
        verified handshake and a request (s_client and Python's ssl module agree)."""
        legacy = ["-cipher", "DEFAULT:@SECLEVEL=0"]  # lets this OpenSSL offer 1.0/1.1 at all
        for flag in ("-tls1", "-tls1_1"):
            out = s_client(self.lb.port, flag, *legacy, servername="a.test")
            self.assertIn("alert protocol version", out, out)
            self.assertIn("Cipher is (NONE)", out, out)
        for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            out = s_client(self.lb.port, flag, "-CAfile", self.ca.crt, "-verify_return_error", servername="a.test",
                           send=REQUEST % b"a.test")
            self.assertRegex(out, r"New, %s, Cipher is \S+" % name.replace(".", r"\."))
            self.assertIn("Verify return code: 0 (ok)", out)
            self.assertIn("HTTP/1.1 200 OK", out)
        for version, name in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (ssl.TLSVersion.TLSv1_3, "TLSv1.3")):
            ctx = ssl.create_default_context(cafile=self.ca.crt)
            ctx.minimum_version = ctx.maximum_version = version
            status, _, _, got = tls_request(self.lb.port, ctx, "a.test", REQUEST % b"a.test")
            self.assertEqual((status, got), (200, name))

    def test_tls12_suites_and_no_renegotiation(self):
        """TLS 1.2 takes ECDHE with AES-GCM or ChaCha20-Poly1305 only (no plain-RSA key exchange, no
        CBC), and a client's renegotiation request is refused."""
        for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"):
            out = s_client(self.lb.port, "-tls1_2", "-cipher", suite, servername="a.test", send=REQUEST % b"a.test")
            self.assertIn("New, TLSv1.2, Cipher is " + suite, out)
        for suite in ("AES128-GCM-SHA256", "ECDHE-ECDSA-AES128-SHA"):
            out = s_client(self.lb.port, "-tls1_2", "-cipher", suite, servername="a.test")
            self.assertIn("alert handshake failure", out, out)
            self.assertIn("Cipher is (NONE)", out, out)
        # `R` on s_client's input asks for a renegotiation; its input stays open until the answer
        proc = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.lb.port, "-servername",
                                 "a.test", "-tls1_2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        try:
            out = b""
            deadline = time.monotonic() + 5
            while b"Cipher is" not in out and time.monotonic() < deadline:
                out += os.read(proc.stdout.fileno(), 65536) if select.select([proc.stdout], [], [], 0.1)[0] else b""
            proc.stdin.write(b"R\n")
            proc.stdin.flush()
            while b"renegotiation" not in out.split(b"RENEGOTIATING", 1)[-1] and time.monotonic() < deadline:
                ready = select.select([proc.stdout], [], [], 0.1)[0]
                chunk = os.read(proc.stdout.fileno(), 65536) if ready else b""
                if ready and not chunk:
                    break
                out += chunk
        finally:
            proc.kill()
            proc.wait()
            proc.stdin.close()
            proc.stdout.close()
        text = out.decode(errors="replace")
        self.assertIn("RENEGOTIATING", text)
        self.assertIn("no renegotiation", text.split("RENEGOTIATING", 1)[1], text)

    def test_large_bodies_both_ways(self):
        """Bodies stream intact over TLS: a 2 MiB upload reaches the backend byte for byte (its
        FNV-1a matches) and a 16 MiB chunked download arrives whole."""
        body = os.urandom(2 * 1024 * 1024)
        head = (b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % len(body))
        status, _, answer, _ = tls_request(self.lb.port, self.client, "a.test", head + body, timeout=30)
        self.assertEqual(status, 200, answer[:200])
        echo = json.loads(answer)
        self.assertEqual(echo["body_bytes"], len(body))
        self.assertEqual(echo["body_fnv1a"], "%016x" % fnv1a64(body))
        size = 16 * 1024 * 1024
        status, headers, answer, _ = tls_request(
            self.lb.port, self.client, "a.test",
            b"GET /big?size=%d&chunked=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n" % size, timeout=30)
        self.assertEqual(status, 200)
        self.assertEqual(headers.get("transfer-encoding"), "chunked")
        data = dechunk(answer)
        self.assertEqual(len(data), size)
        self.assertEqual(data.count(b"x"), size)

    def test_alpn_answers_http11(self):
        """ALPN with `http2: false`: offered h2 and http/1.1, the http listener picks http/1.1;
        offered only h2, the handshake goes on without ALPN and HTTP/1.1 still works; the tcp
        listener does not answer ALPN (it relays bytes, whatever the protocol)."""
        out = s_client(self.lb.port, "-alpn", "h2,http/1.1", servername="a.test", send=REQUEST % b"a.test")
        self.assertIn("ALPN protocol: http/1.1", out)
        self.assertIn("HTTP/1.1 200 OK", out)
        out = s_client(self.lb.port, "-alpn", "h2", servername="a.test", send=REQUEST % b"a.test")
        self.assertIn("No ALPN negotiated", out)
        self.assertIn("HTTP/1.1 200 OK", out)
        out = s_client(self.raw_port, "-alpn", "http/1.1", servername="a.test", send=REQUEST % b"a.test")
        self.assertIn("No ALPN negotiated", out)
        self.assertIn("HTTP/1.1 200 OK", out)
        # and a real HTTP/2-capable client settles on HTTP/1.1
        out = subprocess.run(["curl", "-sS", "-v", "--http2", "--cacert", self.ca.crt, "--resolve",
                              "a.test:%d:127.0.0.1" % self.lb.port, "https://a.test:%d/" % self.lb.port],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("ALPN: server accepted http/1.1", out.stderr)
        self.assertIn("< HTTP/1.1 200", out.stderr)

    def test_alpn_h2(self):
        """ALPN on an http listener with HTTP/2 on (the default): h2 is preferred when offered, a
        client offering only http/1.1 gets it, and curl --http2 speaks HTTP/2 through to the
        HTTP/1 backend."""
        out = s_client(self.h2_port, "-alpn", "h2,http/1.1", servername="a.test")
        self.assertIn("ALPN protocol: h2", out)
        out = s_client(self.h2_port, "-alpn", "http/1.1,h2", servername="a.test")
        self.assertIn("ALPN protocol: h2", out)  # the server's preference
        out = s_client(self.h2_port, "-alpn", "http/1.1", servername="a.test", send=REQUEST % b"a.test")
        self.assertIn("ALPN protocol: http/1.1", out)
        self.assertIn("HTTP/1.1 200 OK", out)
        out = s_client(self.h2_port, servername="a.test", send=REQUEST % b"a.test")
        self.assertIn("No ALPN negotiated", out)
        self.assertIn("HTTP/1.1 200 OK", out)
        out = subprocess.run(["curl", "-sS", "-v", "--http2", "--cacert", self.ca.crt, "--resolve",
                              "a.test:%d:127.0.0.1" % self.h2_port, "https://a.test:%d/echo" % self.h2_port],
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("ALPN: server accepted h2", out.stderr)
        self.assertIn("< HTTP/2 200", out.stderr)
        echo = json.loads(out.stdout)
        self.assertEqual(echo["version"], "1.1")
        self.assertEqual(echoed_headers(out.stdout, "x-forwarded-proto"), ["https"])

    def test_session_resumption(self):
        """A saved session resumes ("Reused"): by ticket in TLS 1.3 and 1.2, by session id in TLS 1.2
        without tickets, with a certificate chosen by SNI too. A fresh connection is "New"."""
        cases = [("-tls1_3", "TLSv1.3", "a.test", ()), ("-tls1_2", "TLSv1.2", "a.test", ()),
                 ("-tls1_2", "TLSv1.2", "a.test", ("-no_ticket",)), ("-tls1_3", "TLSv1.3", "x.b.test", ())]
        for flag, name, server, extra in cases:
            with self.subTest(flag=flag, server=server, extra=extra):
                path = os.path.join(self.dir, "session-%s-%s%s.pem" % (flag, server, "".join(extra)))
                first = s_client(self.lb.port, flag, *extra, "-sess_out", path, servername=server,
                                 send=REQUEST % server.encode())
                self.assertIn("New, %s" % name, first)
                self.assertIn("HTTP/1.1 200 OK", first)
                self.assertTrue(os.path.getsize(path) > 0)
                again = s_client(self.lb.port, flag, *extra, "-sess_in", path, servername=server,
                                 send=REQUEST % server.encode())
                self.assertIn("Reused, %s" % name, again)
                self.assertIn("HTTP/1.1 200 OK", again)

    def test_handshake_timeout(self):
        """A client that connects and never completes a handshake (silent, or stopping mid
        ClientHello) is cut off after handshake_timeout (1s) on http and tcp listeners, and counted;
        one that completed its handshake is not cut off by it."""
        metric = 'spillway_listener_tls_handshake_failures_total{listener="%s"}'
        before = {n: self.lb.metric(metric % n) for n in ("web", "raw")}
        done = ssl.create_default_context(cafile=self.ca.crt).wrap_socket(
            socket.create_connection(("127.0.0.1", self.lb.port), timeout=10), server_hostname="a.test")
        socks = [socket.create_connection(("127.0.0.1", p), timeout=10)
                 for p in (self.lb.port, self.lb.port, self.raw_port, self.raw_port)]
        try:
            start = time.monotonic()
            socks[1].sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the start of a ClientHello
            socks[3].sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            for waited in seconds_until_closed(socks, 8):
                self.assertIsNotNone(waited, "a stalled handshake was never cut off")
                self.assertGreater(waited, 0.5)
                self.assertLess(waited, 5)
            # past the handshake timeout, the completed connection still serves a request
            time.sleep(max(0.0, 1.6 - (time.monotonic() - start)))
            done.sendall(REQUEST % b"a.test")
            data = b""
            while True:
                b = done.recv(65536)
                if not b:
                    break
                data += b
            self.assertEqual(parse_response(data)[0], 200)
        finally:
            done.close()
            for s in socks:
                s.close()
        self.assertTrue(wait_until(lambda: self.lb.metric(metric % "web") >= before["web"] + 2, 3))
        self.assertTrue(wait_until(lambda: self.lb.metric(metric % "raw") >= before["raw"] + 2, 3))

    def test_x_forwarded_proto(self):
        """Requests that came over TLS reach the backend with X-Forwarded-Proto: https, the client's
        own values replaced (one header, however many it sent, in any case); over the plain listener
        it is http, even when the client claims https."""
        status, _, body, _ = tls_request(
            self.lb.port, self.client, "a.test",
            b"GET /echo HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-Proto: http\r\nx-forwarded-proto: ws\r\n"
            b"X-FORWARDED-PROTO: https, http\r\nConnection: close\r\n\r\n")
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body, "x-forwarded-proto"), ["https"])
        status, _, body = parse_response(self.raw_plain(
            b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"))
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body, "x-forwarded-proto"), ["http"])

    def raw_plain(self, data):
        with socket.create_connection(("127.0.0.1", self.plain_port), timeout=10) as s:
            s.sendall(data)
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    return out
                out += b

    def test_tcp_listener_terminates_tls(self):
        """curl https through the tcp listener: TLS ends at Spillway and the backend gets the
        request bytes as sent (an L4 relay adds no X-Forwarded-* headers)."""
        rc, code, body = curl("https://a.test:%d/echo" % self.raw_port, self.ca.crt, "a.test", self.raw_port)
        self.assertEqual((rc, code), (0, 200), body)
        echo = json.loads(body)
        self.assertEqual(echo["backend"], "app")
        self.assertEqual(echoed_headers(body, "host"), ["a.test:%d" % self.raw_port])
        self.assertEqual(echoed_headers(body, "x-forwarded-proto"), [])

    def test_wrk_over_tls(self):
        """A short wrk run over TLS (new handshakes on 8 connections, then keep-alive): no socket
        errors, no non-2xx answers, and Spillway counted the 2xx responses."""
        counter = 'spillway_listener_requests_total{listener="web",code="2xx"}'
        before = self.lb.metric(counter)
        out = subprocess.run(["wrk", "-t2", "-c8", "-d2s", "--timeout", "2s", "https://127.0.0.1:%d/" % self.lb.port],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertNotIn("Socket errors", out.stdout, out.stdout)
        self.assertNotIn("Non-2xx", out.stdout, out.stdout)
        requests = int(re.search(r"(\d+) requests in", out.stdout).group(1))
        self.assertGreater(requests, 100, out.stdout)
        self.assertGreaterEqual(self.lb.wait_metric(counter, before + requests) - before, requests)


# --- reload and validate ---------------------------------------------------------------------------

RELOAD = """workers: 2
admin: { listen: 127.0.0.1:%(admin_port)d }
listeners:
  - name: web
    listen: 127.0.0.1:%(port)d
    tls:
      cert: certs/web.crt
      key: certs/web.key
    routes: [ { upstream: app } ]
upstreams:
  - name: app
    health_check: false
    backends: [ { address: %(backend)s } ]
"""


class ReloadTest(unittest.TestCase):
    """Certificates are files next to the config (relative paths), re-read on every reload."""

    @classmethod
    def setUpClass(cls):
        cls.backend = Testd(name="app")
        cls.addClassCleanup(cls.backend.stop)

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="spillway-tls-reload-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        certs = os.path.join(self.dir, "certs")
        os.mkdir(certs)
        self.ca = CertAuthority(certs)
        self.crt, self.key = self.ca.issue("web", ["web.test"])
        port, admin_port = free_port(), free_port()
        self.config = RELOAD % dict(port=port, admin_port=admin_port, backend=self.backend.address)
        self.config_path = os.path.join(self.dir, "spillway.yaml")
        with open(self.config_path, "w") as f:
            f.write(self.config)
        self.lb = Spillway(None, port=port, admin_port=admin_port, config_path=self.config_path)
        self.addCleanup(self.lb.stop)

    def serves(self):
        """Whether a verified request to web.test succeeds."""
        rc, code, body = curl("https://web.test:%d/" % self.lb.port, self.ca.crt, "web.test", self.lb.port)
        return (rc, code) == (0, 200)

    def test_renewed_certificate_is_served_after_reload_and_sessions_resume(self):
        """A certificate renewed in place (same path, new serial) is served after SIGHUP; sessions
        saved before the reload still resume (ticket keys carried over), in TLS 1.2 and 1.3."""
        cn, old_serial = presented_certificate(self.lb.port, "web.test")
        self.assertEqual((cn, old_serial), ("web.test", certificate_info(path=self.crt)[1]))
        sessions = {}
        for flag in ("-tls1_2", "-tls1_3"):
            sessions[flag] = os.path.join(self.dir, "session%s.pem" % flag)
            out = s_client(self.lb.port, flag, "-sess_out", sessions[flag], servername="web.test",
                           send=REQUEST % b"web.test")
            self.assertIn("HTTP/1.1 200 OK", out)
        self.ca.issue("web", ["web.test"])  # renewal: new key and certificate at the same paths
        new_serial = certificate_info(path=self.crt)[1]
        self.assertNotEqual(new_serial, old_serial)
        self.lb.signal(signal.SIGHUP)
        self.assertTrue(wait_until(lambda: self.lb.status()["config"]["generation"] == 2, 5), self.lb.logs())
        self.assertEqual(presented_certificate(self.lb.port, "web.test"), ("web.test", new_serial))
        self.assertTrue(self.serves())
        for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            out = s_client(self.lb.port, flag, "-sess_in", sessions[flag], servername="web.test",
                           send=REQUEST % b"web.test")
            self.assertIn("Reused, %s" % name, out)
            self.assertIn("HTTP/1.1 200 OK", out)

    def test_bad_certificate_rejects_reload_and_old_one_keeps_serving(self):
        """An unparsable certificate, a key of another certificate, or a missing certificate makes
        POST /reload answer 400 naming file:line:col of the setting; the running certificate and key
        keep serving; once the files are good again the reload goes through."""
        _, serial = presented_certificate(self.lb.port, "web.test")
        with open(self.crt, "rb") as f:
            good_crt = f.read()
        with open(self.key, "rb") as f:
            good_key = f.read()
        crt_at = "%s:%d:%d: " % ((self.config_path,) + line_col(self.config, "certs/web.crt"))
        key_at = "%s:%d:%d: " % ((self.config_path,) + line_col(self.config, "certs/web.key"))
        other_crt, other_key = self.ca.issue("other", ["web.test"])

        with open(self.crt, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        code, body = self.lb.admin("POST", "/reload")
        self.assertEqual(code, 400, body)
        self.assertIn(crt_at + 'listener "web" tls: certificate %s: ' % self.crt, body.decode())
        self.assertEqual(presented_certificate(self.lb.port, "web.test"), ("web.test", serial))
        self.assertTrue(self.serves())

        with open(self.crt, "wb") as f:
            f.write(good_crt)
        shutil.copy(other_key, self.key)  # a valid key, but not this certificate's
        code, body = self.lb.admin("POST", "/reload")
        self.assertEqual(code, 400, body)
        self.assertIn(key_at + 'listener "web" tls: key %s' % self.key, body.decode())
        self.assertEqual(presented_certificate(self.lb.port, "web.test"), ("web.test", serial))
        self.assertTrue(self.serves())

        os.unlink(self.crt)
        code, body = self.lb.admin("POST", "/reload")
        self.assertEqual(code, 400, body)
        self.assertIn(crt_at, body.decode())
        self.assertIn("certs/web.crt", body.decode())
        self.assertIn("No such file", body.decode())
        self.assertTrue(self.serves())
        self.assertEqual(self.lb.status()["config"]["generation"], 1)

        with open(self.crt, "wb") as f:
            f.write(good_crt)
        with open(self.key, "wb") as f:
            f.write(good_key)
        code, body = self.lb.admin("POST", "/reload")
        self.assertEqual(code, 200, body)
        self.assertEqual(self.lb.status()["config"]["generation"], 2)
        self.assertEqual(presented_certificate(self.lb.port, "web.test"), ("web.test", serial))
        self.assertTrue(self.serves())
        # the other certificate (same name, its own key) can replace it: both files are re-read
        shutil.copy(other_crt, self.crt)
        shutil.copy(other_key, self.key)
        code, body = self.lb.admin("POST", "/reload")
        self.assertEqual(code, 200, body)
        self.assertEqual(presented_certificate(self.lb.port, "web.test"),
                         ("web.test", certificate_info(path=other_crt)[1]))

    def test_validate_reads_certificates(self):
        """`spillway validate` reads the certificate, key and CA files: exit 0 when they are good;
        exit 1 and `FILE:LINE:COL: ...` naming the setting when one is bad."""
        def validate(text):
            path = os.path.join(self.dir, "check.yaml")
            with open(path, "w") as f:
                f.write(text)
            out = subprocess.run([SPILLWAY_BIN, "validate", "-c", path], capture_output=True, text=True, timeout=10)
            return out.returncode, out.stdout + out.stderr, path

        rc, out, _ = validate(self.config)
        self.assertEqual(rc, 0, out)
        self.assertIn("config OK", out)

        junk = os.path.join(self.dir, "certs", "junk.pem")
        with open(junk, "w") as f:
            f.write("this is not PEM\n")
        text = self.config.replace("cert: certs/web.crt", "cert: certs/junk.pem")
        rc, out, path = validate(text)
        self.assertEqual(rc, 1, out)
        line, col = line_col(text, "certs/junk.pem")
        self.assertIn('%s:%d:%d: listener "web" tls: certificate %s: ' % (path, line, col, junk), out)

        other_crt, other_key = self.ca.issue("other2", ["web.test"])
        text = self.config.replace("key: certs/web.key", "key: certs/other2.key")
        rc, out, path = validate(text)
        self.assertEqual(rc, 1, out)
        line, col = line_col(text, "certs/other2.key")
        self.assertIn('%s:%d:%d: listener "web" tls: key %s' % (path, line, col, other_key), out)

        text = self.config.replace("    health_check: false",
                                   "    health_check: false\n    tls: { ca: certs/junk.pem }")
        rc, out, path = validate(text)
        self.assertEqual(rc, 1, out)
        line, col = line_col(text, "certs/junk.pem")
        self.assertIn('%s:%d:%d: upstream "app" tls: ca %s: ' % (path, line, col, junk), out)


# --- origination: TLS to an NGINX backend -----------------------------------------------------------

ORIGINATION = """
workers: 2
admin: { listen: 127.0.0.1:{admin_port} }
listeners:
  - name: web
    listen: 127.0.0.1:{port}
    routes:
      - { match: { path_prefix: /good }, upstream: good }
      - { match: { path_prefix: /ip }, upstream: by_ip }
      - { match: { path_prefix: /nosan }, upstream: ip_not_in_cert }
      - { match: { path_prefix: /wrongca }, upstream: wrong_ca }
      - { match: { path_prefix: /noverify }, upstream: no_verify }
      - { match: { path_prefix: /badname }, upstream: wrong_name }
      - { match: { path_prefix: /hostname }, upstream: by_host_name }
      - { match: { path_prefix: /wronghost }, upstream: host_name_not_in_cert }
  - name: l4
    listen: 127.0.0.1:%(l4_port)d
    protocol: tcp
    tls: { cert: %(edge_crt)s, key: %(edge_key)s }
    upstream: good
upstreams:
  - name: good
    tls: { ca: %(ca)s, sni: backend.internal }
    health_check: { http: { path: /healthz }, interval: 300ms, timeout: 250ms, healthy_threshold: 1 }
    backends: [ { address: 127.0.0.1:%(nginx)d } ]
  - name: checked_wrong_ca
    tls: { ca: %(other_ca)s, sni: backend.internal }
    health_check: { http: { path: /healthz }, interval: 300ms, timeout: 250ms }
    backends: [ { address: 127.0.0.1:%(nginx)d } ]
  - name: by_ip
    tls: { ca: %(ca)s }
    health_check: false
    backends: [ { address: 127.0.0.1:%(nginx)d } ]
  - name: ip_not_in_cert
    tls: { ca: %(ca)s }
    health_check: false
    backends: [ { address: 127.0.0.1:%(nginx_dns_only)d } ]
  - name: wrong_ca
    tls: { ca: %(other_ca)s, sni: backend.internal }
    health_check: false
    backends: [ { address: 127.0.0.1:%(nginx)d } ]
  - name: no_verify
    tls: { ca: %(other_ca)s, sni: backend.internal, verify: false }
    health_check: false
    backends: [ { address: 127.0.0.1:%(nginx)d } ]
  - name: wrong_name
    tls: { ca: %(ca)s, sni: other.internal }
    health_check: false
    backends: [ { address: 127.0.0.1:%(nginx)d } ]
  - name: by_host_name
    tls: { ca: %(ca)s }
    health_check: false
    backends: [ { address: localhost:%(nginx_localhost)d } ]
  - name: host_name_not_in_cert
    tls: { ca: %(ca)s }
    health_check: false
    backends: [ { address: localhost:%(nginx_dns_only)d } ]
"""


class OriginationTest(unittest.TestCase):
    """Spillway speaking TLS to NGINX: one NGINX server with a certificate for backend.internal and
    IP 127.0.0.1, one with backend.internal only, one for localhost; a second CA that signed none."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="spillway-tls-origin-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.ca = CertAuthority(cls.dir)
        other = os.path.join(cls.dir, "other")
        os.mkdir(other)
        cls.other_ca = CertAuthority(other, name="Some Other CA")
        crt, key = cls.ca.issue("backend", ["backend.internal"], ips=["127.0.0.1"])
        dns_crt, dns_key = cls.ca.issue("backend-dns", ["backend.internal"])
        lh_crt, lh_key = cls.ca.issue("localhost", ["localhost"])
        edge_crt, edge_key = cls.ca.issue("edge", ["edge.test"])
        cls.nginx_port, cls.nginx_dns_port, cls.nginx_lh_port = free_port(), free_port(), free_port()
        cls.l4_port = free_port()
        cls.nginx = Nginx([(cls.nginx_port, crt, key), (cls.nginx_dns_port, dns_crt, dns_key),
                           (cls.nginx_lh_port, lh_crt, lh_key)])
        cls.addClassCleanup(cls.nginx.stop)
        cls.lb_config = ORIGINATION % dict(ca=cls.ca.crt, other_ca=cls.other_ca.crt, nginx=cls.nginx_port,
                                           nginx_dns_only=cls.nginx_dns_port, nginx_localhost=cls.nginx_lh_port,
                                           l4_port=cls.l4_port, edge_crt=edge_crt, edge_key=edge_key)
        cls.lb = Spillway(cls.lb_config)
        cls.addClassCleanup(cls.lb.stop)

    def logged(self, path, want=1):
        """NGINX access-log lines for requests to `path`, once there are `want` of them (NGINX writes
        a line just after its response, so the client can read the answer first) or after 3 s; with
        want=0, what is there after a short grace."""
        lines = []

        def enough():
            lines[:] = [l for l in self.nginx.access_lines() if l.split(" ")[1:2] == [path]]
            return len(lines) >= want if want else False

        wait_until(enough, 3 if want else 0.3)
        return lines

    def test_verified_with_the_right_ca_and_sni_sent(self):
        """With the right CA and `sni`, the request reaches NGINX over TLS 1.3 and NGINX saw the
        configured SNI."""
        status, headers, body = self.lb.request("GET", "/good")
        self.assertEqual(status, 200, body)
        self.assertEqual(body.decode().strip(), "sni=backend.internal proto=TLSv1.3 host=127.0.0.1:%d" % self.lb.port)
        self.assertEqual(self.logged("/good"), ["%d /good TLSv1.3 sni=backend.internal" % self.nginx_port])

    def test_pooled_tls_connections_survive_a_reload_that_keeps_tls_settings(self):
        """A reload that leaves an upstream's TLS settings (and CA file) alone keeps its TLS context,
        so pooled connections to its backends are reused: no new connection (no new handshake)."""
        connects = 'spillway_upstream_connect_duration_seconds_count{upstream="good"}'
        for _ in range(20):  # every worker gets a pooled connection
            self.assertEqual(self.lb.request("GET", "/good/pool")[0], 200)
        before = self.lb.metric(connects)
        self.lb.write_config(self.lb_config + "# a comment: the file changed, its TLS settings did not\n")
        code, body = self.lb.admin("POST", "/reload")
        self.assertEqual(code, 200, body)
        for _ in range(20):
            self.assertEqual(self.lb.request("GET", "/good/pool")[0], 200)
        self.assertEqual(self.lb.metric(connects), before)

    def test_ip_backend_is_checked_against_its_ip(self):
        """Without `sni`, a backend written as an IP sends no SNI (RFC 6066) and its certificate must
        carry that IP: accepted when it does, 503 when it names only a DNS name."""
        status, _, body = self.lb.request("GET", "/ip")
        self.assertEqual(status, 200, body)
        self.assertEqual(body.decode().split()[0], "sni=")
        status, headers, body = self.lb.request("GET", "/nosan")
        self.assertEqual(status, 503, body)
        self.assertEqual(headers.get("x-spillway-reason"), "upstream_connect_failure")
        self.assertEqual(self.logged("/nosan", want=0), [])

    @unittest.skipUnless(localhost_is_only_ipv4_loopback(), "localhost must resolve to 127.0.0.1 only (NGINX listens there)")
    def test_host_name_backend_is_checked_against_its_name(self):
        """Without `sni`, a backend written as a host name sends that name as SNI and its certificate
        must carry it: accepted when it does, 503 when it names something else."""
        status, _, body = self.lb.request("GET", "/hostname")
        self.assertEqual(status, 200, body)
        self.assertEqual(body.decode().split()[0], "sni=localhost")
        status, headers, body = self.lb.request("GET", "/wronghost")
        self.assertEqual(status, 503, body)
        self.assertEqual(headers.get("x-spillway-reason"), "upstream_connect_failure")
        self.assertEqual(self.logged("/wronghost", want=0), [])

    def test_wrong_ca_gives_503(self):
        """A backend certificate that does not verify against `ca` is never sent the request; the
        client gets 503 upstream_connect_failure with Retry-After, and the log says why."""
        status, headers, body = self.lb.request("GET", "/wrongca")
        self.assertEqual(status, 503, body)
        self.assertEqual(headers.get("x-spillway-reason"), "upstream_connect_failure")
        self.assertIn("retry-after", headers)
        self.assertEqual(self.logged("/wrongca", want=0), [])
        self.assertTrue(wait_until(lambda: "certificate verify failed" in self.lb.logs(), 2), self.lb.logs())

    def test_wrong_name_gives_503(self):
        """The right CA but an `sni` the certificate does not name: 503 as well (the name is checked,
        not only the chain)."""
        status, headers, body = self.lb.request("GET", "/badname")
        self.assertEqual(status, 503, body)
        self.assertEqual(headers.get("x-spillway-reason"), "upstream_connect_failure")
        self.assertEqual(self.logged("/badname", want=0), [])

    def test_verify_false_connects_anyway(self):
        """`verify: false` with the same wrong CA connects, still over TLS and with the SNI."""
        status, _, body = self.lb.request("GET", "/noverify")
        self.assertEqual(status, 200, body)
        self.assertTrue(body.decode().startswith("sni=backend.internal proto=TLSv1.3"), body)
        self.assertEqual(len(self.logged("/noverify")), 1)

    def test_http_health_check_over_tls(self):
        """http health checks of a TLS upstream speak TLS (with its SNI) to /healthz: NGINX logs them
        and /status shows the backend healthy; with a CA that does not verify it, it is unhealthy."""
        address = "127.0.0.1:%d" % self.nginx_port
        self.assertTrue(wait_until(lambda: self.lb.backend_status("good", address)["healthy"] is True, 5))
        self.assertTrue(wait_until(
            lambda: "%d /healthz TLSv1.3 sni=backend.internal" % self.nginx_port in self.nginx.access_lines(), 3),
            self.nginx.access_lines())
        self.assertFalse(any(l.startswith("%d /healthz -" % self.nginx_port) for l in self.nginx.access_lines()))
        bad = self.lb.backend_status("checked_wrong_ca", address)
        self.assertIs(bad["healthy"], False)
        self.assertIn("certificate verify failed", bad["health_detail"])

    def test_tcp_listener_tls_on_both_sides(self):
        """A tcp listener with TLS in front of a TLS upstream: curl's TLS ends at Spillway, a new TLS
        session (SNI backend.internal) carries the bytes to NGINX."""
        rc, code, body = curl("https://edge.test:%d/viatcp" % self.l4_port, self.ca.crt, "edge.test", self.l4_port)
        self.assertEqual((rc, code), (0, 200), body)
        self.assertEqual(body.strip(), "sni=backend.internal proto=TLSv1.3 host=edge.test:%d" % self.l4_port)
        self.assertEqual(self.logged("/viatcp"), ["%d /viatcp TLSv1.3 sni=backend.internal" % self.nginx_port])


if __name__ == "__main__":
    unittest.main()

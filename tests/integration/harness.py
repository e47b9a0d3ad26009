"""Helpers for integration tests: start the real spillway binary on free loopback ports.

Every process started here is stopped by PID when the test ends; nothing is left running.
"""

import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPILLWAY_BIN = os.environ.get("SPILLWAY_BIN", os.path.join(REPO, "build", "spillway"))
# Whether SPILLWAY_BIN was built with ThreadSanitizer (CTest says so in SPILLWAY_SANITIZER): it then
# runs 5-15x slower, and the few checks that measure the proxy's own speed say so instead of failing.
UNDER_TSAN = "thread" in os.environ.get("SPILLWAY_SANITIZER", "")
# The first line of a sanitizer's report (not its other warnings).
SANITIZER_REPORT = re.compile(r"WARNING: ThreadSanitizer:|ERROR: (Address|Leak)Sanitizer:|SUMMARY: UndefinedBehaviorSanitizer")


# Ports for test servers come from below the ephemeral range (32768-60999 here): a port the kernel
# picks for bind(0) comes from that range, and between the probe and the server's own bind it can
# be taken as the source port of any connection another test makes (ctest -j2 runs two at once).
_TEST_PORTS = range(20000, 32000)
# One process never hands out a port twice: each walks its own shuffled order of the range (a
# random pick per call repeated within a test about once in a few hundred runs, and a spillway
# given the same port for its listener and its admin API refuses to start).
_port_order = None


def _next_test_port():
    global _port_order
    if _port_order is None:
        order = list(_TEST_PORTS)
        random.Random(os.getpid() ^ time.monotonic_ns()).shuffle(order)
        _port_order = iter(order)
    return next(_port_order, None)


def free_port():
    """A loopback port that was free a moment ago and that this process has not handed out before:
    one below the ephemeral range, or one the kernel picks when none of those is left."""
    for _ in range(100):
        port = _next_test_port()
        if port is None:
            break
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, step=0.02):
    """Polls `predicate` until it is true; returns the seconds it took (never 0, so the result is a
    truth value too), or None after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return max(time.monotonic() - start, 1e-9)
        time.sleep(step)
    return None


def wait_for_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d" % (proc.returncode, port))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError("nothing listening on port %d after %.1fs" % (port, timeout))


class Spillway:
    """The real binary with a config written from `config_text`.

    `config_text` may use {port} and {admin_port}; both are filled with free ports.
    """

    def __init__(self, config_text, port=None, admin_port=None, extra_args=(), wait=True, config_path=None):
        """`config_path`: run with that file as it is (the caller wrote it, e.g. behind a symlink)."""
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.dir = tempfile.mkdtemp(prefix="spillway-test-")
        if config_path is None:
            self.config_path = os.path.join(self.dir, "spillway.yaml")
            self.write_config(config_text)
        else:
            self.config_path = config_path
        self.log_path = os.path.join(self.dir, "spillway.log")
        # Ports picked here were free a moment ago; another process (a client's ephemeral port) may
        # take one before Spillway binds it. Then it exits at once, and it is started again on others.
        ours = port is None and admin_port is None and config_path is None
        for attempt in range(3):
            self.log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(self.command(extra_args), stdout=self.log, stderr=subprocess.STDOUT)
            if not wait:
                break
            try:
                wait_for_port(self.port, proc=self.proc)
                wait_for_port(self.admin_port, proc=self.proc)
                break
            except (RuntimeError, TimeoutError) as e:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
                if ours and attempt < 2 and "Address already in use" in self.logs():
                    self.log.close()
                    self.port, self.admin_port = free_port(), free_port()
                    self.write_config(config_text)
                    continue
                raise type(e)("%s; its log:\n%s" % (e, self.logs()[-4000:])) from None

    def command(self, extra_args=()):
        """The command line that starts the binary (a subclass may wrap it; it must exec, same PID)."""
        return [SPILLWAY_BIN, "run", "-c", self.config_path, *extra_args]

    def fill(self, config_text):
        return config_text.replace("{port}", str(self.port)).replace("{admin_port}", str(self.admin_port))

    def write_config(self, config_text):
        """Replaces the config file atomically (write, then rename)."""
        text = self.fill(config_text)
        with open(self.config_path + ".tmp", "w") as f:
            f.write(text)
        os.rename(self.config_path + ".tmp", self.config_path)

    # --- clients ---
    def conn(self, timeout=10):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method="GET", path="/", body=None, headers=None, timeout=10):
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def raw(self, data, timeout=5.0, read_until_close=True):
        """Sends raw bytes; returns everything received until the server closes (or timeout)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            chunks = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                if not b:
                    break
                chunks.append(b)
                if not read_until_close:
                    break
            return b"".join(chunks)

    def metric(self, name_and_labels, default=None):
        """The value of one sample in /metrics, e.g. 'spillway_config_generation'; `default` for a
        sample not (yet) there, or KeyError without one."""
        code, body = self.admin("GET", "/metrics")
        for line in body.decode().splitlines():
            if line.startswith(name_and_labels + " "):
                return float(line.split()[-1])
        if default is not None:
            return default
        raise KeyError(name_and_labels)

    def wait_metric(self, name_and_labels, at_least, timeout=5):
        """Waits for a counter to reach `at_least`; returns its value then (or the last one seen).
        A request is counted when its response is done, which can be a moment after the client has
        read it, so a test that counts its own requests waits rather than races the last ones."""
        seen = [0.0]

        def reached():
            seen[0] = self.metric(name_and_labels, 0.0)
            return seen[0] >= at_least

        wait_until(reached, timeout)
        return seen[0]

    def admin(self, method, path, timeout=5):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            c.request(method, path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def status(self):
        code, body = self.admin("GET", "/status")
        assert code == 200, body
        return json.loads(body)

    def backend_status(self, upstream, address):
        for u in self.status()["upstreams"]:
            if u["name"] == upstream:
                for b in u["backends"]:
                    if b["address"] == address:
                        return b
        raise KeyError(address)

    def backends_named(self, upstream, name):
        """The backends of a configured backend `name`: one per address a hostname resolves to."""
        for u in self.status()["upstreams"]:
            if u["name"] == upstream:
                return [b for b in u["backends"] if b["name"] == name]
        raise KeyError(upstream)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def logs(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    # --- lifecycle ---
    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout=15, expect_clean=True):
        """SIGTERM, then wait; returns the exit code (kills after `timeout`).

        A clean drain exits 0; anything else (a crash, a sanitizer report, a hang past `timeout`)
        fails the test that stops it, with the log attached.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if expect_clean:
                    raise AssertionError("spillway did not exit within %ss of SIGTERM:\n%s" % (timeout, self.logs()))
        if not self.log.closed:
            self.log.close()
        if expect_clean and self.proc.returncode != 0:
            raise AssertionError("spillway exited %s:\n%s" % (self.proc.returncode, self.logs()))
        # A sanitizer report fails the test even when the exit was expected to be unclean (a second
        # signal's _exit would otherwise hide it).
        logs = self.logs()
        if SANITIZER_REPORT.search(logs):
            raise AssertionError("sanitizer report in spillway's log:\n%s" % logs)
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def parse_response(data):
    """Splits raw response bytes into (status, headers dict, body) for the first response."""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers, body

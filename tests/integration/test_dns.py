"""dns_refresh: a backend written as a hostname follows its DNS record.

Spillway runs in its own mount namespace (`unshare -m`, we are root) where /etc/hosts is a file the
test owns, bind-mounted over the real one; rewriting that file is a DNS change only Spillway sees.
"""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import SPILLWAY_BIN, free_port, wait_until
import harness
from testd import Testd


def namespaces_work():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    d = tempfile.mkdtemp(prefix="spillway-ns-")
    hosts = os.path.join(d, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 spillway-ns-probe\n")
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount --bind %s /etc/hosts && getent hosts spillway-ns-probe"
                        % hosts], capture_output=True, timeout=10)
    shutil.rmtree(d, True)
    return r.returncode == 0


class SpillwayInNamespace(harness.Spillway):
    """The real binary, exec'd (same PID) by a shell in a new mount namespace with /etc/hosts replaced."""

    def __init__(self, config_text, hosts_path):
        self.hosts_path = hosts_path
        super().__init__(config_text)

    def command(self, extra_args=()):
        return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts_path,
                SPILLWAY_BIN, "run", "-c", self.config_path, *extra_args]


@unittest.skipUnless(namespaces_work(), "needs root and mount namespaces (unshare -m)")
class DnsRefreshTest(unittest.TestCase):
    def test_backend_follows_its_dns_record(self):
        port = free_port()
        # Two servers on the same port, on two loopback addresses: the name decides which one.
        a = Testd(host="127.0.0.1", port=port, name="first")
        b = Testd(host="127.0.0.2", port=port, name="second")
        d = tempfile.mkdtemp(prefix="spillway-dns-")
        hosts = os.path.join(d, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n127.0.0.1 app.test\n")
        sw = SpillwayInNamespace("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    dns_refresh: 500ms
    health_check: { http: { path: /healthz }, interval: 300ms, timeout: 200ms }
    backends: [ { address: app.test:%d } ]
""" % port, hosts)
        try:
            status, headers, _ = sw.request("GET", "/")
            self.assertEqual(status, 200)
            self.assertEqual(headers.get("x-backend"), "first")
            # The record moves (written in place: the bind mount follows the inode, not the name).
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n127.0.0.2 app.test\n")
            self.assertTrue(wait_until(lambda: sw.request("GET", "/")[1].get("x-backend") == "second", 10),
                            sw.logs())
            # The backend is the same one by name: still healthy, and the move is an event.
            b_status = sw.backend_status("app", "app.test:%d" % port)
            self.assertTrue(b_status["healthy"])
            moves = [e for e in sw.status()["events"] if e["kind"] == "dns"]
            self.assertEqual([(m["from"], m["to"]) for m in moves], [("127.0.0.1", "127.0.0.2")])
            # A name that stops resolving keeps the last good address.
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n")
            self.assertTrue(wait_until(lambda: "cannot resolve" in sw.logs(), 10))
            for _ in range(5):
                self.assertEqual(sw.request("GET", "/")[1].get("x-backend"), "second")
        finally:
            sw.stop()
            a.stop()
            b.stop()
            shutil.rmtree(d, True)

    def test_http2_backend_connections_follow_the_record(self):
        """protocol: http2 keeps multiplexed connections per backend: when the name moves, the pooled
        connection to the old address is drained and new calls go to the new one."""
        from test_http2 import H2EchoBackend
        port = free_port()
        a = H2EchoBackend("first", host="127.0.0.1", port=port)
        b = H2EchoBackend("second", host="127.0.0.2", port=port)
        d = tempfile.mkdtemp(prefix="spillway-dns-")
        hosts = os.path.join(d, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n127.0.0.1 app.test\n")
        sw = SpillwayInNamespace("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    protocol: http2
    dns_refresh: 500ms
    health_check: { interval: 300ms, timeout: 200ms }
    backends: [ { address: app.test:%d } ]
""" % port, hosts)
        who = lambda: json.loads(sw.request("GET", "/")[2])["backend"]  # noqa: E731
        try:
            self.assertEqual(who(), "first")
            self.assertEqual(who(), "first")  # the same pooled HTTP/2 connection
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n127.0.0.2 app.test\n")
            self.assertTrue(wait_until(lambda: who() == "second", 10), sw.logs())
            for _ in range(5):
                self.assertEqual(who(), "second")
        finally:
            sw.stop()
            a.stop()
            b.stop()
            shutil.rmtree(d, True)

    def test_a_reload_does_not_wait_for_a_name_that_does_not_resolve_yet(self):
        a = Testd(name="ip")
        b = Testd(host="127.0.0.2", name="named")
        d = tempfile.mkdtemp(prefix="spillway-dns-")
        hosts = os.path.join(d, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n")
        config = """
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    dns_refresh: 300ms
    health_check: { http: { path: /healthz }, interval: 200ms, timeout: 200ms }
    backends: [ %s ]
"""
        sw = SpillwayInNamespace(config % ("{ address: %s }" % a.address), hosts)
        try:
            self.assertEqual(sw.request("GET", "/")[1].get("x-backend"), "ip")
            named = "later.test:%d" % b.port
            sw.write_config(config % ("{ address: %s }, { address: %s }" % (a.address, named)))
            code, body = sw.admin("POST", "/reload")
            self.assertEqual(code, 200, body)  # accepted at once: the name is looked up in the background
            self.assertTrue(wait_until(lambda: "cannot resolve" in sw.logs(), 10), sw.logs())
            st = sw.backend_status("app", named)
            self.assertFalse(st["available"])
            self.assertEqual(st["out_reason"], "unresolved")
            for _ in range(5):
                self.assertEqual(sw.request("GET", "/")[1].get("x-backend"), "ip")
            # The name appears: the backend takes traffic once its first health check passes.
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n127.0.0.2 later.test\n")
            self.assertTrue(wait_until(lambda: sw.backend_status("app", named)["available"], 10), sw.logs())
            seen = set(sw.request("GET", "/")[1].get("x-backend") for _ in range(20))
            self.assertEqual(seen, {"ip", "named"})
        finally:
            sw.stop()
            a.stop()
            b.stop()
            shutil.rmtree(d, True)


if __name__ == "__main__":
    unittest.main()

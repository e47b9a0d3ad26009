"""dns_refresh: a backend written as a hostname is one backend per address its name resolves to.

Spillway runs in its own mount namespace (`unshare -m`, we are root) where /etc/hosts is a file the
test owns, bind-mounted over the real one; rewriting that file is a DNS change only Spillway sees.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
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
    """The real binary, exec'd (same PID) by a shell in a new mount namespace with /etc/hosts (and,
    with `resolv_path`, /etc/resolv.conf) replaced."""

    def __init__(self, config_text, hosts_path, resolv_path=None):
        self.hosts_path = hosts_path
        self.resolv_path = resolv_path
        super().__init__(config_text)

    def command(self, extra_args=()):
        mounts = 'mount --bind "$0" /etc/hosts'
        if self.resolv_path:
            mounts += ' && mount --bind "%s" /etc/resolv.conf' % self.resolv_path
        return ["unshare", "-m", "sh", "-c", mounts + ' && exec "$@"', self.hosts_path,
                SPILLWAY_BIN, "run", "-c", self.config_path, *extra_args]


class SrvServer:
    """A DNS server on 127.0.0.153:53 (UDP) that answers SRV queries for one name from `records`
    (a list of (priority, weight, port, target)), which the test may change at any time; any other
    query gets NXDOMAIN."""

    ADDRESS = ("127.0.0.153", 53)

    def __init__(self, name):
        self.name = name.lower()
        self.records = []
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(self.ADDRESS)
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @staticmethod
    def encode(name):
        return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"

    def serve(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            self.queries += 1
            qid = data[:2]
            i, labels = 12, []
            while i < len(data) and data[i] != 0:
                labels.append(data[i + 1:i + 1 + data[i]].decode(errors="replace"))
                i += 1 + data[i]
            question = data[12:i + 5]
            qtype = struct.unpack("!H", data[i + 1:i + 3])[0] if i + 3 <= len(data) else 0
            match = ".".join(labels).lower() == self.name and qtype == 33
            records = list(self.records) if match else []
            rcode = 0 if match else 3
            out = qid + struct.pack("!HHHHH", 0x8400 | rcode, 1, len(records), 0, 0) + question
            for prio, weight, port, target in records:
                rdata = struct.pack("!HHH", prio, weight, port) + self.encode(target)
                out += b"\xc0\x0c" + struct.pack("!HHIH", 33, 1, 5, len(rdata)) + rdata
            self.sock.sendto(out, peer)

    def stop(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


def srv_server_works():
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(SrvServer.ADDRESS)
        s.close()
        return True
    except OSError:
        return False


@unittest.skipUnless(namespaces_work(), "needs root and mount namespaces (unshare -m)")
class DnsRefreshTest(unittest.TestCase):
    def test_a_moved_record_is_a_new_backend_and_the_old_address_leaves(self):
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
            # One backend per address, under its name: the new address, the old one gone; both events.
            named = sw.backends_named("app", "app.test:%d" % port)
            self.assertEqual([b["address"] for b in named], ["127.0.0.2:%d" % port])
            self.assertTrue(wait_until(lambda: sw.backends_named("app", "app.test:%d" % port)[0]["healthy"], 5))
            moves = [(e["backend"], e["to"]) for e in sw.status()["events"] if e["kind"] == "dns"]
            self.assertEqual(sorted(moves), [("127.0.0.1:%d" % port, "removed"), ("127.0.0.2:%d" % port, "added")])
            # A name that stops resolving keeps the last good address.
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n")
            self.assertTrue(wait_until(lambda: "cannot resolve" in sw.logs(), 10))
            for _ in range(5):
                self.assertEqual(sw.request("GET", "/")[1].get("x-backend"), "second")
            self.assertGreaterEqual(
                sw.metric('spillway_dns_lookup_failures_total{upstream="app",name="app.test:%d"}' % port, 0), 1)
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
            st = sw.backend_status("app", named)  # the name itself, until it has an address
            self.assertFalse(st["available"])
            self.assertEqual(st["out_reason"], "unresolved")
            for _ in range(5):
                self.assertEqual(sw.request("GET", "/")[1].get("x-backend"), "ip")
            # The name appears: the backend takes traffic once its first health check passes.
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n127.0.0.2 later.test\n")
            self.assertTrue(wait_until(lambda: [b["available"] for b in sw.backends_named("app", named)] == [True], 10),
                            sw.logs())
            self.assertEqual(sw.backends_named("app", named)[0]["address"], "127.0.0.2:%d" % b.port)
            seen = set(sw.request("GET", "/")[1].get("x-backend") for _ in range(20))
            self.assertEqual(seen, {"ip", "named"})
        finally:
            sw.stop()
            a.stop()
            b.stop()
            shutil.rmtree(d, True)

    def test_spillway_starts_with_a_name_that_does_not_resolve_yet(self):
        """A headless Service with no ready pod: Spillway starts, the name's backend out of traffic,
        and serves it once the name resolves."""
        a = Testd(host="127.0.0.2", name="later")
        d = tempfile.mkdtemp(prefix="spillway-dns-")
        hosts = os.path.join(d, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n")
        name = "pods.test:%d" % a.port
        sw = SpillwayInNamespace("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    dns_refresh: 200ms
    health_check: { http: { path: /healthz }, interval: 200ms, timeout: 200ms }
    backends: [ { address: %s } ]
""" % name, hosts)
        try:
            self.assertIn("cannot resolve", sw.logs())
            self.assertEqual(sw.backend_status("app", name)["out_reason"], "unresolved")
            self.assertEqual(sw.request("GET", "/")[0], 503)
            self.assertEqual(sw.admin("GET", "/ready")[0], 200)
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n127.0.0.2 pods.test\n")
            self.assertTrue(wait_until(lambda: sw.request("GET", "/")[1].get("x-backend") == "later", 10), sw.logs())
        finally:
            sw.stop()
            a.stop()
            shutil.rmtree(d, True)

    def test_addresses_come_and_go_under_load_without_a_failed_request(self):
        """A headless-service style name: three servers on one port, the name's addresses changing
        while wrk runs. New addresses take traffic once checked, gone ones stop getting any, the
        address that stays keeps its state, and wrk sees no error."""
        port = free_port()
        servers = {ip: Testd(host=ip, port=port, name=ip) for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.4")}
        d = tempfile.mkdtemp(prefix="spillway-dns-")
        hosts = os.path.join(d, "hosts")

        def publish(*ips):
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\n" + "".join("%s svc.test\n" % ip for ip in ips))

        publish("127.0.0.2", "127.0.0.3")
        name = "svc.test:%d" % port
        sw = SpillwayInNamespace("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    dns_refresh: 200ms
    health_check: { http: { path: /healthz }, interval: 200ms, timeout: 200ms }
    backends: [ { address: %s, weight: 2 } ]
""" % name, hosts)
        wrk = None

        def by_address():
            return {b["address"]: b for b in sw.backends_named("app", name)}

        def served(ip):
            return by_address().get("%s:%d" % (ip, port), {}).get("requests_total", 0)

        try:
            self.assertEqual(sorted(by_address()), ["127.0.0.2:%d" % port, "127.0.0.3:%d" % port])
            self.assertEqual({b["weight"] for b in by_address().values()}, {2})  # the weight applies to each
            report = os.path.join(os.path.dirname(__file__), "..", "..", "bench", "report.lua")
            wrk = subprocess.Popen(["wrk", "-t2", "-c16", "-d8s", "-s", report, "http://127.0.0.1:%d/" % sw.port],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.assertTrue(wait_until(lambda: served("127.0.0.2") > 0 and served("127.0.0.3") > 0, 5), sw.logs())
            stays = by_address()["127.0.0.3:%d" % port]

            # An address appears: it takes traffic once its first check passed.
            publish("127.0.0.2", "127.0.0.3", "127.0.0.4")
            self.assertTrue(wait_until(lambda: served("127.0.0.4") > 0, 5), sw.logs())
            # An address goes: out of rotation, its in-flight requests finish, nothing more reaches it.
            publish("127.0.0.3", "127.0.0.4")
            self.assertTrue(wait_until(lambda: "127.0.0.2:%d" % port not in by_address(), 5), sw.logs())
            time.sleep(0.3)
            gone_count = servers["127.0.0.2"].stats()["requests"]
            now = by_address()["127.0.0.3:%d" % port]
            # The address that stayed is the same backend: its counters went on, it never flipped.
            self.assertGreaterEqual(now["requests_total"], stays["requests_total"])
            self.assertTrue(now["healthy"])
            out, err = wrk.communicate(timeout=30)
            wrk = None
            self.assertEqual(servers["127.0.0.2"].stats()["requests"], gone_count)
            line = [l for l in out.splitlines() if l.startswith("BENCH ")]
            self.assertTrue(line, out + err)
            fields = dict(kv.split("=") for kv in line[0].split()[1:])
            print("\nDNS UNDER LOAD: %s requests; errors: status %s, connect %s, read %s, write %s, timeout %s" % (
                fields["requests"], fields["status_errors"], fields["connect"], fields["read"], fields["write"],
                fields["timeout"]))
            self.assertGreater(int(fields["requests"]), 1000)
            for k in ("status_errors", "connect", "read", "write", "timeout"):
                self.assertEqual(fields[k], "0", k)
            self.assertGreater(servers["127.0.0.4"].stats()["requests"], 0)
            self.assertEqual(sw.metric('spillway_dns_address_changes_total{upstream="app",name="%s",change="added"}'
                                       % name), 1)
            self.assertEqual(sw.metric('spillway_dns_address_changes_total{upstream="app",name="%s",change="removed"}'
                                       % name), 1)
            self.assertEqual(sw.metric('spillway_dns_addresses{upstream="app",name="%s"}' % name), 2)
            self.assertIn('backend="127.0.0.4:%d",name="%s"' % (port, name), sw.admin("GET", "/metrics")[1].decode())
        finally:
            if wrk is not None:
                wrk.kill()
                wrk.communicate()
            sw.stop()
            for s in servers.values():
                s.stop()
            shutil.rmtree(d, True)

    def test_a_name_with_ipv4_and_ipv6_addresses_is_a_backend_for_each(self):
        v4 = Testd(host="127.0.0.1", name="v4")
        v6 = Testd(host="[::1]", port=v4.port, name="v6")
        d = tempfile.mkdtemp(prefix="spillway-dns-")
        hosts = os.path.join(d, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n127.0.0.1 dual.test\n::1 dual.test\n")
        sw = SpillwayInNamespace("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    balance: round_robin
    health_check: { http: { path: /healthz }, interval: 200ms, timeout: 200ms }
    backends: [ { address: dual.test:%d } ]
""" % v4.port, hosts)
        try:
            named = sw.backends_named("app", "dual.test:%d" % v4.port)
            self.assertEqual(sorted(b["address"] for b in named), ["127.0.0.1:%d" % v4.port, "[::1]:%d" % v4.port])
            seen = set(sw.request("GET", "/")[1].get("x-backend") for _ in range(10))
            self.assertEqual(seen, {"v4", "v6"})
            # validate shows what the name resolves to from where it runs.
            out = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts,
                                  SPILLWAY_BIN, "validate", "-c", sw.config_path], capture_output=True, text=True)
            self.assertIn('upstream "app": dual.test:%d resolves to 127.0.0.1:%d, [::1]:%d (each address a backend)'
                          % (v4.port, v4.port, v4.port), out.stdout)
        finally:
            sw.stop()
            v4.stop()
            v6.stop()
            shutil.rmtree(d, True)

    @unittest.skipUnless(srv_server_works(), "needs to bind 127.0.0.153:53 (root, port free)")
    def test_srv_records_give_each_target_its_port_weight_and_role(self):
        a, b, c = Testd(name="a"), Testd(name="b"), Testd(name="c")
        dns = SrvServer("_http._tcp.svc.test")
        dns.records = [(10, 1, a.port, "a.svc.test"), (10, 1, b.port, "b.svc.test"), (20, 1, c.port, "c.svc.test")]
        d = tempfile.mkdtemp(prefix="spillway-dns-")
        hosts = os.path.join(d, "hosts")
        with open(hosts, "w") as f:
            f.write("127.0.0.1 localhost\n127.0.0.1 a.svc.test b.svc.test c.svc.test\n")
        resolv = os.path.join(d, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver %s\noptions timeout:1 attempts:2\n" % SrvServer.ADDRESS[0])
        name = "srv:_http._tcp.svc.test"
        sw = SpillwayInNamespace("""
admin: { listen: 127.0.0.1:{admin_port} }
listeners: [ { listen: 127.0.0.1:{port}, routes: [ { upstream: app } ] } ]
upstreams:
  - name: app
    balance: round_robin
    dns_refresh: 200ms
    health_check: { http: { path: /healthz }, interval: 200ms, timeout: 200ms }
    backends: [ { address: "%s" } ]
""" % name, hosts, resolv)
        try:
            named = {x["address"]: x for x in sw.backends_named("app", name)}
            self.assertEqual(sorted(named), sorted("127.0.0.1:%d" % s.port for s in (a, b, c)))
            self.assertTrue(named["127.0.0.1:%d" % c.port]["backup"])  # priority 20 waits for the 10s
            self.assertFalse(named["127.0.0.1:%d" % a.port]["backup"])
            seen = set(sw.request("GET", "/")[1].get("x-backend") for _ in range(10))
            self.assertEqual(seen, {"a", "b"}, sw.logs())
            # The records change: a goes, c becomes a primary.
            dns.records = [(10, 1, b.port, "b.svc.test"), (10, 1, c.port, "c.svc.test")]
            self.assertTrue(wait_until(lambda: len(sw.backends_named("app", name)) == 2, 5), sw.logs())
            self.assertTrue(wait_until(
                lambda: set(sw.request("GET", "/")[1].get("x-backend") for _ in range(6)) == {"b", "c"}, 5), sw.logs())
            self.assertFalse(any(x["backup"] for x in sw.backends_named("app", name)))
            # validate shows the records from where it runs.
            out = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && mount --bind "$1" '
                                  '/etc/resolv.conf && exec "$2" validate -c "$3"', hosts, resolv, SPILLWAY_BIN,
                                  sw.config_path], capture_output=True, text=True)
            self.assertIn("127.0.0.1:%d (c.svc.test weight 1)" % c.port, out.stdout)
            # The DNS server goes away: the last records keep serving.
            dns.stop()
            self.assertTrue(wait_until(lambda: sw.metric(
                'spillway_dns_lookup_failures_total{upstream="app",name="%s"}' % name, 0) >= 1, 10), sw.logs())
            self.assertEqual(len(sw.backends_named("app", name)), 2)
            self.assertEqual(sw.request("GET", "/")[0], 200)
        finally:
            sw.stop()
            dns.stop()
            for s in (a, b, c):
                s.stop()
            shutil.rmtree(d, True)


if __name__ == "__main__":
    unittest.main()

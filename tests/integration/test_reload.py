"""Hot reload through the real binary: under load, bad files, kept state, file-watch triggers."""

import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "chaos"))

from harness import Spillway, free_port, wait_until  # noqa: E402
from loadgen import Load  # noqa: E402
from testd import Testd  # noqa: E402


def config(backends, routes="    routes: [ { upstream: app } ]", extra_listener="", extra_upstream="",
           health="health_check: false", top=""):
    lines = ["workers: 2",
             top,
             "admin: { listen: 127.0.0.1:{admin_port} }",
             "listeners:",
             "  - name: main",
             "    listen: 127.0.0.1:{port}",
             routes,
             extra_listener,
             "upstreams:",
             "  - name: app",
             "    %s" % health,
             "    backends:"]
    lines += ["      - " + b for b in backends]
    lines.append(extra_upstream)
    return "\n".join(l for l in lines if l) + "\n"




class ReloadTest(unittest.TestCase):
    def setUp(self):
        self.a, self.b, self.c = Testd(name="a"), Testd(name="b"), Testd(name="c")

    def tearDown(self):
        for t in (self.a, self.b, self.c):
            t.stop()

    def test_fifty_reloads_under_load_lose_nothing(self):
        extra_port = free_port()
        variants = [
            config(["address: " + self.a.address, "address: " + self.b.address]),
            config(["{ address: %s, weight: 5 }" % self.a.address, "address: " + self.b.address]),
            config(["address: " + self.a.address, "address: " + self.c.address]),
            config(["address: " + self.a.address, "address: " + self.b.address],
                   routes="    routes: [ { match: { path_prefix: /extra }, upstream: other }, { upstream: app } ]",
                   extra_upstream="  - name: other\n    health_check: false\n    backends: [ { address: %s } ]"
                   % self.c.address),
            config(["address: " + self.a.address, "address: " + self.b.address],
                   extra_listener="  - name: second\n    listen: 127.0.0.1:%d\n    routes: [ { upstream: app } ]"
                   % extra_port),
            # The access log turned on, then replaced (another format is another log and writer
            # thread), then off: the old log ends on whichever thread drops its last snapshot.
            config(["address: " + self.a.address, "address: " + self.b.address],
                   top="access_log: { path: access.log }"),
            config(["address: " + self.a.address, "address: " + self.b.address],
                   top='access_log: { path: access.log, format: "{method} {path} {status}" }'),
        ]
        lb = Spillway(variants[0])
        load = Load(lb.port, threads=6, max_seconds=60).start()
        try:
            time.sleep(0.3)
            generation = 1
            for i in range(50):
                v = i % len(variants)
                lb.write_config(variants[v])
                code, body = lb.admin("POST", "/reload")
                self.assertEqual(code, 200, body)
                # Usually one more than before; two when the file watcher (300 ms after the write)
                # applied the file before this POST was served, as on a busy or sanitized build.
                applied = int(re.search(rb"generation (\d+)", body).group(1))
                self.assertIn(applied - generation, (1, 2), body)
                generation = applied
                self.assertEqual(lb.status()["config"]["generation"], generation)
                # each change is visible to the very next requests
                if v == 2:
                    # b is gone for the very next request; c takes requests as soon as the
                    # balancer picks it: least_request sends the next ones to a while c's first
                    # connections are still being made, which on a loaded machine (ctest -j2
                    # beside another load test) outlasted 10 requests once.
                    seen = set()
                    deadline = time.monotonic() + 5
                    while "c" not in seen and time.monotonic() < deadline:
                        seen.add(lb.request("GET", "/")[1]["x-backend"])
                    self.assertIn("c", seen, "reload %d: %s" % (i, lb.status()["upstreams"]))
                    self.assertNotIn("b", seen)
                elif v == 3:
                    self.assertEqual(lb.request("GET", "/extra")[1]["x-backend"], "c")
                elif v == 4:
                    # The added listener accepts once the workers have the new snapshot (like a
                    # removed one below, a moment after the reload has answered).
                    conn = []

                    def accepts():
                        try:
                            conn.append(socket.create_connection(("127.0.0.1", extra_port), timeout=2))
                            return True
                        except OSError:
                            return False
                    self.assertTrue(wait_until(accepts, 5), "the added listener does not accept")
                    with conn[0] as s:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                        self.assertIn(b"200 OK", s.recv(4096))
                else:
                    self.assertEqual(lb.request("GET", "/extra")[0], 200)  # catch-all again
                if v != 4:
                    # The extra listener is gone again: connections are refused once every worker
                    # has closed its socket, which each does when the new snapshot reaches it, just
                    # after the reload has answered (a moment later on a busy or sanitized build).
                    def refused():
                        try:
                            socket.create_connection(("127.0.0.1", extra_port), timeout=1).close()
                            return False
                        except OSError:
                            return True
                    self.assertTrue(wait_until(refused, 5), "the removed listener still accepts")
                time.sleep(0.05)
        finally:
            load.stop()
            lb.stop()
        failures = load.failures()
        print("\nRELOAD: 50 reloads under load, %d requests, %d failed" % (load.count(), len(failures)))
        self.assertTrue(os.path.exists(os.path.join(lb.dir, "access.log")))  # opened by a reload
        self.assertEqual(failures, [], failures[:5])
        self.assertGreater(load.count(), 1000)

    def test_bad_configs_are_rejected_every_way_and_old_routing_stays(self):
        good = config(["address: " + self.a.address])
        lb = Spillway(good)
        try:
            syntax = good.replace("listeners:", "listeners: [")
            semantic = good.replace("routes: [ { upstream: app } ]", "routes: [ { upstream: nope } ]")
            for trigger in ("file", "SIGHUP", "POST"):
                for bad, where in ((syntax, ":4:3: "), (semantic, ":6:")):
                    before = lb.metric('spillway_config_reloads_total{result="failure"}')
                    lb.write_config(bad)
                    if trigger == "SIGHUP":
                        lb.signal(signal.SIGHUP)
                    elif trigger == "POST":
                        code, body = lb.admin("POST", "/reload")
                        self.assertEqual(code, 400)
                        self.assertIn(lb.config_path + where, body.decode())
                    self.assertTrue(wait_until(
                        lambda: lb.metric('spillway_config_reloads_total{result="failure"}') > before, 5), trigger)
                    status = lb.status()
                    self.assertEqual(status["config"]["generation"], 1)
                    self.assertIn(lb.config_path + where, status["config"]["last_reload_error"])
                    self.assertEqual(lb.metric("spillway_config_last_reload_success"), 0)
                    self.assertEqual(lb.request("GET", "/")[1]["x-backend"], "a")
                    lb.write_config(good)  # back to a good file (content as loaded: no reload)
                    time.sleep(0.4)
            self.assertIn("reload rejected: " + lb.config_path + ":4:3: ", lb.logs())
        finally:
            lb.stop()

    def test_known_state_survives_and_changed_address_starts_fresh(self):
        hc = "health_check: { http: { path: /healthz }, interval: 200ms, timeout: 100ms, unhealthy_threshold: 1 }"
        cfg1 = config(["address: " + self.a.address, "address: " + self.b.address], health=hc)
        lb = Spillway(cfg1)
        try:
            self.a.set(healthy=0)
            self.assertTrue(wait_until(lambda: not lb.backend_status("app", self.a.address)["healthy"], 3))
            served = self.a.stats()["requests"]
            # a reload that changes something else (a route, b's weight) keeps a down
            cfg2 = config(["address: " + self.a.address, "{ address: %s, weight: 3 }" % self.b.address],
                          routes="    routes: [ { match: { path_prefix: /x }, upstream: app }, { upstream: app } ]",
                          health=hc)
            lb.write_config(cfg2)
            self.assertEqual(lb.admin("POST", "/reload")[0], 200)
            self.assertFalse(lb.backend_status("app", self.a.address)["healthy"])
            for _ in range(20):
                self.assertEqual(lb.request("GET", "/")[1]["x-backend"], "b")
            self.assertEqual(self.a.stats()["requests"], served)
            self.assertEqual(lb.backend_status("app", self.b.address)["weight"], 3)
            # b's address changes to c's: c starts fresh (unknown until its first check)
            cfg3 = config(["address: " + self.a.address, "address: " + self.c.address], health=hc)
            lb.write_config(cfg3)
            self.assertEqual(lb.admin("POST", "/reload")[0], 200)
            st = lb.backend_status("app", self.c.address)
            self.assertEqual(st["requests_total"], 0)
            self.assertTrue(wait_until(lambda: lb.backend_status("app", self.c.address)["healthy"], 3))
        finally:
            lb.stop()

    def test_rename_symlink_swap_and_two_step_writes(self):
        # Kubernetes' ConfigMap layout: spillway.yaml -> ..data/spillway.yaml, ..data -> ..v1
        d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "reload-test-%d" % os.getpid())
        d = os.path.abspath(d)
        os.makedirs(os.path.join(d, "..v1"))
        port, admin_port = free_port(), free_port()

        def text(backend):
            return config(["address: " + backend.address]).replace("{port}", str(port)).replace(
                "{admin_port}", str(admin_port))
        with open(os.path.join(d, "..v1", "spillway.yaml"), "w") as f:
            f.write(text(self.a))
        os.symlink("..v1", os.path.join(d, "..data"))
        os.symlink("..data/spillway.yaml", os.path.join(d, "spillway.yaml"))
        lb = Spillway(None, port=port, admin_port=admin_port, config_path=os.path.join(d, "spillway.yaml"))
        try:
            self.assertEqual(lb.request("GET", "/")[1]["x-backend"], "a")
            # the symlink swap: new version dir, new ..data link renamed over the old one
            os.makedirs(os.path.join(d, "..v2"))
            with open(os.path.join(d, "..v2", "spillway.yaml"), "w") as f:
                f.write(text(self.b))
            os.symlink("..v2", os.path.join(d, "..data_tmp"))
            os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
            self.assertTrue(wait_until(lambda: lb.request("GET", "/")[1]["x-backend"] == "b", 5))
            self.assertEqual(lb.status()["config"]["generation"], 2)
            # an editor's rename-over (write a temp file, rename it onto the real one)
            plain = os.path.join(d, "..v2", "spillway.yaml")
            with open(plain + ".swp", "w") as f:
                f.write(text(self.c))
            os.rename(plain + ".swp", plain)
            self.assertTrue(wait_until(lambda: lb.request("GET", "/")[1]["x-backend"] == "c", 5))
            self.assertEqual(lb.status()["config"]["generation"], 3)
            # a file written in two steps is not applied half-written
            full = text(self.a)
            with open(plain, "w") as f:
                f.write(full[: len(full) // 2])
                f.flush()
                time.sleep(0.1)
                f.write(full[len(full) // 2:])
            self.assertTrue(wait_until(lambda: lb.request("GET", "/")[1]["x-backend"] == "a", 5))
            time.sleep(0.5)
            self.assertEqual(lb.status()["config"]["generation"], 4)
            self.assertEqual(lb.metric('spillway_config_reloads_total{result="failure"}'), 0)
        finally:
            lb.stop()



class RestartTest(unittest.TestCase):
    """Zero-downtime restart: a new process binds the same ports (SO_REUSEPORT), the old drains."""

    def setUp(self):
        # Linux resets connections still queued on a listening socket that closes, unless
        # net.ipv4.tcp_migrate_req hands them to another socket of the SO_REUSEPORT group; the
        # README recommends it for zero-downtime restarts. Set for the test when we may.
        self.migrate_path = "/proc/sys/net/ipv4/tcp_migrate_req"
        self.migrate_before = None
        try:
            with open(self.migrate_path) as f:
                self.migrate_before = f.read().strip()
            with open(self.migrate_path, "w") as f:
                f.write("1")
        except OSError:
            self.migrate_before = None

    def tearDown(self):
        if self.migrate_before is not None:
            with open(self.migrate_path, "w") as f:
                f.write(self.migrate_before)

    def test_old_and_new_overlap_under_load(self):
        a, b = Testd(name="a"), Testd(name="b")
        old = Spillway(config(["address: " + a.address, "address: " + b.address]))
        # Clients behave like browsers and urllib3: a request that meets a keep-alive connection
        # the draining process just closed is sent again on a new one (counted, and reported).
        load = Load(old.port, threads=6, max_seconds=60, retry_stale=True).start()
        new = None
        try:
            time.sleep(0.5)
            new = Spillway(None, port=old.port, admin_port=old.admin_port, config_path=old.config_path,
                           wait=False)
            self.assertTrue(wait_until(lambda: "first health checks took" in new.logs(), 10), new.logs())
            time.sleep(0.3)
            old.signal(signal.SIGTERM)
            self.assertEqual(old.proc.wait(15), 0)
            switched = time.monotonic()
            time.sleep(1.0)
            served_by_new = load.successes_after(switched + 0.1)
        finally:
            load.stop()
            old.stop()
            if new is not None:
                new.stop()
            a.stop()
            b.stop()
        failures = load.failures()
        print("\nRESTART: %d requests across the handover, %d failed, %d resent after meeting a closed idle "
              "connection, %d answered by the new process after the old one exited" % (
                  load.count(), len(failures), load.stale_retries, len(served_by_new)))
        self.assertEqual(failures, [], failures[:5])
        self.assertGreater(len(served_by_new), 100)


class BusyNeighbour:
    """Appends to a file beside the config every few milliseconds (a second busy file next to the
    access log), bounded in time."""

    def __init__(self, path, max_seconds=60):
        self.path, self.max_seconds, self.stop_ = path, max_seconds, threading.Event()
        self.writes = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        start = time.monotonic()
        with open(self.path, "a") as f:
            while not self.stop_.is_set() and time.monotonic() - start < self.max_seconds:
                f.write("busy %d\n" % self.writes)
                f.flush()
                self.writes += 1
                time.sleep(0.005)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_.set()
        self.thread.join()


class WatchTest(unittest.TestCase):
    """Issue #18: a config change is applied by writing the file alone, whatever else is busy in its
    directory; a change no event reports is caught by the poll."""

    def setUp(self):
        self.a, self.b, self.c = Testd(name="a"), Testd(name="b"), Testd(name="c")
        self.dirs = []

    def tearDown(self):
        for t in (self.a, self.b, self.c):
            t.stop()
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)

    def variants(self, log_path):
        extra = "access_log: { path: %s }\n" % log_path
        return [
            config(["address: " + self.a.address, "address: " + self.b.address]) + extra,
            config(["{ address: %s, weight: 5 }" % self.a.address, "address: " + self.b.address]) + extra,
            config(["address: " + self.a.address, "address: " + self.c.address]) + extra,
            config(["address: " + self.c.address]) + extra,
            config(["address: " + self.a.address, "address: " + self.b.address],
                   routes="    routes: [ { match: { path_prefix: /extra }, upstream: other }, { upstream: app } ]",
                   extra_upstream="  - name: other\n    health_check: false\n    backends: [ { address: %s } ]"
                   % self.c.address) + extra,
        ]

    def triggers(self, lb):
        return {t: lb.metric('spillway_config_reload_triggers_total{trigger="%s"}' % t)
                for t in ("file", "poll", "signal", "api")}

    def fifty_writes_under_load(self, lb, variants, apply, busy_path, label):
        """50 updates, each applied by `apply(text)` alone (no POST /reload, no signal), under load
        with the access log and `busy_path` written continuously beside the config."""
        load = Load(lb.port, threads=4, max_seconds=60).start()
        busy = BusyNeighbour(busy_path).start()
        waits = []
        try:
            self.assertTrue(wait_until(lambda: load.count() > 50, 5))
            for i in range(50):
                v = (i + 1) % len(variants)
                apply(lb.fill(variants[v]))
                took = wait_until(lambda: lb.status()["config"]["generation"] == i + 2, 6)
                self.assertTrue(took, "update %d not applied (generation %d)"
                                % (i + 1, lb.status()["config"]["generation"]))
                waits.append(took)
                if v == 3:
                    self.assertEqual(lb.request("GET", "/")[1]["x-backend"], "c")
                elif v == 4:
                    self.assertEqual(lb.request("GET", "/extra")[1]["x-backend"], "c")
            self.assertGreater(os.path.getsize(lb.access_log_path_), 0)
            triggers = self.triggers(lb)
            self.assertEqual(lb.metric('spillway_config_reloads_total{result="success"}'), 50)
            self.assertEqual(lb.metric('spillway_config_reloads_total{result="failure"}'), 0)
            # every update read once: by its event (or the poll, had an event been missed)
            self.assertEqual(triggers["file"] + triggers["poll"], 50, triggers)
            self.assertEqual(triggers["signal"] + triggers["api"], 0, triggers)
        finally:
            busy.stop()
            load.stop()
            lb.stop()
        failures = load.failures()
        waits.sort()
        print("\nRELOAD (%s): 50 file-write reloads under load with a busy access log and a busy file "
              "(%d writes), %d requests, %d failed; apply time median %.0f ms, max %.0f ms, triggers %s"
              % (label, busy.writes, load.count(), len(failures), 1000 * waits[len(waits) // 2],
                 1000 * waits[-1], triggers))
        self.assertEqual(failures, [], failures[:5])
        self.assertGreater(busy.writes, 100)

    def test_fifty_file_writes_under_load_with_busy_neighbours(self):
        d = tempfile.mkdtemp(prefix="spillway-watch-")
        self.dirs.append(d)
        log_path = os.path.join(d, "access.log")
        variants = self.variants(log_path)
        path = os.path.join(d, "spillway.yaml")
        port, admin_port = free_port(), free_port()
        text = variants[0].replace("{port}", str(port)).replace("{admin_port}", str(admin_port))
        with open(path, "w") as f:
            f.write(text)
        lb = Spillway(None, port=port, admin_port=admin_port, config_path=path)
        lb.access_log_path_ = log_path

        def apply(text):  # an editor's write-and-rename
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.rename(path + ".tmp", path)
        self.fifty_writes_under_load(lb, variants, apply, os.path.join(d, "busy.txt"), "plain file")

    def test_fifty_configmap_swaps_under_load_with_busy_neighbours(self):
        # spillway.yaml -> ..data/spillway.yaml, ..data -> ..2026_12_01_NNN, swapped as kubelet does:
        # new version dir, new ..data_tmp link renamed over ..data, old version dir removed.
        d = tempfile.mkdtemp(prefix="spillway-watch-")
        self.dirs.append(d)
        log_path = os.path.join(d, "access.log")
        variants = self.variants(log_path)
        port, admin_port = free_port(), free_port()
        version = [0]

        def publish(text):
            version[0] += 1
            name = "..2026_12_01_%03d" % version[0]
            os.makedirs(os.path.join(d, name))
            with open(os.path.join(d, name, "spillway.yaml"), "w") as f:
                f.write(text)
            os.symlink(name, os.path.join(d, "..data_tmp"))
            os.rename(os.path.join(d, "..data_tmp"), os.path.join(d, "..data"))
            if version[0] > 1:
                shutil.rmtree(os.path.join(d, "..2026_12_01_%03d" % (version[0] - 1)))
        publish(variants[0].replace("{port}", str(port)).replace("{admin_port}", str(admin_port)))
        os.symlink("..data/spillway.yaml", os.path.join(d, "spillway.yaml"))
        lb = Spillway(None, port=port, admin_port=admin_port, config_path=os.path.join(d, "spillway.yaml"))
        lb.access_log_path_ = log_path
        self.fifty_writes_under_load(lb, variants, publish, os.path.join(d, "busy.txt"), "ConfigMap symlinks")

    def test_a_change_no_event_reports_is_caught_by_the_poll(self):
        # The config's directory is itself a symlink (conf -> v1) in a parent that is not watched:
        # swapping it sends no event the watch listens to; the identity poll sees the new file.
        base = tempfile.mkdtemp(prefix="spillway-watch-")
        self.dirs.append(base)
        port, admin_port = free_port(), free_port()
        for v, backend in (("v1", self.a), ("v2", self.b)):
            os.makedirs(os.path.join(base, v))
            with open(os.path.join(base, v, "spillway.yaml"), "w") as f:
                f.write(config(["address: " + backend.address]).replace("{port}", str(port)).replace(
                    "{admin_port}", str(admin_port)))
        os.symlink("v1", os.path.join(base, "conf"))
        path = os.path.join(base, "conf", "spillway.yaml")
        lb = Spillway(None, port=port, admin_port=admin_port, config_path=path)
        try:
            self.assertEqual(lb.request("GET", "/")[1]["x-backend"], "a")
            os.symlink("v2", os.path.join(base, "conf_tmp"))
            os.rename(os.path.join(base, "conf_tmp"), os.path.join(base, "conf"))
            took = wait_until(lambda: lb.status()["config"]["generation"] == 2, 10)
            self.assertTrue(took)
            self.assertEqual(lb.request("GET", "/")[1]["x-backend"], "b")
            self.assertEqual(self.triggers(lb), {"file": 0, "poll": 1, "signal": 0, "api": 0})
            print("\nRELOAD: a directory-link swap outside the watch was caught by the poll in %.1f s" % took)
            # the watch now follows the new directory: an in-place write there is an event
            with open(os.path.join(base, "v2", "spillway.yaml"), "w") as f:
                f.write(lb.fill(config(["address: " + self.c.address])))
            self.assertTrue(wait_until(lambda: lb.status()["config"]["generation"] == 3, 10))
            self.assertEqual(self.triggers(lb)["file"], 1)
            # the same content again (a touch, a rewrite) is seen by both ways and reloaded by neither
            os.utime(os.path.join(base, "v2", "spillway.yaml"))
            with open(os.path.join(base, "v2", "spillway.yaml"), "w") as f:
                f.write(lb.fill(config(["address: " + self.c.address])))
            time.sleep(3)  # longer than a poll period: nothing may happen, so there is no state to wait for
            self.assertEqual(lb.status()["config"]["generation"], 3)
            self.assertEqual(sum(self.triggers(lb).values()), 2)
        finally:
            lb.stop()


if __name__ == "__main__":
    unittest.main()
